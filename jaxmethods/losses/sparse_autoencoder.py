"""Sparse-autoencoder losses (DEP, arXiv 2507.20849, `model/personal_model.py`). Pure jax.

DEP trains a frozen LLM's soft-prompt adapter with

    L = CE_LM + sae_weight * (SmoothL1(x_recon, x) + kl_weight * KL(rho || rho_hat)),

sae_weight = 100, kl_weight = 1e-3, rho = 0.05, where rho_hat = clip(mean over the soft TOKENS of
the SAE code z, eps, 1 - eps) (per example and unit, not over the batch; GELU codes can be
negative, hence the clamp) and KL is the Bernoulli divergence averaged over examples and units.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

DEP_RHO = 0.05
DEP_SAE_WEIGHT = 100.0
DEP_KL_WEIGHT = 1e-3
DEP_CLAMP_EPS = 1e-6


def smooth_l1_loss(pred: jnp.ndarray, target: jnp.ndarray, *, beta: float = 1.0) -> jnp.ndarray:
    """torch's `F.smooth_l1_loss` (mean reduction): mean of 0.5 d^2 / beta if |d| < beta, else
    |d| - 0.5 beta, with d = pred - target. Symmetric in its arguments.

    Args:
      pred, target: the same shape, any rank.
      beta: the switch point (> 0); beta = 1 is torch's default and equals Huber with delta 1.
    Returns:
      scalar float32.
    """
    if beta <= 0:
        raise ValueError(f"smooth_l1_loss: beta must be > 0, got {beta}")
    d = pred.astype(jnp.float32) - target.astype(jnp.float32)
    return jnp.mean(optax.losses.huber_loss(d, delta=beta)) / beta


def sparsity_rho_hat(z: jnp.ndarray, *, axis: int = 1, eps: float = DEP_CLAMP_EPS) -> jnp.ndarray:
    """The mean activation of each code unit, clamped into [eps, 1 - eps].

    Args:
      z: [B, K, D] SAE codes (K soft tokens per example).
      axis: the axis averaged over (1 = the tokens, as DEP codes it).
    Returns:
      rho_hat [B, D] float32 (for axis=1).
    """
    rho_hat = jnp.mean(z.astype(jnp.float32), axis=axis)
    return jnp.clip(rho_hat, eps, 1.0 - eps)


def bernoulli_kl(rho: float, rho_hat: jnp.ndarray) -> jnp.ndarray:
    """Elementwise KL(Bernoulli(rho) || Bernoulli(rho_hat)) =
    rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat)); 0 where rho_hat = rho."""
    if not 0.0 < rho < 1.0:
        raise ValueError(f"bernoulli_kl: rho must be in (0, 1), got {rho}")
    return rho * jnp.log(rho / rho_hat) + (1.0 - rho) * jnp.log((1.0 - rho) / (1.0 - rho_hat))


def kl_sparsity_loss(
    z: jnp.ndarray, *, rho: float = DEP_RHO, axis: int = 1, eps: float = DEP_CLAMP_EPS
) -> jnp.ndarray:
    """mean KL(rho || rho_hat) over examples and units, rho_hat = `sparsity_rho_hat(z)`.

    Args:
      z: [B, K, D] SAE codes.
    Returns:
      scalar float32.
    """
    return jnp.mean(bernoulli_kl(rho, sparsity_rho_hat(z, axis=axis, eps=eps)))


def dep_loss(
    lm_loss: jnp.ndarray,
    x: jnp.ndarray,
    x_recon: jnp.ndarray,
    z: jnp.ndarray,
    *,
    rho: float = DEP_RHO,
    sae_weight: float = DEP_SAE_WEIGHT,
    kl_weight: float = DEP_KL_WEIGHT,
    beta: float = 1.0,
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """DEP's objective: lm_loss + sae_weight * (SmoothL1(x_recon, x) + kl_weight * KL).

    Args:
      lm_loss: scalar causal-LM cross-entropy (mean over label tokens).
      x: [B, K, E] SAE inputs (DEP: the 16 history / difference embeddings, E = 1024).
      x_recon: [B, K, E] SAE reconstructions.
      z: [B, K, D] SAE codes.
    Returns:
      (total scalar float32, {"lm": ..., "recon": ..., "kl": ...}).
    """
    recon = smooth_l1_loss(x, x_recon, beta=beta)
    kl = kl_sparsity_loss(z, rho=rho)
    lm = lm_loss.astype(jnp.float32)
    total = lm + sae_weight * (recon + kl_weight * kl)
    return total, {"lm": lm, "recon": recon, "kl": kl}
