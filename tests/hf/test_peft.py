"""PEFT export/import of LoRA adapters: PEFT's key names, layouts and config fields, a bit-exact
round trip (per-layer and `scan_layers` decoders, MultiLoRA and plain `apply_lora` models), clear
errors, and (with torch + peft installed) `PeftModel.from_pretrained` giving our logits."""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file

from jaxmethods.hf.peft import load_peft_adapter, save_peft_adapter
from jaxmethods.models.decoder import DecoderConfig, DecoderLM
from jaxmethods.models.lora import LoRAParam, apply_lora
from jaxmethods.models.multi_lora import apply_multi_lora

NAMES = ("reasoner", "predictor")
RANKS = (4, 2)
ALPHAS = (8.0, 4.0)
TARGETS = r"(q_proj|v_proj|down_proj)$"
IDS = np.random.RandomState(0).randint(3, 64, size=(2, 7)).astype(np.int32)


def _config(**kw) -> DecoderConfig:
    return DecoderConfig.tiny(vocab_size=64, initializer_range=0.2, **kw)


def _randomize(ml, seed: int = 0) -> None:
    """Random factors (exactly rank r: entries past each adapter's rank stay zero) and heads."""
    rng = np.random.RandomState(seed)
    keep = np.arange(max(RANKS)) < np.asarray(RANKS)[:, None]

    def draw(path, x):
        v = 0.3 * rng.randn(*x.shape).astype(np.float32)
        if "lora_a" in jax.tree_util.keystr(path):
            return jnp.asarray(v * keep.reshape(len(NAMES), *[1] * (x.ndim - 2), -1))
        return jnp.asarray(v * keep.reshape(len(NAMES), *[1] * (x.ndim - 3), -1, 1))

    heads = (
        ml.bank.heads[0],
        *[
            jax.tree.map(lambda x: jnp.asarray(0.3 * rng.randn(*x.shape), x.dtype), h)
            for h in ml.bank.heads[1:]
        ],
    )
    lora = jax.tree_util.tree_map_with_path(draw, ml.bank.lora)
    ml.bank = dataclasses.replace(ml.bank, lora=lora, heads=heads)


def _multi(scan_layers: bool = False, seed: int = 0):
    model = DecoderLM(_config(scan_layers=scan_layers), rngs=nnx.Rngs(seed))
    ml = apply_multi_lora(
        model, NAMES, RANKS, ALPHAS, dropout=(0.1, 0.0), target_modules=TARGETS,
        head_trainable=("predictor",),
    )  # fmt: skip
    _randomize(ml, seed)
    return ml


@pytest.fixture(scope="module")
def multi():
    return _multi()


def _np_flat(state) -> dict[str, np.ndarray]:
    return {"/".join(map(str, k)): np.asarray(v[...]) for k, v in nnx.to_flat_state(state)}


def test_keys_layouts_and_config_are_peft_s(multi, tmp_path):
    ml = multi
    files = save_peft_adapter(ml, tmp_path, adapter="predictor", base_model_name_or_path="base")
    assert sorted(files) == ["adapter_config.json", "adapter_model.safetensors"]
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["task_type"] == "CAUSAL_LM"
    assert (cfg["r"], cfg["lora_alpha"], cfg["lora_dropout"]) == (2, 4.0, 0.0)
    assert cfg["target_modules"] == ["down_proj", "q_proj", "v_proj"]
    assert cfg["modules_to_save"] == ["lm_head"] and cfg["base_model_name_or_path"] == "base"

    tensors = load_file(tmp_path / "adapter_model.safetensors")
    bank = _np_flat(ml.bank.lora)
    k, r = 1, 2
    want = {"base_model.model.lm_head.weight": _np_flat(ml.bank.heads[1])["lm_head/kernel"].T}
    for i in range(2):
        for mod in ("self_attn/q_proj", "self_attn/v_proj", "mlp/down_proj"):
            key = f"base_model.model.model.layers.{i}.{mod.replace('/', '.')}"
            a = bank[f"model/layers/{i}/{mod}/lora_a"][k]  # [in, r_max]
            b = bank[f"model/layers/{i}/{mod}/lora_b"][k]  # [r_max, out]
            want[key + ".lora_A.weight"] = a[:, :r].T  # [r, in]
            want[key + ".lora_B.weight"] = b[:r].T  # [out, r]
    assert sorted(tensors) == sorted(want)
    for key, value in want.items():
        np.testing.assert_array_equal(tensors[key], value, err_msg=key)
    assert tensors["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"].shape == (
        16,
        2,
    )

    # a non-head adapter: no modules_to_save, its own r / alpha / dropout
    save_peft_adapter(ml, tmp_path / "reasoner", adapter="reasoner")
    cfg = json.loads((tmp_path / "reasoner" / "adapter_config.json").read_text())
    assert (cfg["r"], cfg["lora_alpha"], cfg["lora_dropout"], cfg["modules_to_save"]) == (
        4, 8.0, 0.1, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    "scan_layers",
    [False, pytest.param(True, marks=pytest.mark.slow)],  # scan init: ~30 compiles
)
def test_round_trip_is_bit_exact(multi, scan_layers, tmp_path):
    ml = multi if not scan_layers else _multi(scan_layers=True, seed=1)
    for name in NAMES:
        want = jax.tree.map(np.asarray, ml.trainable(name))
        save_peft_adapter(ml, tmp_path / name, adapter=name)
        ml.insert(name, jax.tree.map(jnp.zeros_like, ml.trainable(name)))
        load_peft_adapter(tmp_path / name, ml, adapter=name)
        got = jax.tree.map(np.asarray, ml.trainable(name))
        assert jax.tree.structure(got) == jax.tree.structure(want)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_array_equal(a, b)


def test_plain_lora_model_round_trip(tmp_path):
    model = DecoderLM(_config(), rngs=nnx.Rngs(0))
    apply_lora(model, rank=3, alpha=6.0, target_modules=r"(k_proj|o_proj)$")
    rng = np.random.RandomState(3)
    lora = jax.tree.map(
        lambda x: jnp.asarray(rng.randn(*x.shape), x.dtype), nnx.state(model, LoRAParam)
    )
    nnx.update(model, lora)
    save_peft_adapter(model, tmp_path)
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    assert (cfg["r"], cfg["lora_alpha"], cfg["target_modules"]) == (3, 6.0, ["k_proj", "o_proj"])
    fresh = DecoderLM(_config(), rngs=nnx.Rngs(0))
    apply_lora(fresh, rank=3, alpha=6.0, target_modules=r"(k_proj|o_proj)$")
    load_peft_adapter(tmp_path, fresh)
    got, want = _np_flat(nnx.state(fresh, LoRAParam)), _np_flat(lora)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


def test_partial_targets_become_an_exact_regex(tmp_path):
    model = DecoderLM(_config(), rngs=nnx.Rngs(0))
    apply_lora(model, rank=2, alpha=2.0, target_modules=r"layers/1/self_attn/q_proj$")
    save_peft_adapter(model, tmp_path)
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    assert cfg["target_modules"] == r"^(model\.layers\.1\.self_attn\.q_proj)$"


def test_load_errors_name_the_problem(multi, tmp_path):
    ml = multi
    save_peft_adapter(ml, tmp_path / "p", adapter="predictor")
    with pytest.raises(ValueError, match="r=2 but the target adapter has r=4"):
        load_peft_adapter(tmp_path / "p", ml, adapter="reasoner")
    with pytest.raises(FileNotFoundError, match=r"adapter_config\.json"):
        load_peft_adapter(tmp_path / "missing", ml, adapter="predictor")
    # a tensor removed from the file: its key is named
    path = tmp_path / "p" / "adapter_model.safetensors"
    tensors = load_file(path)
    del tensors["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"]
    from safetensors.numpy import save_file

    save_file(tensors, path, {"format": "pt"})
    with pytest.raises(ValueError, match=r"missing tensor .*layers\.1\.mlp\.down_proj\.lora_B"):
        load_peft_adapter(tmp_path / "p", ml, adapter="predictor")


def test_peft_and_transformers_give_our_logits(tmp_path):
    """Live: our base via save_pretrained + our adapters via save_peft_adapter, loaded by
    transformers + PEFT, against `MultiLoRA.merge` logits (needs torch and peft)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from jaxmethods.hf import save_pretrained

    model = DecoderLM(_config(), rngs=nnx.Rngs(5))
    save_pretrained(model, tmp_path / "base")
    ml = apply_multi_lora(
        model, NAMES, RANKS, ALPHAS, dropout=(0.1, 0.0), target_modules=TARGETS,
        head_trainable=("predictor",),
    )  # fmt: skip
    _randomize(ml, seed=5)
    for name in NAMES:
        save_peft_adapter(ml, tmp_path / name, adapter=name, base_model_name_or_path="base")
        ours = np.asarray(ml.merge(ml.bank, ml.base, ml.index(name))(jnp.asarray(IDS)))
        base = AutoModelForCausalLM.from_pretrained(os.fspath(tmp_path / "base"))
        peft_model = PeftModel.from_pretrained(base, os.fspath(tmp_path / name)).eval()
        with torch.no_grad():
            theirs = peft_model(torch.as_tensor(IDS, dtype=torch.long)).logits.numpy()
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4, err_msg=name)
        print(f"{name}: max |ours - peft| = {np.abs(ours - theirs).max():.2e}")
