"""Unlearning losses (NPO, SimNPO, SatImp, GA, GradDiff, CE helpers) vs NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.losses import (
    IGNORE_INDEX,
    gradient_ascent_loss,
    gradient_difference_loss,
    next_token_labels,
    npo_loss,
    retain_nll_loss,
    satimp_token_loss,
    sequence_mean_nll,
    sequence_nll,
    simnpo_loss,
    token_cross_entropy,
    token_cross_entropy_from_hidden,
    token_mean_nll,
)

RNG = np.random.default_rng(0)


def np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def np_token_ce(logits, labels):
    """HF CE(ignore_index=-100, reduction='none') of logits[:, :-1] vs labels[:, 1:]."""
    lg = logits[:, :-1].astype(np.float64)
    lab = labels[:, 1:]
    lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
    mask = lab != IGNORE_INDEX
    picked = np.take_along_axis(lg, np.where(mask, lab, 0)[..., None], -1)[..., 0]
    return np.where(mask, lse - picked, 0.0), mask


def make_batch(b=4, t=7, v=11):
    logits = RNG.normal(size=(b, t, v)).astype(np.float32) * 2
    labels = RNG.integers(0, v, size=(b, t))
    # a prompt of random length per row, then padding on the right of some rows
    for i in range(b):
        labels[i, : RNG.integers(1, 3)] = IGNORE_INDEX
    labels[1, -2:] = IGNORE_INDEX
    return logits, labels


def test_token_ce_matches_hf_shifted_reference():
    logits, labels = make_batch()
    ce, mask = token_cross_entropy(jnp.asarray(logits), next_token_labels(jnp.asarray(labels)))
    ref, ref_mask = np_token_ce(logits, labels)
    np.testing.assert_array_equal(np.asarray(mask)[:, :-1], ref_mask)
    assert not np.asarray(mask)[:, -1].any()
    np.testing.assert_allclose(np.asarray(ce)[:, :-1], ref, rtol=1e-5, atol=1e-5)
    # per-sequence sum, average and token mean
    np.testing.assert_allclose(sequence_nll(ce, mask), ref.sum(-1), rtol=1e-5)
    np.testing.assert_allclose(
        sequence_mean_nll(ce, mask), ref.sum(-1) / np.maximum(ref_mask.sum(-1), 1), rtol=1e-5
    )
    np.testing.assert_allclose(token_mean_nll(ce, mask), ref.sum() / ref_mask.sum(), rtol=1e-5)
    np.testing.assert_allclose(
        gradient_ascent_loss(ce, mask), -ref.sum() / ref_mask.sum(), rtol=1e-5
    )


@pytest.mark.slow  # > 10 s on 2 cores under make test; the chunked path is also checked in tests/losses/test_logprobs.py
def test_chunked_ce_from_hidden_matches_logits_path():
    h = RNG.normal(size=(3, 9, 8)).astype(np.float32)
    w = RNG.normal(size=(8, 13)).astype(np.float32)
    labels = RNG.integers(0, 13, size=(3, 9))
    labels[:, :2] = IGNORE_INDEX
    shifted = next_token_labels(jnp.asarray(labels))
    ce_a, m_a = token_cross_entropy(jnp.asarray(h @ w), shifted)
    ce_b, m_b = token_cross_entropy_from_hidden(
        jnp.asarray(h), jnp.asarray(w), shifted, chunk_size=4
    )
    np.testing.assert_array_equal(m_a, m_b)
    np.testing.assert_allclose(ce_a, ce_b, rtol=1e-5, atol=1e-5)


def test_npo_matches_reference_and_equals_2_log2_over_beta_at_ref():
    pol = RNG.uniform(5, 50, size=16)
    ref = RNG.uniform(5, 50, size=16)
    beta = 0.1
    got = npo_loss(jnp.asarray(pol), jnp.asarray(ref), beta)
    r = ref - pol
    np.testing.assert_allclose(got, -(2 / beta) * np_log_sigmoid(-beta * r), rtol=1e-5)
    at_ref = npo_loss(jnp.asarray(ref), jnp.asarray(ref), beta)
    np.testing.assert_allclose(at_ref, np.full(16, 2 / beta * np.log(2)), rtol=1e-6)
    assert abs(float(at_ref[0]) - 13.8629) < 1e-3


def test_npo_gradient_pushes_nll_up_and_ignores_reference():
    pol, ref = jnp.asarray([10.0, 20.0]), jnp.asarray([12.0, 15.0])
    g_pol, g_ref = jax.grad(lambda p, r: npo_loss(p, r, 0.1).sum(), argnums=(0, 1))(pol, ref)
    assert np.all(np.asarray(g_pol) < 0)  # descending the loss raises NLL_theta
    np.testing.assert_array_equal(g_ref, 0.0)
    # closed form: dl/dNLL_theta = -2 sigmoid(-beta (NLL_theta - NLL_ref))
    expected = -2 / (1 + np.exp(0.1 * (np.asarray(pol) - np.asarray(ref))))
    np.testing.assert_allclose(g_pol, expected, rtol=1e-5)


@pytest.mark.parametrize("delta", [0.0, 1.0])
def test_simnpo_closed_form(delta):
    nll = RNG.uniform(1, 80, size=10)
    n = RNG.integers(1, 30, size=10).astype(np.float32)
    beta = 4.5
    got = simnpo_loss(jnp.asarray(nll), jnp.asarray(n), beta, delta)
    want = -(2 / beta) * np_log_sigmoid(beta * (nll / n - delta))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)


def test_simnpo_default_delta_is_zero():
    nll, n = jnp.asarray([3.0, 9.0]), jnp.asarray([3.0, 4.0])
    np.testing.assert_allclose(simnpo_loss(nll, n, 4.5), simnpo_loss(nll, n, 4.5, 0.0))


def test_satimp_values_and_detached_weight_gradient():
    ce = jnp.asarray(RNG.uniform(0.01, 4, size=(3, 5)).astype(np.float32))
    mask = jnp.asarray(RNG.uniform(size=(3, 5)) > 0.3)
    b1, b2 = 5.0, 1.0
    p = np.exp(-np.asarray(ce, np.float64))
    want = np.where(mask, -(p**b1) * (1 - p) ** b2 * np.asarray(ce), 0.0)
    np.testing.assert_allclose(satimp_token_loss(ce, b1, b2, mask), want, rtol=1e-5, atol=1e-7)
    grad = jax.grad(lambda c: satimp_token_loss(c, b1, b2, mask).sum())(ce)
    np.testing.assert_allclose(
        grad, np.where(mask, -(p**b1) * (1 - p) ** b2, 0.0), rtol=1e-5, atol=1e-7
    )


def test_retain_scale_quirk_equals_token_mean_times_length():
    b, t = 4, 6
    ce = jnp.asarray(RNG.uniform(0.1, 3, size=(b, t)).astype(np.float32))
    mask = jnp.asarray(np.tile(np.array([0, 1, 1, 1, 1, 0], bool), (b, 1)))  # 4 label tokens each
    token_mean = retain_nll_loss(ce, mask, reduction="token_mean")
    seq_mean = retain_nll_loss(ce, mask, reduction="sequence_sum_mean")
    np.testing.assert_allclose(seq_mean, token_mean * 4, rtol=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        retain_nll_loss(ce, mask, reduction="mean")


def test_retain_sequence_sum_mean_skips_empty_rows():
    ce = jnp.asarray([[1.0, 2.0], [0.0, 0.0]])
    mask = jnp.asarray([[True, True], [False, False]])
    np.testing.assert_allclose(retain_nll_loss(ce, mask, reduction="sequence_sum_mean"), 3.0)


def test_gradient_difference():
    fce = jnp.asarray([[1.0, 3.0]])
    rce = jnp.asarray([[2.0, 4.0], [6.0, 0.0]])
    fm = jnp.ones((1, 2), bool)
    rm = jnp.asarray([[True, True], [True, False]])
    got = gradient_difference_loss(fce, fm, rce, rm, gamma=0.5, alpha=2.0)
    np.testing.assert_allclose(got, 0.5 * -2.0 + 2.0 * 4.0)
