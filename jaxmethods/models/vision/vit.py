"""`ViT`: the CLIP vision tower and DINOv2 in Flax NNX (images channels-last [B, H, W, C]).

Parameter paths (`jaxmethods.hf.vision_keys` maps the HF names onto them):
  patch_kernel [H, C, p, p] (torch Conv2d layout, OIHW), patch_bias [H] (DINOv2 only)
  cls_token      CLIP [H] (`class_embedding`), DINOv2 [1, 1, H]
  position_embeddings   CLIP [N + 1, H], DINOv2 [1, N + 1, H]
  pre_norm       CLIP `pre_layrnorm` (None for DINOv2)
  layers/<i>/... see `jaxmethods.models.vision.layers`
  final_norm     CLIP `post_layernorm` (on the CLS token), DINOv2 `layernorm` (on every token)

Forward: patches p x p -> linear -> [cls; patches] + positions -> (pre_norm) -> blocks ->
final_norm. `__call__` returns (last_hidden_state [B, 1 + N, H], pooled [B, H]) as HF's
`last_hidden_state` / `pooler_output`: CLIP's last hidden state is the blocks' output and its
pooled output post_layernorm(h[:, 0]); DINOv2's is layernorm(h) and h[:, 0] of that.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jaxmethods.models.linear import normal_init
from jaxmethods.models.vision.config import ViTConfig
from jaxmethods.models.vision.layers import Block, layer_norm
from jaxmethods.models.vision.resize import resize_grid_bicubic


class ViT(nnx.Module):
    """Image encoder. Call: pixels [B, H, W, C] float (already normalised, see
    `jaxmethods.models.vision.preprocess`) -> (last_hidden_state [B, 1 + N, D], pooled [B, D]).

    H and W must be multiples of patch_size. A size other than the pretraining image_size resizes
    the position grid bicubically: always for DINOv2, and for CLIP only with
    `interpolate_pos_encoding=True` (otherwise an error, as in HF).
    """

    def __init__(self, config: ViTConfig, *, rngs: nnx.Rngs | None = None):
        rngs = nnx.Rngs(0) if rngs is None else rngs
        self.config = config
        c, p, d = config.num_channels, config.patch_size, config.hidden_size
        dt, std = config.weight_dtype, config.initializer_range
        clip = config.family == "clip"
        self.patch_kernel = nnx.Param(normal_init(rngs.params(), std, shape=(d, c, p, p), dtype=dt))
        self.patch_bias = nnx.data(None if clip else nnx.Param(jnp.zeros((d,), dt)))
        cls_shape = (d,) if clip else (1, 1, d)
        pos_shape = (config.num_positions, d) if clip else (1, config.num_positions, d)
        self.cls_token = nnx.Param(normal_init(rngs.params(), std, shape=cls_shape, dtype=dt))
        self.position_embeddings = nnx.Param(
            normal_init(rngs.params(), std, shape=pos_shape, dtype=dt)
        )
        self.pre_norm = nnx.data(layer_norm(config, rngs) if clip else None)
        self.layers = nnx.List(
            [Block(config, layer_scale=not clip, rngs=rngs) for _ in range(config.num_layers)]
        )
        self.final_norm = layer_norm(config, rngs)

    def positions(self, height: int, width: int, interpolate: bool) -> jnp.ndarray:
        """Position table [1 + h*w, D] for an image of height x width pixels (static sizes)."""
        cfg = self.config
        table = self.position_embeddings[...].reshape(cfg.num_positions, cfg.hidden_size)
        gh, gw = height // cfg.patch_size, width // cfg.patch_size
        if gh * gw == cfg.grid**2 and height == width:
            return table
        if cfg.family == "clip" and not interpolate:
            raise ValueError(
                f"ViT(clip): input image size ({height}*{width}) doesn't match the model "
                f"({cfg.image_size}*{cfg.image_size}); pass interpolate_pos_encoding=True"
            )
        grid = table[1:].reshape(cfg.grid, cfg.grid, cfg.hidden_size)
        resized = resize_grid_bicubic(grid, gh, gw).astype(table.dtype)
        return jnp.concatenate([table[:1], resized.reshape(gh * gw, cfg.hidden_size)], axis=0)

    def embed(self, pixels: jnp.ndarray, interpolate_pos_encoding: bool = False) -> jnp.ndarray:
        """pixels [B, H, W, C] -> token embeddings [B, 1 + N, D] (before the blocks)."""
        cfg = self.config
        b, height, width, c = pixels.shape
        p = cfg.patch_size
        if c != cfg.num_channels:
            raise ValueError(f"ViT: images have {c} channels, the model expects {cfg.num_channels}")
        if height % p or width % p:
            raise ValueError(f"ViT: image size {height}x{width} is not a multiple of patch {p}")
        positions = self.positions(height, width, interpolate_pos_encoding)  # checks the size
        dt = cfg.compute_dtype
        patches = pixels.astype(dt).reshape(b, height // p, p, width // p, p, c)
        kernel = self.patch_kernel[...].astype(dt)
        x = jnp.einsum("bipjqc,ocpq->bijo", patches, kernel).reshape(b, -1, cfg.hidden_size)
        if self.patch_bias is not None:
            x = x + self.patch_bias[...].astype(dt)
        cls = jnp.broadcast_to(
            self.cls_token[...].reshape(1, 1, -1).astype(dt), (b, 1, x.shape[-1])
        )
        x = jnp.concatenate([cls, x], axis=1)
        return x + positions.astype(dt)[None]

    def __call__(
        self, pixels: jnp.ndarray, *, interpolate_pos_encoding: bool = False
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        h = self.embed(pixels, interpolate_pos_encoding)
        if self.pre_norm is not None:
            h = self.pre_norm(h)
        for layer in self.layers:
            h = layer(h)
        if self.config.family == "clip":
            return h, self.final_norm(h[:, 0])
        h = self.final_norm(h)
        return h, h[:, 0]

    def pooled(self, pixels: jnp.ndarray, *, interpolate_pos_encoding: bool = False) -> jnp.ndarray:
        """HF `pooler_output` [B, D]: CLIP post_layernorm(CLS), DINOv2 layernorm(h)[:, 0]."""
        return self(pixels, interpolate_pos_encoding=interpolate_pos_encoding)[1]
