"""DEP's SAE losses against NumPy transcriptions of `model/personal_model.py` (torch semantics)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.losses import sparse_autoencoder as sae

# One compiled program per function (eager calls would compile every primitive separately).
dep_loss = jax.jit(sae.dep_loss)
kl_sparsity_loss = jax.jit(sae.kl_sparsity_loss)
smooth_l1_loss = jax.jit(sae.smooth_l1_loss, static_argnames="beta")
sparsity_rho_hat = jax.jit(sae.sparsity_rho_hat)


def np_smooth_l1(a, b, beta=1.0):
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return np.mean(np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta))


def np_kl(z, rho=0.05, eps=1e-6):
    # The bounds as torch.clamp stores them in a float32 tensor (fp32(1 - 1e-6) != 1 - 1e-6).
    lo, hi = float(np.float32(eps)), float(np.float32(1 - eps))
    rho_hat = np.clip(z.astype(np.float64).mean(axis=1), lo, hi)
    kl = rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    return kl.mean()


def test_smooth_l1_matches_the_beta_definition():
    rng = np.random.default_rng(0)
    a = rng.normal(scale=1.5, size=(3, 16, 8)).astype(np.float32)  # both branches occur
    b = rng.normal(size=(3, 16, 8)).astype(np.float32)
    d = np.abs(a - b)
    assert (d < 1).any() and (d > 1).any()
    np.testing.assert_allclose(float(smooth_l1_loss(jnp.asarray(a), b)), np_smooth_l1(a, b), 1e-6)
    np.testing.assert_allclose(
        float(smooth_l1_loss(jnp.asarray(a), b, beta=0.5)), np_smooth_l1(a, b, 0.5), 1e-6
    )
    # The two branches by hand: |d| = 0.5 -> 0.125; |d| = 3 -> 2.5.
    assert float(smooth_l1_loss(jnp.array([0.5, 3.0]), jnp.zeros(2))) == pytest.approx(1.3125)


def test_kl_is_zero_at_rho_and_matches_numpy():
    z = np.full((2, 16, 4), 0.05, np.float32)
    assert float(kl_sparsity_loss(jnp.asarray(z))) == pytest.approx(0.0, abs=1e-7)
    z = np.random.default_rng(1).uniform(0.0, 0.3, size=(4, 16, 32)).astype(np.float32)
    np.testing.assert_allclose(float(kl_sparsity_loss(jnp.asarray(z))), np_kl(z), rtol=1e-5)


def test_clamps_applied_to_negative_and_saturated_codes():
    z = np.zeros((2, 16, 3), np.float32)
    z[0, :, 0] = -0.2  # GELU codes can be negative: rho_hat clamps to 1e-6
    z[1, :, 1] = 1.5  # above 1: clamps to 1 - 1e-6
    rho_hat = np.asarray(sparsity_rho_hat(jnp.asarray(z)))
    assert rho_hat[0, 0] == pytest.approx(1e-6) and rho_hat[1, 1] == pytest.approx(1 - 1e-6)
    got = float(kl_sparsity_loss(jnp.asarray(z)))
    assert np.isfinite(got)
    np.testing.assert_allclose(got, np_kl(z), rtol=1e-4)
    # torch.clamp passes no gradient outside the range.
    g = np.asarray(jax.jit(jax.grad(sae.kl_sparsity_loss))(jnp.asarray(z)))
    assert g[0, :, 0].tolist() == [0.0] * 16 and g[1, :, 1].tolist() == [0.0] * 16


def test_dep_total_weights_the_terms():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 16, 8)).astype(np.float32)
    x_rec = rng.normal(size=(2, 16, 8)).astype(np.float32)
    z = rng.uniform(0, 0.2, size=(2, 16, 4)).astype(np.float32)
    total, terms = dep_loss(jnp.float32(2.5), x, x_rec, z)
    want = 2.5 + 100 * (np_smooth_l1(x, x_rec) + 1e-3 * np_kl(z))
    np.testing.assert_allclose(float(total), want, rtol=1e-5)
    np.testing.assert_allclose(float(terms["kl"]), np_kl(z), rtol=1e-5)
    np.testing.assert_allclose(float(terms["recon"]), np_smooth_l1(x, x_rec), rtol=1e-5)
