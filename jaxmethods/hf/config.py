"""Hugging Face `config.json` <-> `DecoderConfig`, parsed as plain JSON (no transformers classes).

Reads both the transformers v4 layout (`rope_theta` + `rope_scaling`, `torch_dtype`) and the v5
layout (`rope_parameters`, `dtype`). Export writes the v5 layout, which transformers v5 loads (it
also still reads v4 fields).
"""

from __future__ import annotations

import json
import os
from typing import Any

from jaxmethods.models.decoder_config import DecoderConfig, dtype_name

MODEL_TYPE_TO_FAMILY = {"llama": "llama", "qwen2": "qwen2", "mistral": "mistral", "gemma": "gemma"}
CAUSAL_LM_ARCH = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "mistral": "MistralForCausalLM",
    "gemma": "GemmaForCausalLM",
}
SEQ_CLS_ARCH = {
    f: a.replace("ForCausalLM", "ForSequenceClassification") for f, a in CAUSAL_LM_ARCH.items()
}
_COMMON = dict(rms_norm_eps=1e-6, initializer_range=0.02, rope_theta=10000.0, pad_token_id=None)
# transformers' config-class defaults of the optional fields, per model_type: an absent field means
# what it means to transformers (tests/hf/test_autoconfig.py checks this table against AutoConfig).
HF_FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": dict(
        _COMMON, max_position_embeddings=2048, bos_token_id=1, eos_token_id=2,
        tie_word_embeddings=False, hidden_act="silu", attention_bias=False, mlp_bias=False,
    ),
    "qwen2": dict(
        _COMMON, max_position_embeddings=32768, bos_token_id=None, eos_token_id=None,
        tie_word_embeddings=False, hidden_act="silu", sliding_window=4096,
        use_sliding_window=False, max_window_layers=28,
    ),
    "mistral": dict(
        _COMMON, max_position_embeddings=131072, bos_token_id=1, eos_token_id=2,
        tie_word_embeddings=False, hidden_act="silu", sliding_window=4096,
    ),
    "gemma": dict(
        _COMMON, max_position_embeddings=8192, bos_token_id=2, eos_token_id=1, pad_token_id=0,
        tie_word_embeddings=True, hidden_act="gelu_pytorch_tanh", attention_bias=False,
    ),
}  # fmt: skip


def read_config_json(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no config.json in {folder!r}: not a Hugging Face model folder")
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON ({e})") from e


def _rope(hf: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """(rope_theta, scaling dict or None) from either config layout."""
    params = dict(hf.get("rope_parameters") or {})
    legacy = hf.get("rope_scaling")
    if legacy:
        params = {**dict(legacy), **params}
    theta = params.pop("rope_theta", hf["rope_theta"])
    kind = params.pop("rope_type", params.pop("type", "default"))
    if kind == "default":
        return float(theta), None
    if kind == "llama3":
        params.setdefault("original_max_position_embeddings", hf.get("max_position_embeddings"))
    return float(theta), {"rope_type": kind, **params}


def _dtype_name(hf: dict[str, Any]) -> str | None:
    name = hf.get("dtype", hf.get("torch_dtype"))
    if name is None:
        return None
    return str(name).removeprefix("torch.")


def decoder_config_from_hf(
    hf: dict[str, Any], *, source: str = "config.json", **overrides: Any
) -> DecoderConfig:
    """Parses an HF decoder config dict into a `DecoderConfig`.

    Args:
      hf: the parsed `config.json`.
      source: file name used in error messages.
      **overrides: DecoderConfig fields to set (dtype, param_dtype, scan_layers, remat, ...).
        Optional fields absent from `hf` take transformers' defaults (`HF_FAMILY_DEFAULTS`).
        When neither `param_dtype` nor `dtype` is given, the checkpoint's `torch_dtype` is used
        for both.
    """
    model_type = hf.get("model_type")
    if model_type not in MODEL_TYPE_TO_FAMILY:
        raise ValueError(
            f"{source}: model_type {model_type!r} is not supported; supported: "
            f"{sorted(MODEL_TYPE_TO_FAMILY)}"
        )
    family = MODEL_TYPE_TO_FAMILY[model_type]
    hf = {**HF_FAMILY_DEFAULTS[family], **hf}

    def need(key: str) -> Any:
        if key not in hf:
            raise ValueError(f"{source}: missing field {key!r} (model_type {model_type!r})")
        return hf[key]

    num_heads = int(need("num_attention_heads"))
    hidden = int(need("hidden_size"))
    num_layers = int(need("num_hidden_layers"))
    theta, scaling = _rope(hf)
    head_dim = hf.get("head_dim") or hidden // num_heads

    sliding_window, sliding_layers = hf.get("sliding_window"), None
    if family == "qwen2":
        if not hf.get("use_sliding_window", False):
            sliding_window = None
        elif hf.get("layer_types"):
            sliding_layers = tuple(t == "sliding_attention" for t in hf["layer_types"])
        else:
            start = hf["max_window_layers"]
            sliding_layers = tuple(i >= start for i in range(num_layers))
    elif family in ("llama", "gemma"):
        sliding_window = None

    act = hf["hidden_act"]
    if family == "gemma":
        # transformers v4 Gemma read `hidden_activation` (None -> gelu_pytorch_tanh), not hidden_act.
        if "hidden_activation" in hf:
            act = hf["hidden_activation"] or "gelu_pytorch_tanh"
        act = act or "gelu_pytorch_tanh"

    attention_bias = bool(hf.get("attention_bias", False))
    kwargs: dict[str, Any] = dict(
        family=family,
        vocab_size=int(need("vocab_size")),
        hidden_size=hidden,
        intermediate_size=int(need("intermediate_size")),
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=int(hf.get("num_key_value_heads") or num_heads),
        head_dim=int(head_dim),
        rope_theta=theta,
        rope_scaling=scaling,
        rms_norm_eps=float(hf["rms_norm_eps"]),
        norm_plus_one=family == "gemma",
        embed_scale_by_sqrt_dim=family == "gemma",
        tie_word_embeddings=bool(hf["tie_word_embeddings"]),
        attention_bias=True if family == "qwen2" else attention_bias,
        attention_out_bias=False if family == "qwen2" else attention_bias,
        mlp_bias=bool(hf.get("mlp_bias", False)),
        sliding_window=sliding_window,
        sliding_layers=sliding_layers,
        hidden_act=act,
        initializer_range=float(hf["initializer_range"]),
        max_position_embeddings=int(hf["max_position_embeddings"]),
        bos_token_id=hf["bos_token_id"],
        eos_token_id=hf["eos_token_id"],
        pad_token_id=hf["pad_token_id"],
    )
    ckpt_dtype = _dtype_name(hf)
    if ckpt_dtype is not None and "dtype" not in overrides and "param_dtype" not in overrides:
        kwargs.update(dtype=ckpt_dtype, param_dtype=ckpt_dtype)
    kwargs.update(overrides)
    try:
        return DecoderConfig(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: {e}") from e


def hf_config_from_decoder(
    cfg: DecoderConfig, *, architecture: str | None = None, num_labels: int | None = None
) -> dict[str, Any]:
    """The `config.json` dict transformers needs to rebuild `cfg` (v5 field names)."""
    model_type = cfg.family
    rope: dict[str, Any] = {"rope_theta": cfg.rope_theta, "rope_type": "default"}
    if cfg.rope_scaling is not None:
        scaling = dict(cfg.rope_scaling)
        scaling.pop("type", None)
        rope.update(scaling)
    out: dict[str, Any] = {
        "architectures": [architecture or CAUSAL_LM_ARCH[cfg.family]],
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": cfg.hidden_act,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_parameters": rope,
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "initializer_range": cfg.initializer_range,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "dtype": dtype_name(cfg.param_dtype),
    }
    if cfg.family == "llama":
        if cfg.attention_bias != cfg.attention_out_bias:
            raise ValueError(
                "Llama ties q/k/v and o biases (attention_bias); this config has "
                f"attention_bias={cfg.attention_bias}, attention_out_bias={cfg.attention_out_bias}"
            )
        out.update(attention_bias=cfg.attention_bias, mlp_bias=cfg.mlp_bias)
    elif cfg.family == "mistral":
        out.update(sliding_window=cfg.sliding_window)
    elif cfg.family == "qwen2":
        out.update(
            use_sliding_window=cfg.sliding_window is not None,
            sliding_window=cfg.sliding_window,
            max_window_layers=cfg.num_layers,
            layer_types=[
                "sliding_attention" if cfg.layer_window(i) is not None else "full_attention"
                for i in range(cfg.num_layers)
            ],
        )
    elif cfg.family == "gemma":
        out.update(attention_bias=cfg.attention_bias)
    if num_labels is not None:
        out["num_labels"] = num_labels
        out["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
        out["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
    return out


def infer_head(
    hf: dict[str, Any], head: str | None, *, default: str, heads: tuple[str, ...], source: str = ""
) -> str:
    """The model head to build: `head` when given, else "sequence_classification" when the
    config's `architectures` name a `*ForSequenceClassification`, else `default`."""
    if head is None:
        archs = hf.get("architectures") or []
        head = (
            "sequence_classification"
            if any("SequenceClassification" in a for a in archs)
            else default
        )
    if head not in heads:
        where = f"{source}: " if source else ""
        raise ValueError(f"{where}head={head!r} is not one of {heads}")
    return head
