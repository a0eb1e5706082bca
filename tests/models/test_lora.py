"""LoRA: zero-B identity, merge == unmerged forward, selection by Variable type, dropout, errors.

One base model and one adapted copy are shared by the tests, so each model structure compiles
once (tiny CPU budget).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxmethods.models.decoder import DecoderConfig, DecoderLM
from jaxmethods.models.lora import (
    LoRAParam,
    apply_lora,
    lora_modules,
    merge_lora,
    remove_lora,
    unmerge_lora,
)

ALL_LINEARS = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|lm_head)$"
IDS = jnp.asarray(np.random.RandomState(0).randint(3, 64, size=(2, 5)), jnp.int32)
MASK = jnp.ones((2, 5), jnp.int32)


def _model(**overrides) -> DecoderLM:
    cfg = DecoderConfig.tiny(vocab_size=64, initializer_range=0.2, **overrides)
    return DecoderLM(cfg, rngs=nnx.Rngs(0))


@functools.cache
def _compiled(graphdef):
    @jax.jit
    def run(state, ids, mask, dropout_rng):
        return nnx.merge(graphdef, state)(ids, mask, dropout_rng=dropout_rng)

    return run


def _forward(model, dropout_rng=None) -> np.ndarray:
    """Jitted forward on the shared batch, compiled once per model structure (graphdef)."""
    graphdef, state = nnx.split(model)
    return np.asarray(_compiled(graphdef)(state, IDS, MASK, dropout_rng))


def _randomize_lora(model, scale=0.3):
    """Non-zero LoRA factors (NumPy randomness: no per-shape XLA compiles in tests)."""
    graphdef, lora, rest = nnx.split(model, LoRAParam, ...)
    rng = np.random.RandomState(1)
    lora = jax.tree.map(lambda x: jnp.asarray(scale * rng.randn(*x.shape), x.dtype), lora)
    return nnx.merge(graphdef, lora, rest)


@pytest.fixture(scope="module")
def base():
    return _model()


@pytest.fixture(scope="module")
def fresh(base):
    """LoRA (rank 4, dropout 0.5) on every linear layer and the LM head, B = 0."""
    model = nnx.clone(base)
    paths = apply_lora(model, 4, 8.0, 0.5, ALL_LINEARS)
    assert len(paths) == 2 * 7 + 1 and "lm_head" in paths
    return model


@pytest.fixture(scope="module")
def adapted(fresh):
    return _randomize_lora(nnx.clone(fresh))


def test_fresh_adapter_is_the_identity(base, fresh):
    np.testing.assert_array_equal(_forward(fresh), _forward(base))


def test_merge_and_unmerge_keep_the_forward(base, adapted):
    model = nnx.clone(adapted)
    unmerged = _forward(model)
    assert np.abs(unmerged - _forward(base)).max() > 1e-2
    kernel = np.asarray(model.model.layers[0].mlp.up_proj.kernel[...])
    merge_lora(model)
    np.testing.assert_allclose(_forward(model), unmerged, atol=1e-4)
    unmerge_lora(model)
    np.testing.assert_allclose(
        np.asarray(model.model.layers[0].mlp.up_proj.kernel[...]), kernel, atol=1e-6
    )
    np.testing.assert_allclose(_forward(model), unmerged, atol=1e-4)
    remove_lora(model)
    assert not lora_modules(model) and not jax.tree.leaves(nnx.state(model, LoRAParam))
    np.testing.assert_allclose(_forward(model), unmerged, atol=1e-4)  # base structure: cached


def test_lm_head_kernel_includes_the_lora_delta(adapted):
    head = adapted.lm_head
    expected = np.asarray(head.kernel[...]) + head.lora_scale * (
        np.asarray(head.lora_a[...]) @ np.asarray(head.lora_b[...])
    )
    np.testing.assert_allclose(np.asarray(adapted.lm_head_kernel()), expected, atol=1e-6)


def test_dropout_only_with_a_key(adapted):
    a = _forward(adapted, jax.random.key(0))
    b = _forward(adapted, jax.random.key(1))
    np.testing.assert_array_equal(a, _forward(adapted, jax.random.key(0)))
    assert np.abs(a - b).max() > 1e-4
    np.testing.assert_array_equal(_forward(adapted), _forward(adapted))


def test_training_selects_only_lora_params(fresh):
    graphdef, lora, frozen = nnx.split(fresh, LoRAParam, ...)
    leaves = jax.tree_util.tree_flatten_with_path(lora)[0]
    assert len(leaves) == 2 * (2 * 7 + 1)  # (a, b) per adapted Dense
    assert all("lora_" in jax.tree_util.keystr(p) for p, _ in leaves)

    def loss(lora):
        logits = nnx.merge(graphdef, lora, frozen)(IDS, MASK)
        return -jnp.mean(jax.nn.log_softmax(logits)[..., 0])

    tx = optax.sgd(0.5)
    value_and_grad = jax.jit(jax.value_and_grad(loss))
    before, grads = value_and_grad(lora)
    updates, _ = tx.update(grads, tx.init(lora))
    after, _ = value_and_grad(optax.apply_updates(lora, updates))
    assert float(after) < float(before)
    # B gets a gradient at init (A does not, since B = 0): the standard LoRA start.
    b_grad = grads["model"]["layers"][0]["self_attn"]["q_proj"]["lora_b"][...]
    assert np.abs(np.asarray(b_grad)).max() > 0


def test_flax_lora_filters_select_exactly_our_adapters(fresh):
    """`LoRAParam` is `flax.nnx.LoRAParam`: tunix/qwix-style `nnx.LoRAParam` filters pick the
    `lora_a` / `lora_b` factors of every adapted Dense and nothing else."""
    assert LoRAParam is nnx.LoRAParam
    flat = nnx.to_flat_state(nnx.state(fresh, nnx.LoRAParam))
    paths = {"/".join(map(str, k)) for k, _ in flat}
    want = {f"{p}/{f}" for p, _ in lora_modules(fresh) for f in ("lora_a", "lora_b")}
    assert paths == want and len(want) == 2 * (2 * 7 + 1)
    every = nnx.to_flat_state(nnx.state(fresh, nnx.Param))
    assert {"/".join(map(str, k)) for k, _ in every} >= paths  # LoRA factors are Params too
    rest = nnx.to_flat_state(nnx.state(fresh, nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam))))
    assert not paths & {"/".join(map(str, k)) for k, _ in rest}
    assert len(rest) + len(flat) == len(every)


@pytest.mark.slow  # > 10 s on 2 cores under make test
def test_lora_on_stacked_layers_matches_the_layer_loop(adapted, tmp_path):
    """LoRA on a scan_layers model: factors gain the [L] axis; its forward equals the merged
    per-layer export loaded back without scan (the base structure, already compiled)."""
    from jaxmethods.hf import load_pretrained, save_pretrained

    scanned = _model(scan_layers=True)
    apply_lora(scanned, 2, 4.0, 0.0, r"(q_proj|down_proj)$")
    assert scanned.model.layers.self_attn.q_proj.lora_a.shape == (2, 32, 2)
    scanned = _randomize_lora(scanned)
    save_pretrained(scanned, str(tmp_path))
    unscanned = load_pretrained(str(tmp_path), dtype="float32")
    np.testing.assert_allclose(_forward(scanned), _forward(unscanned), atol=1e-4)


def test_lora_errors(base):
    model = nnx.clone(base)
    with pytest.raises(ValueError, match=r"matches no Dense layer; Dense names are \[.*'q_proj'"):
        apply_lora(model, 2, 2.0, target_modules="query")
    apply_lora(model, 2, 2.0, target_modules=r"q_proj$")
    with pytest.raises(ValueError, match="already has LoRA factors"):
        apply_lora(model, 2, 2.0, target_modules=r"q_proj$")
    with pytest.raises(ValueError, match="is not merged"):
        unmerge_lora(model)
    with pytest.raises(ValueError, match="rank must be positive"):
        apply_lora(model, 0, 2.0)
