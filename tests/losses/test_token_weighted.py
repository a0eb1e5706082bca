"""Token-weighted CE, IGD/Pos weights and the CFT loss against NumPy references."""

import jax
import numpy as np
import pytest

from jaxmethods.losses import (
    causal_fine_tuning_loss,
    chunked_token_logprobs,
    igd_token_weights,
    position_decay_weights,
    weighted_token_ce,
    weighted_token_nll,
)


def _np_ce(logits, labels):
    logits = logits.astype(np.float64)
    m = logits.max(-1, keepdims=True)
    lse = m[..., 0] + np.log(np.exp(logits - m).sum(-1))
    return lse - np.take_along_axis(logits, labels[..., None], -1)[..., 0]


def _batch(seed, b=3, t=7, v=11):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(b, t, v)).astype(np.float32) * 3
    labels = rng.integers(0, v, size=(b, t)).astype(np.int32)
    mask = rng.random((b, t)) < 0.6
    mask[0, 0] = True
    return logits, labels, mask, rng


@pytest.mark.parametrize("seed", range(3))
def test_weighted_ce_matches_numpy(seed):
    logits, labels, mask, rng = _batch(seed)
    weights = rng.random(mask.shape).astype(np.float32)
    got = weighted_token_ce(logits, np.where(mask, labels, -100), weights, mask)
    ce = _np_ce(logits, labels)
    ref = (weights * ce)[mask].sum() / weights[mask].sum()
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_unit_weights_equal_token_mean_ce():
    logits, labels, mask, _ = _batch(5)
    got = weighted_token_ce(logits, labels, np.ones(mask.shape, np.float32), mask)
    np.testing.assert_allclose(got, _np_ce(logits, labels)[mask].mean(), rtol=1e-5)


def test_beta_below_one_downweights_only_zero_ig_and_normalises_by_sum_w():
    logits, labels, mask, rng = _batch(1)
    ig = np.where(rng.random(mask.shape) < 0.5, 0.0, rng.random(mask.shape) + 0.1)
    w = np.asarray(igd_token_weights(ig, 0.1))
    np.testing.assert_array_equal(w, np.where(ig == 0, np.float32(0.1), 1.0))
    ce = _np_ce(logits, labels)
    ref = (w * ce)[mask].sum() / w[mask].sum()
    np.testing.assert_allclose(weighted_token_ce(logits, labels, w, mask), ref, rtol=1e-5)
    # beta = 1 recovers plain SFT
    np.testing.assert_array_equal(np.asarray(igd_token_weights(ig, 1.0)), np.ones(ig.shape))


def test_weighted_nll_works_with_chunked_logprobs_and_zero_weights():
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(2, 5, 8)).astype(np.float32)
    kernel = rng.normal(size=(8, 13)).astype(np.float32)
    labels = rng.integers(0, 13, size=(2, 5))
    mask = np.ones((2, 5), bool)
    w = rng.random((2, 5)).astype(np.float32)
    logps = chunked_token_logprobs(hidden, kernel, labels, chunk_size=2)
    np.testing.assert_allclose(
        weighted_token_nll(logps, w, mask),
        weighted_token_ce(hidden @ kernel, labels, w, mask),
        rtol=1e-5,
    )
    assert float(weighted_token_nll(logps, np.zeros_like(w), mask)) == 0.0
    with pytest.raises(ValueError, match="share a shape"):
        weighted_token_nll(logps, w[:, :3], mask)


def test_weighted_ce_gradient_is_finite_with_masked_garbage_labels():
    logits, labels, mask, _ = _batch(2)
    labels = np.where(mask, labels, -100)
    g = jax.grad(lambda x: weighted_token_ce(x, labels, np.ones(mask.shape), mask))(logits)
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~mask] == 0)


def test_position_decay_weights():
    mask = np.array([[0, 1, 1, 1, 1, 0], [0, 0, 0, 0, 1, 0], [1, 1, 0, 0, 0, 0]], bool)
    w = np.asarray(position_decay_weights(mask, 0.4))
    np.testing.assert_allclose(w[0], [0, 1.0, 0.8, 0.6, 0.4, 0], rtol=1e-6)
    np.testing.assert_allclose(w[1], [0, 0, 0, 0, 1.0, 0])  # single token: weight 1
    np.testing.assert_allclose(w[2], [1.0, 0.4, 0, 0, 0, 0], rtol=1e-6)


def test_cft_loss_matches_numpy():
    logits, labels, mask, rng = _batch(4)
    cf_logits = rng.normal(size=logits.shape).astype(np.float32)
    w = np.asarray(position_decay_weights(mask, 0.5))
    loss, aux = causal_fine_tuning_loss(logits, cf_logits, labels, w, mask, alpha=0.3)
    ce = (w * _np_ce(logits, labels))[mask].sum() / w[mask].sum()
    cf = (w * _np_ce(logits - cf_logits, labels))[mask].sum() / w[mask].sum()
    np.testing.assert_allclose(aux["ce"], ce, rtol=1e-5)
    np.testing.assert_allclose(aux["cf_ce"], cf, rtol=1e-5)
    np.testing.assert_allclose(loss, ce + 0.3 * cf, rtol=1e-5)
