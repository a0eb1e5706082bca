"""The CLIP pair in Flax NNX (Radford et al. 2021; HF `CLIPModel` layout).

Parameter paths:
  text_model/token_embedding/embedding [V, H], text_model/position_embedding/embedding [P, H]
  text_model/layers/<i>/... (pre-LN blocks, `jaxmethods.models.vision.layers`)
  text_model/final_norm
  vision_model/...  a `ViT` of family "clip"
  visual_projection/kernel [Hv, E], text_projection/kernel [Ht, E] (no bias)
  logit_scale []  (logits = exp(logit_scale) * cos)

Text: causal self-attention over the non-padding tokens; pooled at the first EOS token (or at
argmax(input_ids) when eos_token_id == 2, HF's rule for old configs).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jaxmethods.models.linear import Dense, Embed
from jaxmethods.models.pooling import l2_normalize
from jaxmethods.models.vision.config import CLIPConfig, CLIPTextConfig
from jaxmethods.models.vision.layers import Block, layer_norm
from jaxmethods.models.vision.vit import ViT


class CLIPTextTransformer(nnx.Module):
    """ids [B, T] int, attention_mask [B, T] | None -> (last_hidden_state [B, T, H],
    pooled [B, H]); T <= max_position_embeddings."""

    def __init__(self, config: CLIPTextConfig, *, rngs: nnx.Rngs):
        self.config = config
        kw = dict(**config.init_kwargs, rngs=rngs)
        self.token_embedding = Embed(config.vocab_size, config.hidden_size, **kw)
        self.position_embedding = Embed(config.max_position_embeddings, config.hidden_size, **kw)
        self.layers = nnx.List(
            [Block(config, layer_scale=False, rngs=rngs) for _ in range(config.num_layers)]
        )
        self.final_norm = layer_norm(config, rngs)

    def __call__(
        self, input_ids: jnp.ndarray, attention_mask: jnp.ndarray | None = None
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        cfg = self.config
        b, t = input_ids.shape
        if t > cfg.max_position_embeddings:
            raise ValueError(
                f"CLIP text: {t} tokens exceed max_position_embeddings="
                f"{cfg.max_position_embeddings}"
            )
        positions = jnp.arange(t, dtype=jnp.int32)
        h = self.token_embedding(input_ids) + self.position_embedding(positions)[None]
        causal = positions[None, :] <= positions[:, None]  # [T, S]
        valid = jnp.ones((b, t), bool) if attention_mask is None else attention_mask > 0
        mask = causal[None, None] & valid[:, None, None, :]
        for layer in self.layers:
            h = layer(h, mask)
        h = self.final_norm(h)
        if cfg.eos_token_id == 2:
            eos = jnp.argmax(input_ids, axis=-1)
        else:
            eos = jnp.argmax((input_ids == cfg.eos_token_id).astype(jnp.int32), axis=-1)
        return h, h[jnp.arange(b), eos]


class CLIPModel(nnx.Module):
    """Text + vision towers and their projections.

    `image_features(pixels [B, H, W, 3])` -> [B, E]; `text_features(ids [B, T], mask)` -> [B, E]
    (unnormalised, HF `get_image_features` / `get_text_features`); `__call__` -> logits_per_image
    [B_img, B_txt] = exp(logit_scale) * cos.
    """

    def __init__(self, config: CLIPConfig, *, rngs: nnx.Rngs | None = None):
        rngs = nnx.Rngs(0) if rngs is None else rngs
        self.config = config
        self.text_model = CLIPTextTransformer(config.text, rngs=rngs)
        self.vision_model = ViT(config.vision, rngs=rngs)
        e = config.projection_dim
        self.visual_projection = Dense(
            config.vision.hidden_size, e, use_bias=False, **config.vision.init_kwargs, rngs=rngs
        )
        self.text_projection = Dense(
            config.text.hidden_size, e, use_bias=False, **config.text.init_kwargs, rngs=rngs
        )
        self.logit_scale = nnx.Param(
            jnp.asarray(config.logit_scale_init_value, config.vision.weight_dtype)
        )

    def image_features(
        self, pixels: jnp.ndarray, *, interpolate_pos_encoding: bool = False
    ) -> jnp.ndarray:
        pooled = self.vision_model.pooled(pixels, interpolate_pos_encoding=interpolate_pos_encoding)
        return self.visual_projection(pooled)

    def text_features(
        self, input_ids: jnp.ndarray, attention_mask: jnp.ndarray | None = None
    ) -> jnp.ndarray:
        return self.text_projection(self.text_model(input_ids, attention_mask)[1])

    def __call__(self, pixels, input_ids, attention_mask=None) -> jnp.ndarray:
        img = l2_normalize(self.image_features(pixels))
        txt = l2_normalize(self.text_features(input_ids, attention_mask))
        return jnp.exp(self.logit_scale[...].astype(jnp.float32)) * img @ txt.T
