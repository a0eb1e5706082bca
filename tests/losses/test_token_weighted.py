"""Token-weighted CE, IGD/Pos weights and the CFT loss against NumPy references.

Labels follow the HF causal-LM convention (-100 = no loss, unshifted); the references shift by
hand: logits at position t are scored against labels[t + 1] with weight weights[t + 1].
"""

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
from jaxmethods.losses.token_weighted import shift_labels_and_weights


def _np_ce(logits, labels):
    logits = logits.astype(np.float64)
    m = logits.max(-1, keepdims=True)
    lse = m[..., 0] + np.log(np.exp(logits - m).sum(-1))
    return lse - np.take_along_axis(logits, labels[..., None], -1)[..., 0]


def _np_weighted(logits, labels, weights):
    """sum_t w[t+1] CE(logits[t], labels[t+1]) / sum_t w[t+1] over labels[t+1] != -100."""
    nxt, w = labels[:, 1:], weights[:, 1:]
    valid = nxt != -100
    ce = _np_ce(logits[:, :-1], np.where(valid, nxt, 0))
    return (w * ce)[valid].sum() / w[valid].sum()


def _batch(seed, b=3, t=7, v=11):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(b, t, v)).astype(np.float32) * 3
    labels = rng.integers(0, v, size=(b, t)).astype(np.int32)
    mask = rng.random((b, t)) < 0.6
    mask[0, 1] = True
    return logits, np.where(mask, labels, -100).astype(np.int32), rng


@pytest.mark.parametrize("seed", range(3))
def test_weighted_ce_matches_numpy(seed):
    logits, labels, rng = _batch(seed)
    weights = rng.random(labels.shape).astype(np.float32)
    got = weighted_token_ce(logits, labels, weights)
    np.testing.assert_allclose(got, _np_weighted(logits, labels, weights), rtol=1e-5)


def test_unit_weights_equal_hf_causal_lm_loss():
    logits, labels, _ = _batch(5)
    got = weighted_token_ce(logits, labels, np.ones(labels.shape, np.float32))
    # HF: CrossEntropyLoss(ignore_index=-100) of logits[:, :-1] against labels[:, 1:].
    nxt = labels[:, 1:]
    ref = _np_ce(logits[:, :-1], np.where(nxt != -100, nxt, 0))[nxt != -100].mean()
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_beta_below_one_downweights_only_zero_ig_and_normalises_by_sum_w():
    logits, labels, rng = _batch(1)
    ig = np.where(rng.random(labels.shape) < 0.5, 0.0, rng.random(labels.shape) + 0.1)
    w = np.asarray(igd_token_weights(ig, 0.1))
    np.testing.assert_array_equal(w, np.where(ig == 0, np.float32(0.1), 1.0))
    ref = _np_weighted(logits, labels, w)
    np.testing.assert_allclose(weighted_token_ce(logits, labels, w), ref, rtol=1e-5)
    # beta = 1 recovers plain SFT
    np.testing.assert_array_equal(np.asarray(igd_token_weights(ig, 1.0)), np.ones(ig.shape))


def test_shift_aligns_weights_with_their_labels():
    labels = np.array([[-100, -100, 7, 8, 9], [-100, 4, 5, -100, -100]], np.int32)
    weights = np.array([[9, 9, 0.1, 1.0, 0.5], [9, 0.2, 0.3, 9, 9]], np.float32)
    safe, w, mask = map(np.asarray, shift_labels_and_weights(labels, weights))
    np.testing.assert_array_equal(mask, [[0, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(safe, [[0, 7, 8, 9, 0], [4, 5, 0, 0, 0]])
    np.testing.assert_allclose(w, [[0, 0.1, 1.0, 0.5, 0], [0.2, 0.3, 0, 0, 0]])
    with pytest.raises(ValueError, match="share a shape"):
        shift_labels_and_weights(labels, weights[:, :3])


def test_weighted_nll_works_with_chunked_logprobs_and_zero_weights():
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(2, 5, 8)).astype(np.float32)
    kernel = rng.normal(size=(8, 13)).astype(np.float32)
    labels = rng.integers(0, 13, size=(2, 5)).astype(np.int32)
    labels[:, 0] = -100
    w = rng.random((2, 5)).astype(np.float32)
    safe, ws, mask = shift_labels_and_weights(labels, w)
    logps = chunked_token_logprobs(hidden, kernel, safe, chunk_size=2)
    np.testing.assert_allclose(
        weighted_token_nll(logps, ws, mask),
        _np_weighted(hidden @ kernel, labels, w),
        rtol=1e-5,
    )
    assert float(weighted_token_nll(logps, np.zeros_like(w), mask)) == 0.0
    with pytest.raises(ValueError, match="share a shape"):
        weighted_token_nll(logps, w[:, :3], mask)


def test_weighted_ce_gradient_is_finite_and_zero_off_targets():
    logits, labels, _ = _batch(2)
    g = jax.grad(lambda x: weighted_token_ce(x, labels, np.ones(labels.shape)))(logits)
    g = np.asarray(g)
    assert np.all(np.isfinite(g))
    no_next = np.concatenate([labels[:, 1:] == -100, np.ones((3, 1), bool)], axis=1)
    assert np.all(g[no_next] == 0)


def test_position_decay_weights():
    mask = np.array([[0, 1, 1, 1, 1, 0], [0, 0, 0, 0, 1, 0], [1, 1, 0, 0, 0, 0]], bool)
    w = np.asarray(position_decay_weights(mask, 0.4))
    np.testing.assert_allclose(w[0], [0, 1.0, 0.8, 0.6, 0.4, 0], rtol=1e-6)
    np.testing.assert_allclose(w[1], [0, 0, 0, 0, 1.0, 0])  # single token: weight 1
    np.testing.assert_allclose(w[2], [1.0, 0.4, 0, 0, 0, 0], rtol=1e-6)


def test_cft_loss_matches_numpy():
    logits, labels, rng = _batch(4)
    cf_logits = rng.normal(size=logits.shape).astype(np.float32)
    w = np.asarray(position_decay_weights(labels != -100, 0.5))
    loss, aux = causal_fine_tuning_loss(logits, cf_logits, labels, w, alpha=0.3)
    ce = _np_weighted(logits, labels, w)
    cf = _np_weighted(logits - cf_logits, labels, w)
    np.testing.assert_allclose(aux["ce"], ce, rtol=1e-5)
    np.testing.assert_allclose(aux["cf_ce"], cf, rtol=1e-5)
    np.testing.assert_allclose(loss, ce + 0.3 * cf, rtol=1e-5)
