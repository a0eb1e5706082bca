"""GRPO advantages, the clipped surrogate and k3 KL against NumPy transcriptions of TRL's
`GRPOTrainer` (torch semantics: `std` is unbiased, NaN rewards are left out of the group)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.losses import clipped_surrogate, grpo_advantages, k3_kl


def np_advantages(rewards, g, scale, valid=None):
    r = np.where(valid, rewards, np.nan) if valid is not None else rewards.astype(float)
    grouped = r.reshape(-1, g)
    mean = np.repeat(np.nanmean(grouped, axis=1), g)
    adv = r - mean
    if scale == "std":
        with warnings.catch_warnings():  # a group with one valid reward: std NaN, as in torch
            warnings.simplefilter("ignore", RuntimeWarning)
            adv = adv / (np.repeat(np.nanstd(grouped, axis=1, ddof=1), g) + 1e-4)
    elif scale == "batch":
        adv = adv / (np.nanstd(r, ddof=1) + 1e-4)
    return np.nan_to_num(adv, nan=0.0)


@pytest.mark.parametrize("scale", ["std", "batch", "none"])
def test_advantages_match_trl(scale):
    rewards = np.random.default_rng(0).normal(size=24).astype(np.float32)
    got = grpo_advantages(jnp.asarray(rewards), 4, scale)
    np.testing.assert_allclose(got, np_advantages(rewards, 4, scale), rtol=1e-5, atol=1e-6)


def test_unscorable_completions_leave_the_group_statistics():
    rng = np.random.default_rng(1)
    rewards = rng.normal(size=12).astype(np.float32)
    valid = rng.random(12) > 0.3
    valid[:4] = [True, True, False, True]
    got = grpo_advantages(jnp.asarray(rewards), 4, "std", jnp.asarray(valid))
    np.testing.assert_allclose(got, np_advantages(rewards, 4, "std", valid), rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(got)[~valid] == 0.0)


def test_equal_rewards_give_zero_advantage_and_bad_shape_is_named():
    np.testing.assert_array_equal(grpo_advantages(jnp.ones(8), 4), 0.0)
    with pytest.raises(ValueError, match="group_size=4, got shape \\(6,\\)"):
        grpo_advantages(jnp.ones(6), 4)


def np_surrogate(logp, old, adv, mask, lo, hi, norm, ref=None, beta=0.0, lmax=None):
    ratio = np.exp(logp - old)
    a = adv[:, None]
    loss = -np.minimum(ratio * a, np.clip(ratio, 1 - lo, 1 + hi) * a)
    if beta:
        loss = loss + beta * (np.exp(ref - logp) - (ref - logp) - 1)
    if norm == "sequence":  # TRL "grpo"
        return np.mean((loss * mask).sum(-1) / np.maximum(mask.sum(-1), 1))
    if norm == "token":  # TRL "bnpo" / DAPO
        return (loss * mask).sum() / max(mask.sum(), 1)
    return (loss * mask).sum() / (loss.shape[0] * lmax)  # "dr_grpo"


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(2)
    b, t = 6, 9
    logp = rng.normal(-2.0, 0.5, (b, t)).astype(np.float32)
    old = (logp + rng.normal(0, 0.4, (b, t))).astype(np.float32)  # ratios well outside the clip
    ref = (logp + rng.normal(0, 0.3, (b, t))).astype(np.float32)
    adv = rng.normal(size=b).astype(np.float32)
    mask = (np.arange(t)[None] < rng.integers(2, t + 1, b)[:, None]).astype(np.float32)
    return logp, old, ref, adv, mask


@pytest.mark.parametrize("norm", ["token", "sequence", "dr_grpo"])
def test_surrogate_matches_trl(batch, norm):
    logp, old, ref, adv, mask = batch
    got, metrics = clipped_surrogate(
        logp, old, adv, mask, 0.2, 0.28, norm, ref_logp=ref, kl_coef=0.04,
        max_completion_length=12,
    )  # fmt: skip
    want = np_surrogate(logp, old, adv, mask, 0.2, 0.28, norm, ref, 0.04, 12)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    ratio = np.exp(logp - old)
    clipped = ((ratio < 0.8) & (adv[:, None] < 0)) | ((ratio > 1.28) & (adv[:, None] > 0))
    np.testing.assert_allclose(metrics["clip_frac"], (clipped * mask).sum() / mask.sum(), rtol=1e-5)
    assert 0.0 < float(metrics["clip_frac"]) < 1.0


def test_on_policy_gradient_is_the_policy_gradient(batch):
    """At ρ = 1 (old = stop_gradient(logp)) the gradient is −A·M/ΣM per token (token norm)."""
    logp, _, _, adv, mask = batch
    g = jax.grad(
        lambda lp: clipped_surrogate(lp, jax.lax.stop_gradient(lp), adv, mask)[0]
    )(jnp.asarray(logp))  # fmt: skip
    np.testing.assert_allclose(g, -adv[:, None] * mask / mask.sum(), rtol=1e-5, atol=1e-7)


def test_k3_is_nonnegative_zero_at_equality_and_unbiased():
    rng = np.random.default_rng(3)
    p, q = rng.normal(size=100), rng.normal(size=100)
    assert np.all(np.asarray(k3_kl(p, q)) >= 0) and np.allclose(k3_kl(p, p), 0.0)
    # Unbiased for KL(π‖π_ref) on samples from π: two Gaussians with a known KL.
    x = rng.normal(0.0, 1.0, 200_000)
    logp = -0.5 * x**2
    logq = -0.5 * (x - 0.5) ** 2
    np.testing.assert_allclose(np.mean(k3_kl(logp, logq)), 0.125, rtol=0.03)


def test_surrogate_errors():
    x = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match="norm='grpo'"):
        clipped_surrogate(x, x, jnp.zeros(2), x, norm="grpo")
    with pytest.raises(ValueError, match="kl_coef != 0 needs ref_logp"):
        clipped_surrogate(x, x, jnp.zeros(2), x, kl_coef=0.1)
