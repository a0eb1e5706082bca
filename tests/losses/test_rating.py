"""The expected-rating head against a NumPy transcription of `logits_weighted_predict`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.losses.rating import expected_rating, rating_probs

IDS = np.array([7, 3, 11, 2, 5])


def numpy_expected(logits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    z = logits[..., ids].astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    return np.clip((p * np.arange(1, 6)).sum(-1), 1, 5)


def test_matches_numpy_on_random_logits():
    logits = np.random.default_rng(0).normal(scale=3.0, size=(4, 3, 16)).astype(np.float32)
    got = np.asarray(expected_rating(jnp.asarray(logits), IDS))
    np.testing.assert_allclose(got, numpy_expected(logits, IDS), atol=1e-5)
    p = np.asarray(rating_probs(jnp.asarray(logits), IDS))
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)


def test_uniform_gives_three_and_one_hot_gives_k():
    logits = np.zeros((1, 16), np.float32)
    logits[0, 0] = 50.0  # a non-rating token: ignored
    assert float(expected_rating(jnp.asarray(logits), IDS)[0]) == pytest.approx(3.0, abs=1e-6)
    for k, tok in enumerate(IDS, start=1):
        one_hot = np.full((16,), -1e4, np.float32)
        one_hot[tok] = 0.0
        assert float(expected_rating(jnp.asarray(one_hot), IDS)) == pytest.approx(k, abs=1e-6)


def test_in_range_and_differentiable():
    logits = jnp.asarray(np.random.default_rng(1).normal(scale=30, size=(64, 16)), jnp.float32)
    r = np.asarray(expected_rating(logits, IDS))
    assert r.min() >= 1.0 and r.max() <= 5.0
    g = jax.grad(lambda z: expected_rating(z, IDS).sum())(jnp.zeros((2, 16)))
    # d r / d z_k = p_k (k - r): at uniform p = 0.2, r = 3 -> 0.2 * (k - 3); others 0
    want = np.zeros((2, 16), np.float32)
    want[:, IDS] = 0.2 * (np.arange(1, 6) - 3.0)
    np.testing.assert_allclose(np.asarray(g), want, atol=1e-6)
