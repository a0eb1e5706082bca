"""DecoderLM invariants: KV-cache decoding, left padding, scan/remat/attention variants, config."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmethods.models.decoder import DecoderConfig, DecoderLM, default_positions
from jaxmethods.models.kv_cache import KVCache

V = 64


def _batch():
    """Left-padded [3, 7] batch (lengths 7, 4, 2)."""
    rng = np.random.RandomState(0)
    ids = rng.randint(3, V, size=(3, 7)).astype(np.int32)
    mask = np.ones((3, 7), np.int32)
    mask[1, :3] = 0
    mask[2, :5] = 0
    return jnp.asarray(ids * mask), jnp.asarray(mask)


def _valid(x, mask):
    return np.asarray(x)[np.asarray(mask).astype(bool)]


def _model(family="llama", **overrides) -> DecoderLM:
    cfg = DecoderConfig.tiny(vocab_size=V, family=family, initializer_range=0.2, **overrides)
    return DecoderLM(cfg, rngs=nnx.Rngs(0))


@functools.cache
def _compiled(graphdef):
    """One jitted forward per model structure (graphdefs are hashable), shared across tests."""

    @jax.jit
    def run(state, ids, mask, cache):
        return nnx.merge(graphdef, state)(ids, mask, cache=cache)

    return run


def _run(model, ids, mask, cache=None):
    graphdef, state = nnx.split(model)
    return _compiled(graphdef)(state, ids, mask, cache)


def _stacked_copy(model: DecoderLM) -> DecoderLM:
    """The same weights in a scan_layers=True model (layer leaves stacked on a leading axis)."""
    scanned = DecoderLM(model.config.replace(scan_layers=True), rngs=nnx.Rngs(1))
    layers = [nnx.state(layer) for layer in model.model.layers]
    nnx.update(scanned.model.layers, jax.tree.map(lambda *xs: jnp.stack(xs), *layers))
    nnx.update(scanned.model.embed_tokens, nnx.state(model.model.embed_tokens))
    nnx.update(scanned.model.norm, nnx.state(model.model.norm))
    if model.lm_head is not None:
        nnx.update(scanned.lm_head, nnx.state(model.lm_head))
    return scanned


@pytest.fixture(scope="module")
def mistral():
    return _model("mistral")  # sliding window 4 over 7 tokens, GQA, untied head


@pytest.mark.parametrize(
    "which", [pytest.param("mistral", marks=pytest.mark.slow), "gemma_scanned"]
)
def test_cached_incremental_forward_equals_full_forward(which, mistral):
    ids, mask = _batch()
    model = mistral if which == "mistral" else _model("gemma", scan_layers=True)
    full = _run(model, ids, mask)
    cache = model.init_cache(3, 10)
    logits, cache = _run(model, ids[:, :3], mask[:, :3], cache)  # prefill 3 tokens
    steps = [logits]
    for t in range(3, 7):  # then one token per step
        logits, cache = _run(model, ids[:, t : t + 1], mask[:, t : t + 1], cache)
        steps.append(logits)
    np.testing.assert_allclose(
        _valid(jnp.concatenate(steps, 1), mask), _valid(full, mask), atol=1e-5, rtol=1e-5
    )
    assert int(cache.index) == 7
    np.testing.assert_array_equal(np.asarray(cache.mask[:, :7]), np.asarray(mask).astype(bool))
    np.testing.assert_array_equal(np.asarray(cache.lengths), [7, 4, 2])


def test_left_padding_does_not_change_real_token_logits(mistral):
    """Positions default to cumsum(mask) - 1, so a left-padded row equals the same tokens placed at
    the start of the row (right padding); the sliding window is shift invariant too."""
    ids, mask = _batch()
    right_ids = jnp.roll(ids, -5, axis=1).at[2, 2:].set(0)
    right_mask = jnp.roll(mask, -5, axis=1).at[2, 2:].set(0)
    left = _run(mistral, ids, mask)
    right = _run(mistral, right_ids, right_mask)
    np.testing.assert_allclose(np.asarray(left)[2, 5:], np.asarray(right)[2, :2], atol=1e-5)
    np.testing.assert_array_equal(
        np.asarray(default_positions(mask)), np.maximum(np.cumsum(np.asarray(mask), -1) - 1, 0)
    )


def test_scan_layers_matches_the_layer_loop(mistral):
    ids, mask = _batch()
    scanned = _stacked_copy(mistral)
    # Same math, different XLA fusion: equal up to float32 reassociation.
    np.testing.assert_allclose(
        _valid(_run(scanned, ids, mask), mask), _valid(_run(mistral, ids, mask), mask), atol=1e-5
    )


def test_remat_keeps_gradients():
    ids, mask = _batch()
    plain = _model("llama", num_layers=1)
    remat = _model("llama", num_layers=1, remat="dots_saveable")  # same init, same weights

    def grads(model):
        graphdef, params = nnx.split(model)

        def loss(params):
            logits = nnx.merge(graphdef, params)(ids, mask)
            return jnp.mean(jnp.where(mask[..., None] > 0, logits, 0.0) ** 2)

        return jax.jit(jax.grad(loss))(params)

    for a, b in zip(jax.tree.leaves(grads(plain)), jax.tree.leaves(grads(remat))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_einsum_attention_matches_dot_product_attention(mistral):
    ids, mask = _batch()
    einsum = _model("mistral", attention_impl="einsum")  # same init as the fixture
    np.testing.assert_allclose(
        _valid(_run(einsum, ids, mask), mask), _valid(_run(mistral, ids, mask), mask), atol=1e-5
    )


def test_hidden_states_times_head_kernel_are_the_logits():
    ids, mask = _batch()
    tied = _model("qwen2")
    graphdef, state = nnx.split(tied)

    @jax.jit
    def both(state):
        model = nnx.merge(graphdef, state)
        return model.hidden_states(ids, mask), model.lm_head_kernel(), model(ids, mask)

    hidden, kernel, logits = both(state)
    assert hidden.shape == (3, 7, 32) and kernel.shape == (32, V)
    np.testing.assert_allclose(np.asarray(hidden @ kernel), np.asarray(logits), atol=1e-4)
    np.testing.assert_array_equal(
        np.asarray(kernel), np.asarray(tied.model.embed_tokens.embedding[...]).T
    )


def test_bf16_compute_with_fp32_params(mistral):
    ids, mask = _batch()
    bf16 = _model("mistral", dtype="bfloat16")
    logits = _run(bf16, ids, mask)
    assert logits.dtype == jnp.float32 and bf16.model.embed_tokens.embedding.dtype == jnp.float32
    assert bf16.init_cache(3, 8).k.dtype == jnp.bfloat16
    fp32 = _valid(_run(mistral, ids, mask), mask)
    assert np.abs(_valid(logits, mask) - fp32).max() < 0.05 * np.abs(fp32).max()


def test_cache_take_gathers_rows():
    cache = KVCache.zeros(2, 3, 5, 2, 4, jnp.float32)
    cache = cache.replace(
        k=cache.k + jnp.arange(3.0)[None, :, None, None, None],
        mask=cache.mask.at[1, :2].set(True),
        index=jnp.int32(2),
    )
    taken = cache.take(jnp.array([1, 1, 0]))
    np.testing.assert_array_equal(np.asarray(taken.k[0, :, 0, 0, 0]), [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(np.asarray(taken.lengths), [2, 2, 0])
    assert int(taken.index) == 2


def test_cache_overflow_and_config_errors(mistral):
    with pytest.raises(ValueError, match="do not fit a KV cache of 4 slots"):
        mistral(jnp.ones((1, 5), jnp.int32), cache=mistral.init_cache(1, 4))
    with pytest.raises(ValueError, match=r"DecoderConfig\.num_kv_heads: 3 must divide num_heads=4"):
        DecoderConfig.tiny(num_kv_heads=3)
    with pytest.raises(ValueError, match=r"DecoderConfig\.family: 'gpt2'"):
        DecoderConfig.tiny(family="gpt2")
    with pytest.raises(ValueError, match=r"rope_type 'yarn' is not supported"):
        DecoderConfig.tiny(rope_scaling={"rope_type": "yarn", "factor": 2.0})
    cfg = DecoderConfig.tiny(rope_scaling={"rope_type": "linear", "factor": 2.0})
    assert hash(cfg) == hash(cfg.replace()) and cfg == cfg.replace()
