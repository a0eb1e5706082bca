"""save_pretrained: exact round trips, HF-compatible keys/config, LoRA merged on export."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
from flax import nnx
from hf_testing import TOL, fixture_path, forward, reference, valid
from safetensors import safe_open

from jaxmethods.hf import load_pretrained, save_pretrained
from jaxmethods.models.decoder import DecoderConfig, DecoderLM
from jaxmethods.models.heads import SequenceClassifier
from jaxmethods.models.lora import LoRAParam, apply_lora


def _params(model) -> dict[str, np.ndarray]:
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {"/".join(map(str, k)): np.asarray(v[...]) for k, v in flat}


def _tensors(folder: str) -> dict[str, np.ndarray]:
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(folder, name), framework="np") as f:
                out.update({k: f.get_tensor(k) for k in sorted(f.keys())})
    return out


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "gemma"])
def test_export_then_load_round_trips_exactly(family, tmp_path):
    model = DecoderLM(DecoderConfig.tiny(vocab_size=64, family=family), rngs=nnx.Rngs(3))
    save_pretrained(model, str(tmp_path))
    loaded = load_pretrained(str(tmp_path), dtype="float32")
    assert loaded.config.replace(bos_token_id=None) == model.config.replace(bos_token_id=None)
    original, back = _params(model), _params(loaded)
    assert original.keys() == back.keys()
    for k in original:
        np.testing.assert_array_equal(original[k], back[k], err_msg=k)


def test_scanned_model_exports_per_layer_and_reloads_unscanned(tmp_path):
    model = DecoderLM(DecoderConfig.tiny(vocab_size=64, scan_layers=True), rngs=nnx.Rngs(4))
    save_pretrained(model, str(tmp_path))
    assert "model.layers.1.self_attn.q_proj.weight" in _tensors(str(tmp_path))
    loaded = load_pretrained(str(tmp_path), dtype="float32")
    stacked = _params(model)["model/layers/mlp/up_proj/kernel"]
    np.testing.assert_array_equal(_params(loaded)["model/layers/1/mlp/up_proj/kernel"], stacked[1])


@pytest.mark.parametrize("name", ["llama3", "qwen2_sliding", "gemma", "llama_reward"])
def test_export_of_loaded_fixture_reproduces_hf_keys_config_and_tensors(name, tmp_path):
    """Our export of an HF checkpoint has the same tensor names, shapes and values, and a config
    transformers' AutoConfig reads back with the same architecture fields."""
    from transformers import AutoConfig

    src = fixture_path(name)
    save_pretrained(load_pretrained(src, dtype="float32"), str(tmp_path))
    ours, theirs = _tensors(str(tmp_path)), _tensors(src)
    assert sorted(ours) == sorted(theirs)
    for k in theirs:
        np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)
    a, b = AutoConfig.from_pretrained(str(tmp_path)), AutoConfig.from_pretrained(src)
    fields = [
        "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act", "rms_norm_eps",
        "tie_word_embeddings", "sliding_window", "layer_types", "rope_parameters", "architectures",
    ]  # fmt: skip
    for field in fields:
        if getattr(b, field, None) is not None:  # Qwen2Config has no head_dim attribute
            assert getattr(a, field, None) == getattr(b, field), field


def test_lora_is_merged_on_export(tmp_path):
    model = load_pretrained(fixture_path("qwen2"), dtype="float32")
    apply_lora(model, 2, 4.0, target_modules=r"(q_proj|down_proj)$")
    graphdef, lora, rest = nnx.split(model, LoRAParam, ...)
    rng = np.random.RandomState(0)
    lora = jax.tree.map(lambda x: jax.numpy.asarray(0.3 * rng.randn(*x.shape), x.dtype), lora)
    adapted = nnx.merge(graphdef, lora, rest)
    save_pretrained(adapted, str(tmp_path))
    assert not any("lora" in k for k in _tensors(str(tmp_path)))
    back = _params(load_pretrained(str(tmp_path), dtype="float32"))
    for i in range(2):
        for name in ("self_attn/q_proj", "mlp/down_proj"):
            dense = adapted.model.layers[i]
            for part in name.split("/"):
                dense = getattr(dense, part)
            a, b = np.asarray(dense.lora_a[...]), np.asarray(dense.lora_b[...])
            merged = np.asarray(dense.kernel[...]) + dense.lora_scale * a @ b
            np.testing.assert_allclose(back[f"model/layers/{i}/{name}/kernel"], merged, atol=1e-6)
    untouched = "model/layers/0/self_attn/k_proj/kernel"
    np.testing.assert_array_equal(back[untouched], _params(model)[untouched])


def test_sharded_export_writes_index_and_reloads(tmp_path):
    model = load_pretrained(fixture_path("llama"), dtype="float32")
    files = save_pretrained(model, str(tmp_path), max_shard_bytes=8_000)
    assert "model.safetensors.index.json" in files
    with open(tmp_path / "model.safetensors.index.json") as f:
        weight_map = json.load(f)["weight_map"]
    assert len(set(weight_map.values())) > 1
    back = load_pretrained(str(tmp_path), dtype="float32")
    for k, v in _params(model).items():
        np.testing.assert_array_equal(_params(back)[k], v)


def test_bfloat16_export_and_load(tmp_path):
    model = load_pretrained(fixture_path("mistral"), dtype="float32")
    save_pretrained(model, str(tmp_path), dtype="bfloat16")
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["dtype"] == "bfloat16"
    back = load_pretrained(str(tmp_path), dtype="float32")
    kernel = _params(back)["model/layers/0/self_attn/q_proj/kernel"]
    np.testing.assert_allclose(
        kernel, _params(model)["model/layers/0/self_attn/q_proj/kernel"], rtol=1e-2
    )
    bf16 = load_pretrained(str(tmp_path), dtype="bfloat16")
    assert bf16.model.embed_tokens.embedding.dtype == jax.numpy.bfloat16


def test_reward_model_export_has_score_and_classification_architecture(tmp_path):
    model = SequenceClassifier(DecoderConfig.tiny(vocab_size=64), num_labels=3, rngs=nnx.Rngs(0))
    save_pretrained(model, str(tmp_path))
    with open(tmp_path / "config.json") as f:
        cfg = json.load(f)
    assert cfg["architectures"] == ["LlamaForSequenceClassification"] and cfg["num_labels"] == 3
    tensors = _tensors(str(tmp_path))
    assert tensors["score.weight"].shape == (3, 32) and "lm_head.weight" not in tensors
    back = load_pretrained(str(tmp_path), dtype="float32")
    assert isinstance(back, SequenceClassifier) and back.num_labels == 3


def test_transformers_loads_our_export_with_same_logits(tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    ref = reference("gemma")
    model = DecoderLM(
        DecoderConfig.tiny(vocab_size=64, family="gemma", initializer_range=0.2), rngs=nnx.Rngs(5)
    )
    ours = forward(model, ref["input_ids"], ref["attention_mask"])
    save_pretrained(model, str(tmp_path))
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = hf(
            input_ids=torch.tensor(ref["input_ids"]),
            attention_mask=torch.tensor(ref["attention_mask"]),
            position_ids=torch.tensor(ref["position_ids"]),
        ).logits.numpy()
    mask = ref["attention_mask"]
    np.testing.assert_allclose(valid(ours, mask), valid(theirs, mask), **TOL)
