"""`dpo_loss` against a NumPy transcription of TRL's `DPOTrainer.dpo_loss` formulas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.losses import dpo_loss


def np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def np_dpo(pc, pr, rc, rr, beta, ls, loss_type, lc=None, lr=None):
    """TRL: delta = (pc - rc) - (pr - rr); IPO divides each log-ratio by its completion length."""
    cr, rj = pc - rc, pr - rr
    d = cr - rj
    if loss_type == "sigmoid":
        loss = -np_log_sigmoid(beta * d) * (1 - ls) - np_log_sigmoid(-beta * d) * ls
    elif loss_type == "robust":
        loss = (-(1 - ls) * np_log_sigmoid(beta * d) + ls * np_log_sigmoid(-beta * d)) / (
            1 - 2 * ls
        )
    elif loss_type == "hinge":
        loss = np.maximum(0.0, 1 - beta * d)
    else:
        if lc is not None:
            d = cr / np.maximum(lc, 1) - rj / np.maximum(lr, 1)
        loss = (d - 1 / (2 * beta)) ** 2
    return loss, beta * cr, beta * rj


@pytest.fixture(scope="module")
def logps():
    rng = np.random.default_rng(0)
    return [rng.normal(-20.0, 5.0, size=16) for _ in range(4)]


@pytest.mark.parametrize(
    "loss_type,beta,ls",
    [("sigmoid", 0.1, 0.0), ("sigmoid", 0.5, 0.2), ("robust", 0.1, 0.1), ("hinge", 0.3, 0.0),
     ("ipo", 0.1, 0.0)],
)  # fmt: skip
def test_matches_trl_formulas(logps, loss_type, beta, ls):
    out = dpo_loss(*map(jnp.asarray, logps), beta=beta, label_smoothing=ls, loss_type=loss_type)
    want, want_c, want_r = np_dpo(*logps, beta, ls, loss_type)
    np.testing.assert_allclose(out.losses, want, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(out.chosen_rewards, want_c, rtol=1e-5)
    np.testing.assert_allclose(out.rejected_rewards, want_r, rtol=1e-5)
    np.testing.assert_allclose(out.margins, want_c - want_r, rtol=1e-4, atol=1e-5)


def test_ipo_length_normalisation(logps):
    rng = np.random.default_rng(1)
    lc, lr = rng.integers(1, 30, 16), rng.integers(1, 30, 16)
    out = dpo_loss(*map(jnp.asarray, logps), beta=0.1, loss_type="ipo",
                   chosen_lengths=jnp.asarray(lc), rejected_lengths=jnp.asarray(lr))  # fmt: skip
    want, _, _ = np_dpo(*logps, 0.1, 0.0, "ipo", lc, lr)
    np.testing.assert_allclose(out.losses, want, rtol=2e-5)


def test_log2_when_policy_equals_reference(logps):
    pc, pr, _, _ = map(jnp.asarray, logps)
    out = dpo_loss(pc, pr, pc, pr, beta=0.1)
    np.testing.assert_allclose(out.losses, np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(out.margins, 0.0, atol=1e-6)


def test_gradient_raises_chosen_and_lowers_rejected_and_rewards_are_detached(logps):
    pc, pr, rc, rr = map(jnp.asarray, logps)
    g = jax.grad(lambda a, b: dpo_loss(a, b, rc, rr).losses.sum(), argnums=(0, 1))(pc, pr)
    assert np.all(np.asarray(g[0]) < 0) and np.all(np.asarray(g[1]) > 0)
    g_reward = jax.grad(lambda a: dpo_loss(a, pr, rc, rr).margins.sum())(pc)
    np.testing.assert_array_equal(g_reward, 0.0)


def test_robust_without_noise_is_sigmoid(logps):
    args = list(map(jnp.asarray, logps))
    np.testing.assert_allclose(
        dpo_loss(*args, loss_type="robust").losses, dpo_loss(*args).losses, rtol=1e-6
    )


def test_bad_arguments_are_named():
    x = jnp.zeros(2)
    with pytest.raises(ValueError, match="loss_type='kto'"):
        dpo_loss(x, x, x, x, loss_type="kto")
    with pytest.raises(ValueError, match=r"robust needs 0 <= label_smoothing < 0\.5"):
        dpo_loss(x, x, x, x, loss_type="robust", label_smoothing=0.5)
    with pytest.raises(ValueError, match="both chosen_lengths and rejected_lengths"):
        dpo_loss(x, x, x, x, loss_type="ipo", chosen_lengths=x)
