"""Pairwise preference losses: Bradley–Terry, the Robust Personalization Objective (MRM, arXiv
2601.18731) and DPO with its TRL variants."""

from __future__ import annotations

from typing import NamedTuple

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


DPO_LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust")


class DPOOutput(NamedTuple):
    """Per-pair DPO terms, each [P] float32.

    losses: the per-pair loss (average it, or weight it, outside).
    chosen_rewards / rejected_rewards: the implicit rewards β·(log π − log π_ref), detached.
    margins: chosen_rewards − rejected_rewards.
    """

    losses: jnp.ndarray
    chosen_rewards: jnp.ndarray
    rejected_rewards: jnp.ndarray
    margins: jnp.ndarray


def dpo_loss(
    policy_chosen: jnp.ndarray,
    policy_rejected: jnp.ndarray,
    ref_chosen: jnp.ndarray,
    ref_rejected: jnp.ndarray,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    loss_type: str = "sigmoid",
    *,
    chosen_lengths: jnp.ndarray | None = None,
    rejected_lengths: jnp.ndarray | None = None,
) -> DPOOutput:
    """Direct Preference Optimization (Rafailov et al., 2023, eq. 7) and the TRL variants.

    With the log-ratios  ρ_c = log π(y_c|x) − log π_ref(y_c|x),  ρ_r likewise, and  h = ρ_c − ρ_r:

        sigmoid  −(1−ε) log σ(βh) − ε log σ(−βh)                 (ε = label_smoothing: cDPO)
        robust   [−(1−ε) log σ(βh) + ε log σ(−βh)] / (1 − 2ε)      (Chowdhury et al., 2024)
        hinge    max(0, 1 − βh)                                   (SLiC)
        ipo      (h̄ − 1/(2β))²                                    (Azar et al., 2023, eq. 17)

    For IPO, TRL (and the IPO authors' reported setting) divide each log-ratio by its completion
    length before the difference, h̄ = ρ_c/|y_c| − ρ_r/|y_r|; pass `chosen_lengths` /
    `rejected_lengths` (token counts) to get that, or omit them for the unnormalised form.
    With ε = 0 the sigmoid loss is log 2 where policy equals reference.

    Args:
      policy_chosen, policy_rejected, ref_chosen, ref_rejected: [P] summed sequence log-probs
        of the completions (see `sequence_logprobs` / `chunked_sequence_logprobs`).
      beta: β, the KL strength (τ for IPO).
      label_smoothing: ε, the assumed label-flip rate (sigmoid and robust; robust needs ε < 0.5).
      loss_type: one of "sigmoid", "ipo", "hinge", "robust".
      chosen_lengths, rejected_lengths: [P] completion token counts (IPO length normalisation).
    Returns:
      DPOOutput of [P] arrays; the training loss is `out.losses.mean()`.
    """
    if loss_type not in DPO_LOSS_TYPES:
        raise ValueError(f"dpo_loss: loss_type={loss_type!r} is not one of {DPO_LOSS_TYPES}")
    if loss_type == "robust" and not 0.0 <= label_smoothing < 0.5:
        raise ValueError(
            f"dpo_loss: robust needs 0 <= label_smoothing < 0.5, got {label_smoothing}"
        )
    if beta <= 0:
        raise ValueError(f"dpo_loss: beta must be > 0, got {beta}")
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    chosen_ratio = f32(policy_chosen) - f32(ref_chosen)
    rejected_ratio = f32(policy_rejected) - f32(ref_rejected)
    eps = label_smoothing
    if loss_type == "ipo":
        if (chosen_lengths is None) != (rejected_lengths is None):
            raise ValueError("dpo_loss: pass both chosen_lengths and rejected_lengths, or neither")
        if chosen_lengths is not None:
            h = chosen_ratio / jnp.maximum(f32(chosen_lengths), 1.0) - rejected_ratio / jnp.maximum(
                f32(rejected_lengths), 1.0
            )
        else:
            h = chosen_ratio - rejected_ratio
        losses = (h - 1.0 / (2.0 * beta)) ** 2
    else:
        z = beta * (chosen_ratio - rejected_ratio)
        if loss_type == "sigmoid":
            losses = -(1.0 - eps) * jax.nn.log_sigmoid(z) - eps * jax.nn.log_sigmoid(-z)
        elif loss_type == "robust":
            losses = (-(1.0 - eps) * jax.nn.log_sigmoid(z) + eps * jax.nn.log_sigmoid(-z)) / (
                1.0 - 2.0 * eps
            )
        else:  # hinge
            losses = jax.nn.relu(1.0 - z)
    chosen_rewards = jax.lax.stop_gradient(beta * chosen_ratio)
    rejected_rewards = jax.lax.stop_gradient(beta * rejected_ratio)
    return DPOOutput(losses, chosen_rewards, rejected_rewards, chosen_rewards - rejected_rewards)
