"""Pairwise preference losses and the Robust Personalization Objective (MRM, arXiv 2601.18731)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmethods.losses.common import masked_mean


def bradley_terry_loss(
    chosen_rewards: jnp.ndarray, rejected_rewards: jnp.ndarray, mask: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Bradley–Terry loss  L = -mean_i log σ(r_c,i - r_r,i)  over valid pairs.

    Args:
      chosen_rewards: [..., P] rewards of the preferred responses.
      rejected_rewards: [..., P] rewards of the other responses.
      mask: [..., P] bool, valid pairs (all when None).
    Returns:
      [...] mean over the last axis (0 where no pair is valid).
    """
    per_pair = -jax.nn.log_sigmoid(chosen_rewards - rejected_rewards)
    return masked_mean(per_pair, mask, axis=-1)


def masked_quantile(x: jnp.ndarray, q: float, mask: jnp.ndarray | None = None) -> jnp.ndarray:
    """Quantile of the valid entries of a 1-D array with linear interpolation.

    Matches `np.quantile(x[mask], q)` / `torch.quantile` ("linear" method) and is differentiable
    in `x` (the gradient reaches the two order statistics it interpolates).
    """
    if mask is None:
        return jnp.quantile(x, q, method="linear")
    n = jnp.sum(mask)
    ordered = jnp.sort(jnp.where(mask, x, jnp.inf))
    pos = q * (jnp.maximum(n, 1) - 1).astype(x.dtype)
    lo = jnp.floor(pos).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, jnp.maximum(n - 1, 0))
    frac = pos - lo
    x_lo = jnp.take(ordered, lo)
    x_hi = jnp.take(ordered, hi)
    return x_lo + frac * (x_hi - x_lo)


def rpo_objective(
    user_losses: jnp.ndarray,
    tail_frac: float = 0.5,
    gamma: float = 0.5,
    mask: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """Robust Personalization Objective over a meta-batch of per-user query losses.

        τ = quantile(L, 1 - tail_frac)                      (linear interpolation)
        γ > 0:  obj = Σ_i σ((L_i - τ)/γ) · L_i              (weights NOT detached)
        γ ≤ 0:  obj = Σ_i 1[L_i > τ] · L_i                   (hard mask, detached)

    As in the authors' code (`train.py`, `RPO`) the objective is a *sum*, and the gradient of the
    soft variant flows through σ(·) and through τ.

    Args:
      user_losses: [B] per-user losses.
      tail_frac: the "hard-user ratio"; τ is the (1 - tail_frac) quantile.
      gamma: the smoothing temperature; ≤ 0 selects the hard variant.
      mask: [B] bool, valid users (padding users of a partial meta-batch are False).
    Returns:
      scalar objective.
    """
    tau = masked_quantile(user_losses, 1.0 - tail_frac, mask)
    if gamma > 0:
        weights = jax.nn.sigmoid((user_losses - tau) / gamma)
    else:
        weights = jax.lax.stop_gradient((user_losses > tau).astype(user_losses.dtype))
    if mask is not None:
        weights = jnp.where(mask, weights, 0.0)
        user_losses = jnp.where(mask, user_losses, 0.0)
    return jnp.sum(weights * user_losses)
