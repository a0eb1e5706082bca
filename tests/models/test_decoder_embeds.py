"""The decoder's `inputs_embeds` path and the sampler's prefill from embeddings.

Reference: a copy of the model whose embedding table row for an unused token id holds the soft
vector. Feeding that id to the copy must give what feeding the vector to the original gives.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmethods.generate import generate, per_request_keys
from jaxmethods.models.decoder import DecoderConfig, DecoderLM

V, H, SOFT_ID = 48, 32, 47  # SOFT_ID: a token the prompts never use otherwise


@pytest.fixture(scope="module")
def setup():
    cfg = DecoderConfig(
        vocab_size=V, hidden_size=H, intermediate_size=64, num_layers=2, num_heads=4,
        num_kv_heads=2, head_dim=8, embed_scale_by_sqrt_dim=True, tie_word_embeddings=False,
        scan_layers=True,
    )  # fmt: skip
    model = DecoderLM(cfg, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    ids = rng.integers(1, V - 1, (2, 9)).astype(np.int32)
    ids[:, 3] = SOFT_ID
    mask = np.ones_like(ids)
    mask[1, :2] = 0  # row 1 left padded
    soft = rng.normal(scale=0.05, size=(H,)).astype(np.float32)  # the same vector in both rows
    return model, ids, mask, soft


@functools.lru_cache
def _forward(graphdef):
    """One jitted forward: ids, or embeddings when given."""

    @jax.jit
    def fwd(state, ids, mask, embeds):
        return nnx.merge(graphdef, state)(ids, mask, inputs_embeds=embeds)

    return fwd


def _logits(model, ids, mask, embeds=None):
    graphdef, state = nnx.split(model)
    return np.asarray(_forward(graphdef)(state, jnp.asarray(ids), jnp.asarray(mask), embeds))


def _with_row(model: DecoderLM, vector: np.ndarray) -> DecoderLM:
    """A copy of `model` whose embedding row SOFT_ID is `vector` [H]."""
    graphdef, state = nnx.split(model)
    copy = nnx.merge(graphdef, jax.tree.map(jnp.copy, state))
    table = copy.model.embed_tokens.embedding
    table[...] = table[...].at[SOFT_ID].set(jnp.asarray(vector))
    return copy


@functools.lru_cache
def _embedder(graphdef):
    @jax.jit
    def embeds(state, ids, soft):
        x = nnx.merge(graphdef, state).embed(ids)
        return x if soft is None else x.at[:, 3].set(soft)

    return embeds


def _embeds_with_soft(model, ids, soft):
    """embed(ids) [B, T, H], column 3 (the SOFT_ID prompt position) replaced by `soft` if given."""
    graphdef, state = nnx.split(model)
    return _embedder(graphdef)(state, jnp.asarray(ids), None if soft is None else jnp.asarray(soft))


def test_embeds_of_the_ids_give_the_id_logits(setup):
    model, ids, mask, _ = setup
    base = _logits(model, ids, mask)
    via = _logits(model, ids, mask, _embeds_with_soft(model, ids, None))
    np.testing.assert_array_equal(via, base)


def test_replaced_position_matches_an_embedding_table_with_that_row(setup):
    model, ids, mask, soft = setup
    got = _logits(model, ids, mask, _embeds_with_soft(model, ids, soft))
    want = _logits(_with_row(model, soft), ids, mask)
    valid = mask.astype(bool)
    np.testing.assert_allclose(got[valid], want[valid], atol=1e-5)
    base = _logits(model, ids, mask)
    before = valid & (np.arange(ids.shape[1]) < 3)  # causal: earlier real positions untouched
    np.testing.assert_array_equal(got[before], base[before])
    assert np.abs(got[:, 3:] - base[:, 3:]).max() > 1e-4


def test_shape_errors(setup):
    model, ids, mask, _ = setup
    with pytest.raises(ValueError, match="inputs_embeds must be"):
        model(None, jnp.asarray(mask), inputs_embeds=jnp.zeros((2, 9, H + 1)))
    with pytest.raises(ValueError, match="input_ids shape"):
        model(jnp.asarray(ids[:, :4]), None, inputs_embeds=jnp.zeros((2, 9, H)))
    with pytest.raises(ValueError, match="inputs_embeds must be"):
        generate(model, ids, mask, max_new_tokens=2, inputs_embeds=np.zeros((2, 8, H)))


def test_sampling_from_embeds_matches_a_full_forward_and_per_request_seeds(setup):
    """KV-cache sampling after an embeddings prefill scores its tokens as teacher forcing the
    whole sequence does; a request's tokens depend on its own seed, not on its neighbours."""
    model, ids, mask, soft = setup
    embeds = _embeds_with_soft(model, ids, soft)
    kw = dict(max_new_tokens=5, do_sample=True, temperature=0.8, top_p=0.95)
    out = generate(model, ids, mask, inputs_embeds=embeds, rng=per_request_keys([7, 8]), **kw)
    tokens = np.asarray(out.sequences)
    full = np.concatenate([ids, tokens], axis=1)
    full_mask = np.concatenate([mask, np.ones_like(tokens)], axis=1)
    logits = _logits(model, full, full_mask, _embeds_with_soft(model, full, soft))
    steps = logits[:, ids.shape[1] - 1 : -1].astype(np.float64)  # [2, M, V]
    top = steps.max(-1, keepdims=True)
    logp = steps - top - np.log(np.exp(steps - top).sum(-1, keepdims=True))
    want = np.take_along_axis(logp, tokens[..., None], -1)[..., 0]
    np.testing.assert_allclose(np.asarray(out.logprobs), want, atol=1e-5)

    # Request 0 with a different neighbour (same shapes: no recompilation): the same tokens.
    pair = generate(
        model, ids[[0, 0]], mask[[0, 0]], inputs_embeds=embeds[jnp.array([0, 0])],
        rng=per_request_keys([7, 9]), **kw,
    )  # fmt: skip
    np.testing.assert_array_equal(np.asarray(pair.sequences[0]), tokens[0])
    # Another seed for request 0 draws differently somewhere (tokens or their scores).
    other = generate(model, ids, mask, inputs_embeds=embeds, rng=per_request_keys([1, 8]), **kw)
    assert not (
        np.array_equal(np.asarray(other.sequences[0]), tokens[0])
        and np.allclose(np.asarray(other.logprobs[0]), np.asarray(out.logprobs[0]))
    )
    with pytest.raises(ValueError, match="per-row keys"):
        generate(model, ids, mask, rng=per_request_keys([1, 2, 3]), **kw)
