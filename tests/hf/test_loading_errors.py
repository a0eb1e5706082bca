"""Strict checkpoint accounting and clear errors (missing / extra / mis-shaped tensors, configs)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from hf_testing import fixture_path
from safetensors import safe_open
from safetensors.numpy import save_file

from jaxmethods.hf import load_pretrained
from jaxmethods.hf.config import decoder_config_from_hf


def _copy_with(tmp_path, name: str, edit) -> str:
    """Copies fixture `name` into tmp_path, rewriting its tensors with `edit(dict) -> dict`."""
    dst = str(tmp_path / name)
    shutil.copytree(fixture_path(name), dst)
    path = os.path.join(dst, "model.safetensors")
    with safe_open(path, framework="np") as f:
        tensors = {k: f.get_tensor(k) for k in sorted(f.keys())}
    save_file(edit(tensors), path, {"format": "pt"})
    return dst


def test_missing_tensor_is_named_with_its_file(tmp_path):
    key = "model.layers.1.mlp.up_proj.weight"
    folder = _copy_with(tmp_path, "llama", lambda t: {k: v for k, v in t.items() if k != key})
    with pytest.raises(
        ValueError,
        match=r"missing tensor.*model\.layers\.1\.mlp\.up_proj\.weight.*model\.safetensors",
    ):
        load_pretrained(folder, dtype="float32")


def test_unexpected_tensor_is_named_with_its_file(tmp_path):
    folder = _copy_with(
        tmp_path, "llama", lambda t: {**t, "model.extra_head.weight": np.ones((2, 2), np.float32)}
    )
    with pytest.raises(
        ValueError, match=r"unexpected tensor.*model\.extra_head\.weight' in model\.safetensors"
    ):
        load_pretrained(folder, dtype="float32")


def test_tensor_for_a_parameter_the_config_lacks_is_unexpected(tmp_path):
    # A q_proj bias in a Llama checkpoint whose config says attention_bias=false.
    folder = _copy_with(
        tmp_path,
        "llama",
        lambda t: {**t, "model.layers.0.self_attn.q_proj.bias": np.zeros(16, np.float32)},
    )
    with pytest.raises(ValueError, match=r"unexpected tensor.*q_proj\.bias"):
        load_pretrained(folder, dtype="float32")


def test_shape_mismatch_names_key_and_shapes(tmp_path):
    key = "model.layers.0.self_attn.k_proj.weight"
    folder = _copy_with(tmp_path, "mistral", lambda t: {**t, key: np.zeros((4, 16), np.float32)})
    with pytest.raises(ValueError, match=r"k_proj\.weight' in model\.safetensors: shape \(16, 4\)"):
        load_pretrained(folder, dtype="float32")


def test_sharded_index_naming_a_missing_file(tmp_path):
    dst = tmp_path / "m"
    shutil.copytree(fixture_path("llama"), dst)
    with open(dst / "model.safetensors.index.json", "w") as f:
        json.dump({"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}, f)
    with pytest.raises(FileNotFoundError, match=r"model-00002-of-00002\.safetensors"):
        load_pretrained(str(dst), dtype="float32")


def test_fresh_score_head_on_a_causal_lm_checkpoint():
    with pytest.raises(ValueError, match=r"missing tensor.*score\.weight"):
        load_pretrained(fixture_path("llama"), dtype="float32", head="sequence_classification")
    model = load_pretrained(
        fixture_path("llama"),
        dtype="float32",
        head="sequence_classification",
        num_labels=1,
        fresh_params=("score/",),
        ignore_checkpoint_keys=(r"^lm_head\.",),
    )
    assert model.score.kernel.shape == (16, 1)


def test_no_checkpoint_files(tmp_path):
    shutil.copy(os.path.join(fixture_path("llama"), "config.json"), tmp_path / "config.json")
    with pytest.raises(FileNotFoundError, match=r"no \*\.safetensors"):
        load_pretrained(str(tmp_path), dtype="float32")


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="model_type 'gpt2' is not supported"):
        decoder_config_from_hf({"model_type": "gpt2"})
    with pytest.raises(ValueError, match="missing field 'hidden_size'"):
        decoder_config_from_hf(
            {"model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2}
        )


def test_config_parses_transformers_v4_layout():
    cfg = decoder_config_from_hf(
        {
            "model_type": "llama",
            "vocab_size": 128,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "rope_theta": 500000.0,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
            "torch_dtype": "bfloat16",
        }
    )
    assert cfg.head_dim == 8 and cfg.num_kv_heads == 2 and cfg.rope_theta == 500000.0
    assert cfg.rope_scaling["rope_type"] == "llama3" and cfg.rope_scaling["factor"] == 8.0
    assert cfg.param_dtype == "bfloat16" and cfg.dtype == "bfloat16"
    gemma = decoder_config_from_hf(
        {
            "model_type": "gemma",
            "vocab_size": 128,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "head_dim": 32,
            "hidden_act": "gelu",
            "hidden_activation": None,
        }
    )
    # transformers v4 ran Gemma with hidden_activation (None -> gelu tanh), ignoring hidden_act.
    assert (
        gemma.hidden_act == "gelu_pytorch_tanh"
        and gemma.tie_word_embeddings
        and gemma.norm_plus_one
    )


def test_hub_id_resolves_through_snapshot_download(monkeypatch):
    """A hub id goes through huggingface_hub.snapshot_download (faked here: tests are offline)."""
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None):
        calls.append((repo_id, revision, tuple(allow_patterns)))
        return fixture_path("qwen2")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    model = load_pretrained("Qwen/Qwen2.5-0.5B", dtype="float32", revision="main")
    assert model.config.family == "qwen2" and model.config.tie_word_embeddings
    assert calls == [
        (
            "Qwen/Qwen2.5-0.5B",
            "main",
            ("*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"),
        )
    ]
