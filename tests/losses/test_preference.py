"""Bradley–Terry and RPO against NumPy references of the spec formulas (mrm.md §1, §3)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxmethods.losses import bradley_terry_loss, masked_quantile, rpo_objective


def np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def test_bt_matches_numpy_with_mask():
    rng = np.random.default_rng(0)
    c, r = rng.normal(size=(3, 7)), rng.normal(size=(3, 7))
    mask = rng.random((3, 7)) > 0.3
    got = bradley_terry_loss(jnp.asarray(c), jnp.asarray(r), jnp.asarray(mask))
    want = [-np_log_sigmoid(c[i] - r[i])[mask[i]].mean() for i in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_bt_is_log2_at_equal_rewards_and_decreases_with_margin():
    x = jnp.linspace(-3, 3, 11)
    np.testing.assert_allclose(bradley_terry_loss(x, x), np.log(2.0), rtol=1e-6)
    losses = [float(bradley_terry_loss(jnp.array([m]), jnp.array([0.0]))) for m in range(-3, 4)]
    assert all(a > b for a, b in itertools.pairwise(losses))


def test_bt_fully_masked_is_zero_not_nan():
    out = bradley_terry_loss(jnp.ones(4), jnp.zeros(4), jnp.zeros(4, bool))
    assert float(out) == 0.0


def np_rpo(losses, tail_frac, gamma):
    tau = np.quantile(losses, 1 - tail_frac, method="linear")
    if gamma > 0:
        w = 1 / (1 + np.exp(-(losses - tau) / gamma))
    else:
        w = (losses > tau).astype(float)
    return float(np.sum(w * losses))


@pytest.mark.parametrize("tail_frac,gamma", [(0.5, 0.5), (0.3, 0.1), (0.8, 2.0), (0.5, 0.0)])
def test_rpo_matches_numpy(tail_frac, gamma):
    losses = np.random.default_rng(1).uniform(0.1, 2.0, size=9)
    got = rpo_objective(jnp.asarray(losses, jnp.float32), tail_frac, gamma)
    np.testing.assert_allclose(got, np_rpo(losses, tail_frac, gamma), rtol=1e-5)


def test_rpo_two_users_weights_and_sum():
    l1, l2, gamma = 0.4, 1.0, 0.5
    losses = jnp.array([l1, l2])
    # τ = mean; the harder user gets σ(|ΔL|/2γ), the easier one the complement.
    w_hard = 1 / (1 + np.exp(-(l2 - l1) / (2 * gamma)))
    np.testing.assert_allclose(
        rpo_objective(losses, 0.5, gamma), w_hard * l2 + (1 - w_hard) * l1, rtol=1e-6
    )
    # Hard variant keeps only the strictly larger loss; a sum, not a mean.
    np.testing.assert_allclose(rpo_objective(losses, 0.5, 0.0), l2, rtol=1e-6)
    np.testing.assert_allclose(rpo_objective(jnp.array([0.7, 0.7, 0.7]), 0.5, 0.5), 1.05, rtol=1e-6)


def test_rpo_soft_gradient_flows_through_sigmoid_and_quantile():
    losses = jnp.array([0.3, 1.1, 0.8, 2.0])
    check_grads(lambda x: rpo_objective(x, 0.5, 0.5), (losses,), order=1, modes=["rev"], eps=1e-3)
    g = jax.grad(lambda x: rpo_objective(x, 0.5, 0.5))(losses)
    # With detached weights the gradient would equal the weights themselves.
    tau = np.quantile(np.asarray(losses), 0.5)
    detached = 1 / (1 + np.exp(-(np.asarray(losses) - tau) / 0.5))
    assert not np.allclose(g, detached, atol=1e-3)


def test_masked_quantile_matches_numpy():
    rng = np.random.default_rng(2)
    for _ in range(5):
        x = rng.normal(size=12)
        mask = rng.random(12) > 0.4
        mask[0] = True
        for q in (0.0, 0.25, 0.5, 0.9, 1.0):
            got = masked_quantile(jnp.asarray(x, jnp.float32), q, jnp.asarray(mask))
            np.testing.assert_allclose(got, np.quantile(x[mask], q), rtol=1e-5, atol=1e-6)


def test_rpo_mask_ignores_padding_users():
    losses = jnp.array([0.5, 1.5, 99.0])
    mask = jnp.array([True, True, False])
    np.testing.assert_allclose(
        rpo_objective(losses, 0.5, 0.5, mask=mask), rpo_objective(losses[:2], 0.5, 0.5), rtol=1e-6
    )
