"""Hugging Face `config.json` of CLIP (`model_type: clip`) and DINOv2 -> our vision configs.

Parsed as plain JSON like the decoder and encoder configs. Absent fields take transformers'
config-class defaults (`VISION_HF_DEFAULTS`, checked against `transformers.AutoConfig` in
tests/hf/test_vision_loading.py). CLIP's nested `text_config` / `vision_config` are read, with the
old `text_config_dict` / `vision_config_dict` fields (openai checkpoints) taking precedence as in
transformers.
"""

from __future__ import annotations

from typing import Any

from jaxmethods.models.vision.config import CLIPConfig, CLIPTextConfig, ViTConfig

VISION_MODEL_TYPES = ("clip", "dinov2")

VISION_HF_DEFAULTS: dict[str, dict[str, Any]] = {
    "clip_text_model": dict(
        vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
        num_attention_heads=8, max_position_embeddings=77, hidden_act="quick_gelu",
        layer_norm_eps=1e-5, initializer_range=0.02, pad_token_id=1, eos_token_id=49407,
    ),
    "clip_vision_model": dict(
        hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        num_channels=3, image_size=224, patch_size=32, hidden_act="quick_gelu",
        layer_norm_eps=1e-5, initializer_range=0.02,
    ),
    "clip": dict(projection_dim=512, logit_scale_init_value=2.6592),
    "dinov2": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, mlp_ratio=4,
        hidden_act="gelu", initializer_range=0.02, layer_norm_eps=1e-6, image_size=224,
        patch_size=14, num_channels=3, qkv_bias=True, layerscale_value=1.0,
        use_swiglu_ffn=False,
    ),
}  # fmt: skip


def _fields(hf: dict[str, Any], model_type: str) -> dict[str, Any]:
    return {**VISION_HF_DEFAULTS[model_type], **{k: v for k, v in hf.items() if v is not None}}


def _square(value: Any, name: str, source: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"{source}: non-square {name} {value} is not supported")
        value = value[0]
    return int(value)


def vit_config_from_hf(
    hf: dict[str, Any], *, family: str, source: str = "config.json", **overrides: Any
) -> ViTConfig:
    """`ViTConfig` of a DINOv2 config dict (family "dinov2") or a CLIP `vision_config` dict
    (family "clip"); `overrides` are ViTConfig fields (dtype, param_dtype, attention_impl)."""
    c = _fields(hf, "dinov2" if family == "dinov2" else "clip_vision_model")
    fields = dict(
        hidden_size=c["hidden_size"], num_layers=c["num_hidden_layers"],
        num_heads=c["num_attention_heads"], num_channels=c["num_channels"],
        image_size=_square(c["image_size"], "image_size", source),
        patch_size=_square(c["patch_size"], "patch_size", source), family=family,
        layer_norm_eps=c["layer_norm_eps"], hidden_act=c["hidden_act"],
        initializer_range=c["initializer_range"],
    )  # fmt: skip
    if family == "dinov2":
        fields.update(
            intermediate_size=int(c["hidden_size"] * c["mlp_ratio"]), qkv_bias=c["qkv_bias"],
            layerscale_value=c["layerscale_value"], use_swiglu_ffn=c["use_swiglu_ffn"],
        )  # fmt: skip
    else:
        fields.update(intermediate_size=c["intermediate_size"])
    fields.update(overrides)
    try:
        return ViTConfig(**fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: {e}") from e


def clip_text_config_from_hf(
    hf: dict[str, Any], *, source: str = "config.json", **overrides: Any
) -> CLIPTextConfig:
    c = _fields(hf, "clip_text_model")
    eos = c["eos_token_id"]
    if isinstance(eos, (list, tuple)):
        eos = eos[0]
    fields = dict(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
        intermediate_size=c["intermediate_size"], num_layers=c["num_hidden_layers"],
        num_heads=c["num_attention_heads"], max_position_embeddings=c["max_position_embeddings"],
        layer_norm_eps=c["layer_norm_eps"], hidden_act=c["hidden_act"], eos_token_id=int(eos),
        pad_token_id=int(c["pad_token_id"]), initializer_range=c["initializer_range"],
    )  # fmt: skip
    fields.update(overrides)
    try:
        return CLIPTextConfig(**fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source} (text_config): {e}") from e


def clip_config_from_hf(
    hf: dict[str, Any], *, source: str = "config.json", **overrides: Any
) -> CLIPConfig:
    """`CLIPConfig` of a `model_type: clip` config dict; `overrides` (dtype, param_dtype,
    attention_impl) apply to both towers."""
    if hf.get("model_type") != "clip":
        raise ValueError(f"{source}: model_type {hf.get('model_type')!r} is not 'clip'")
    text = {**(hf.get("text_config") or {}), **(hf.get("text_config_dict") or {})}
    vision = {**(hf.get("vision_config") or {}), **(hf.get("vision_config_dict") or {})}
    c = _fields(hf, "clip")
    return CLIPConfig(
        text=clip_text_config_from_hf(text, source=source, **overrides),
        vision=vit_config_from_hf(vision, family="clip", source=source, **overrides),
        projection_dim=int(c["projection_dim"]),
        logit_scale_init_value=float(c["logit_scale_init_value"]),
    )
