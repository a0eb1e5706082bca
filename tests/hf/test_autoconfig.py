"""`hf/config.py` (plain-JSON parsing, no transformers at load time) cross-checked field by field
against `transformers.AutoConfig` (no torch needed), on every committed fixture family and on
transformers v4-layout configs shaped like real checkpoints (`rope_scaling`, `torch_dtype`,
Qwen2.5's disabled sliding window, Mistral's null window, Gemma's `hidden_activation`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hf_testing import CAUSAL_FIXTURES, fixture_path

from jaxmethods.hf.config import HF_FAMILY_DEFAULTS, decoder_config_from_hf, read_config_json

pytestmark = pytest.mark.hf_parity

_SHAPE = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_attention_heads=4)
# transformers v4 layouts of public checkpoints, shrunk (the fields that matter are kept).
V4_CONFIGS: dict[str, dict[str, Any]] = {
    "llama3.1": dict(
        _SHAPE, model_type="llama", num_hidden_layers=2, num_key_value_heads=2,
        rope_theta=500000.0, rms_norm_eps=1e-5, torch_dtype="bfloat16",
        max_position_embeddings=131072, bos_token_id=1, eos_token_id=[2, 3, 4],
        rope_scaling=dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=8192, rope_type="llama3"),
    ),
    "llama2_linear": dict(
        _SHAPE, model_type="llama", num_hidden_layers=2, rope_scaling={"type": "linear",
        "factor": 4.0}, attention_bias=True, mlp_bias=True, torch_dtype="float16",
    ),
    "qwen2.5": dict(
        _SHAPE, model_type="qwen2", num_hidden_layers=3, num_key_value_heads=2,
        rope_theta=1e6, rms_norm_eps=1e-6, torch_dtype="bfloat16", sliding_window=32768,
        use_sliding_window=False, max_window_layers=21, tie_word_embeddings=True,
    ),
    "qwen2_window": dict(
        _SHAPE, model_type="qwen2", num_hidden_layers=3, num_key_value_heads=1,
        sliding_window=5, use_sliding_window=True, max_window_layers=1,
    ),
    "mistral_v0.2": dict(
        _SHAPE, model_type="mistral", num_hidden_layers=2, num_key_value_heads=2,
        rope_theta=1e6, sliding_window=None, head_dim=None, torch_dtype="bfloat16",
    ),
    "mistral_v0.1": dict(
        _SHAPE, model_type="mistral", num_hidden_layers=2, num_key_value_heads=2,
        sliding_window=4096,
    ),
    "gemma_v4": dict(
        _SHAPE, model_type="gemma", num_hidden_layers=2, num_key_value_heads=1, head_dim=8,
        hidden_act="gelu", hidden_activation=None, torch_dtype="bfloat16",
    ),
}  # fmt: skip


def expected_from_autoconfig(c) -> dict[str, Any]:
    """The DecoderConfig fields transformers' own config object implies, derived here from the
    attributes transformers' modeling code reads (v5 `rope_parameters`, Qwen2 `layer_types`)."""
    family = c.model_type
    rope = dict(c.rope_parameters)
    theta, kind = rope.pop("rope_theta"), rope.pop("rope_type")
    rope.pop("type", None)  # transformers keeps a v4 `type` beside `rope_type`
    window, sliding_layers = None, None
    if family == "mistral":
        window = c.sliding_window
    elif family == "qwen2" and c.use_sliding_window:
        window = c.sliding_window
        sliding_layers = tuple(t == "sliding_attention" for t in c.layer_types)
    act = c.hidden_act
    if family == "gemma" and hasattr(c, "hidden_activation"):
        # Deliberate: transformers v4 ran Gemma with `hidden_activation` (None -> gelu tanh, the
        # activation Gemma was trained with); v5 reads `hidden_act` ("gelu") for such configs.
        act = c.hidden_activation or "gelu_pytorch_tanh"
    qkv_bias = True if family == "qwen2" else bool(getattr(c, "attention_bias", False))
    return dict(
        family=family,
        vocab_size=c.vocab_size,
        hidden_size=c.hidden_size,
        intermediate_size=c.intermediate_size,
        num_layers=c.num_hidden_layers,
        num_heads=c.num_attention_heads,
        num_kv_heads=c.num_key_value_heads or c.num_attention_heads,
        head_dim=getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
        rope_theta=float(theta),
        rope_scaling=None if kind == "default" else {"rope_type": kind, **rope},
        rms_norm_eps=c.rms_norm_eps,
        tie_word_embeddings=c.tie_word_embeddings,
        sliding_window=window,
        sliding_layers=sliding_layers,
        hidden_act=act,
        attention_bias=qkv_bias,
        attention_out_bias=False if family == "qwen2" else qkv_bias,
        mlp_bias=bool(getattr(c, "mlp_bias", False)),
        norm_plus_one=family == "gemma",
        embed_scale_by_sqrt_dim=family == "gemma",
        max_position_embeddings=c.max_position_embeddings,
        initializer_range=c.initializer_range,
        bos_token_id=c.bos_token_id,
        eos_token_id=c.eos_token_id,
        pad_token_id=c.pad_token_id,
        # No dtype in config.json: transformers loads float32, DecoderConfig's default too.
        dtype=str(c.dtype or "float32").removeprefix("torch."),
        param_dtype=str(c.dtype or "float32").removeprefix("torch."),
    )


def _cross_check(folder: str) -> None:
    from transformers import AutoConfig

    theirs = expected_from_autoconfig(AutoConfig.from_pretrained(folder))
    ours = decoder_config_from_hf(read_config_json(folder))
    wrong = {f: (getattr(ours, f), want) for f, want in theirs.items() if getattr(ours, f) != want}
    assert not wrong, f"{folder}: (ours, AutoConfig's) differ: {wrong}"


@pytest.mark.parametrize("name", [*CAUSAL_FIXTURES, "llama_reward"])
def test_fixture_configs_match_autoconfig(name):
    _cross_check(fixture_path(name))


@pytest.mark.parametrize("name", sorted(V4_CONFIGS))
def test_transformers_v4_layouts_match_autoconfig(name, tmp_path):
    with open(tmp_path / "config.json", "w") as f:
        json.dump(V4_CONFIGS[name], f)
    _cross_check(str(tmp_path))


@pytest.mark.parametrize("family", sorted(HF_FAMILY_DEFAULTS))
def test_absent_field_defaults_are_transformers_defaults(family):
    from transformers import AutoConfig

    # use_sliding_window=True keeps Qwen2's default window (transformers nulls it otherwise).
    extra = dict(use_sliding_window=True) if family == "qwen2" else {}
    c = AutoConfig.for_model(family, **extra)
    for field, value in HF_FAMILY_DEFAULTS[family].items():
        if field == "rope_theta":
            theirs = c.rope_parameters["rope_theta"]
        elif field == "use_sliding_window":
            theirs = AutoConfig.for_model(family).use_sliding_window
        else:
            theirs = getattr(c, field)
        assert value == theirs, f"{family}.{field}"


def test_the_cross_check_catches_a_wrong_field(tmp_path, monkeypatch):
    """A parser that drops Qwen2's window layers would fail the comparison above."""
    import jaxmethods.hf.config as config

    with open(tmp_path / "config.json", "w") as f:
        json.dump(V4_CONFIGS["qwen2_window"], f)
    real = config.decoder_config_from_hf
    monkeypatch.setitem(
        globals(), "decoder_config_from_hf", lambda hf: real(hf, sliding_layers=None)
    )
    with pytest.raises(AssertionError, match="sliding_layers"):
        _cross_check(str(tmp_path))
