"""Sequence reward/value head: pooling at the last real token, last-token embeddings."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.models.decoder import DecoderConfig, DecoderLM
from jaxmethods.models.heads import SequenceClassifier, last_token_hidden, last_token_index


def test_last_token_index_left_right_and_no_padding():
    ids = jnp.zeros((3, 5), jnp.int32)
    mask = jnp.array([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(np.asarray(last_token_index(ids, mask)), [4, 2, 4])
    np.testing.assert_array_equal(np.asarray(last_token_index(ids, None)), [4, 4, 4])


def test_scores_pool_the_last_real_token_and_match_token_scores():
    cfg = DecoderConfig.tiny(vocab_size=64, initializer_range=0.2)
    model = SequenceClassifier(cfg, num_labels=2, rngs=nnx.Rngs(0))
    ids = jnp.asarray(np.random.RandomState(0).randint(3, 64, size=(2, 6)), jnp.int32)
    mask = jnp.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])  # left and right padded rows
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state):
        m = nnx.merge(graphdef, state)
        return m(ids, mask), m.token_scores(ids, mask)

    scores, per_token = run(state)
    assert scores.shape == (2, 2) and scores.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(scores), np.asarray(per_token)[[0, 1], [5, 3]], atol=1e-6)


def test_last_token_hidden_of_a_causal_lm_is_its_final_norm_state():
    model = DecoderLM(DecoderConfig.tiny(vocab_size=64), rngs=nnx.Rngs(0))
    ids = jnp.asarray(np.random.RandomState(1).randint(3, 64, size=(2, 4)), jnp.int32)
    mask = jnp.array([[0, 1, 1, 1], [1, 1, 1, 1]])
    graphdef, state = nnx.split(model)
    emb, hidden = jax.jit(
        lambda s: (
            last_token_hidden(nnx.merge(graphdef, s), ids, mask),
            nnx.merge(graphdef, s).hidden_states(ids, mask),
        )
    )(state)
    assert emb.shape == (2, 32)
    np.testing.assert_array_equal(np.asarray(emb), np.asarray(hidden)[:, -1])
