"""Configs of the image towers: `ViTConfig` (CLIP vision tower, DINOv2) and the CLIP pair.

| family | embeddings                             | block                    | final norm          |
|--------|----------------------------------------|--------------------------|---------------------|
| clip   | conv patches (no bias) + class + pos,  | pre-LN, quick_gelu MLP   | `post_layernorm` on |
|        | then `pre_layrnorm`                    |                          | the CLS token only  |
| dinov2 | conv patches (bias) + cls + pos, pos   | pre-LN, layer scales on  | `layernorm` on      |
|        | bicubically resized for other sizes    | both branches; GELU or   | every token         |
|        |                                        | SwiGLU MLP               |                     |

Positions are a learned table over the pretraining grid; `ViT` resizes it (torch's bicubic,
align_corners=False) when an image of another size comes in (always for DINOv2; for CLIP only with
`interpolate_pos_encoding=True`, as HF does).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxmethods.models.decoder_config import ModelNumerics, dtype_name

VIT_FAMILIES = ("clip", "dinov2")
VISION_ACTIVATIONS = ("quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu")
ATTENTION_IMPLS = ("xla", "cudnn")


def _check_dtypes(config: Any, cls_name: str) -> None:
    for name in ("dtype", "param_dtype"):
        try:
            object.__setattr__(config, name, dtype_name(getattr(config, name)))
        except TypeError:
            raise ValueError(
                f"{cls_name}.{name}: {getattr(config, name)!r} is not a dtype"
            ) from None


def _check_shapes(config: Any, cls_name: str, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(config, name) <= 0:
            raise ValueError(f"{cls_name}.{name}: must be positive, got {getattr(config, name)}")
    if config.hidden_size % config.num_heads:
        raise ValueError(
            f"{cls_name}.num_heads: {config.num_heads} does not divide "
            f"hidden_size={config.hidden_size}"
        )
    if config.hidden_act not in VISION_ACTIVATIONS:
        raise ValueError(
            f"{cls_name}.hidden_act: {config.hidden_act!r} is not one of {VISION_ACTIVATIONS}"
        )
    if config.attention_impl not in ATTENTION_IMPLS:
        raise ValueError(
            f"{cls_name}.attention_impl: {config.attention_impl!r} is not one of {ATTENTION_IMPLS}"
        )


class _LoaderFields:
    """Fields the strict checkpoint loader (`jaxmethods.hf.pretrained._fill_state`) reads."""

    scan_layers = False
    tie_word_embeddings = False
    norm_plus_one = False


@dataclasses.dataclass(frozen=True)
class ViTConfig(_LoaderFields, ModelNumerics):
    """A ViT image encoder (CLIP vision tower or DINOv2).

    Attributes:
      hidden_size, intermediate_size, num_layers, num_heads: shapes (DINOv2's intermediate size
        is int(hidden * mlp_ratio); with `use_swiglu_ffn` it is the SwiGLU width, see below).
      image_size, patch_size, num_channels: the pretraining image side (the position table holds
        (image_size // patch_size)**2 + 1 rows), the square patch side, the input channels.
      family: "clip" or "dinov2" (module table).
      layer_norm_eps: LayerNorm epsilon (CLIP 1e-5, DINOv2 1e-6).
      hidden_act: MLP activation ("quick_gelu" is x * sigmoid(1.702 x), "gelu" exact erf).
      qkv_bias: bias on query/key/value (DINOv2 `qkv_bias`; CLIP always has one).
      layerscale_value: init of DINOv2's per-channel layer scales (ignored for CLIP).
      use_swiglu_ffn: DINOv2-giant's SwiGLU MLP (weights_in [H, 2F], weights_out [F, H] with
        F = (int(intermediate_size * 2 / 3) + 7) // 8 * 8).
      attention_impl: `jax.nn.dot_product_attention` implementation ("xla" or "cudnn").
    """

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    image_size: int = 224
    patch_size: int = 14
    num_channels: int = 3
    family: str = "dinov2"
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu"
    qkv_bias: bool = True
    layerscale_value: float = 1.0
    use_swiglu_ffn: bool = False
    dtype: str = "float32"
    param_dtype: str = "float32"
    initializer_range: float = 0.02
    attention_impl: str = "xla"

    def __post_init__(self):
        if self.family not in VIT_FAMILIES:
            raise ValueError(f"ViTConfig.family: {self.family!r} is not one of {VIT_FAMILIES}")
        _check_shapes(
            self,
            "ViTConfig",
            ("hidden_size", "intermediate_size", "num_layers", "num_heads", "image_size",
             "patch_size", "num_channels"),
        )  # fmt: skip
        if self.image_size % self.patch_size:
            raise ValueError(
                f"ViTConfig.patch_size: {self.patch_size} does not divide "
                f"image_size={self.image_size}"
            )
        _check_dtypes(self, "ViTConfig")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def grid(self) -> int:
        """Patches per side at the pretraining size."""
        return self.image_size // self.patch_size

    @property
    def num_positions(self) -> int:
        return self.grid**2 + 1

    @property
    def swiglu_width(self) -> int:
        return (int(self.intermediate_size * 2 / 3) + 7) // 8 * 8

    def replace(self, **changes: Any) -> ViTConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def tiny(cls, family: str = "dinov2", **overrides: Any) -> ViTConfig:
        """A 2-layer, hidden-32 ViT over 32x32 images in 8x8 patches (tests, CPU demos)."""
        base: dict[str, Any] = dict(
            hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4, image_size=32,
            patch_size=8, family=family,
        )  # fmt: skip
        if family == "clip":
            base.update(layer_norm_eps=1e-5, hidden_act="quick_gelu")
        base.update(overrides)
        return cls(**base)


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig(_LoaderFields, ModelNumerics):
    """CLIP's causal text transformer (pre-LN, learned positions, pooled at the EOS token).

    Attributes:
      vocab_size, hidden_size, intermediate_size, num_layers, num_heads: shapes.
      max_position_embeddings: the longest input (77 for every released CLIP).
      eos_token_id: pooling token. HF keeps the pre-2023 rule for eos_token_id == 2 (old
        configs): pool at argmax(input_ids), the highest id being the real EOS.
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    max_position_embeddings: int = 77
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"
    eos_token_id: int = 49407
    pad_token_id: int = 1
    dtype: str = "float32"
    param_dtype: str = "float32"
    initializer_range: float = 0.02
    attention_impl: str = "xla"
    family = "clip"

    def __post_init__(self):
        _check_shapes(
            self,
            "CLIPTextConfig",
            ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads",
             "max_position_embeddings"),
        )  # fmt: skip
        _check_dtypes(self, "CLIPTextConfig")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def replace(self, **changes: Any) -> CLIPTextConfig:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class CLIPConfig(_LoaderFields):
    """The CLIP pair: text tower, vision tower, both projected to `projection_dim`.

    `logit_scale_init_value` is log(1 / 0.07) = 2.6592 (the learned `logit_scale` is loaded)."""

    text: CLIPTextConfig
    vision: ViTConfig
    projection_dim: int = 512
    logit_scale_init_value: float = 2.6592
    family = "clip"

    def __post_init__(self):
        if self.vision.family != "clip":
            raise ValueError(
                f"CLIPConfig.vision: family must be 'clip', got {self.vision.family!r}"
            )
        if self.projection_dim <= 0:
            raise ValueError(
                f"CLIPConfig.projection_dim: must be positive, got {self.projection_dim}"
            )

    @property
    def initializer_range(self) -> float:
        return self.vision.initializer_range

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return self.vision.init_kwargs

    @classmethod
    def tiny(cls, vocab_size: int = 64, **overrides: Any) -> CLIPConfig:
        """Hidden-32, 2-layer towers; 32x32 images in 8x8 patches; 16-token texts."""
        text = CLIPTextConfig(
            vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_layers=2,
            num_heads=4, max_position_embeddings=16, eos_token_id=vocab_size - 1,
        )  # fmt: skip
        return cls(text=text, vision=ViTConfig.tiny("clip"), projection_dim=24, **overrides)
