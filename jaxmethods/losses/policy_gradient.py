"""GRPO pieces as pure functions: group advantages, the clipped surrogate and the k3 KL.

Shapes: B completions = (prompts × G) laid out prompt-major (the G samples of a prompt are
consecutive, as a generator batched over `repeat(prompts, G)` emits them), T completion tokens.
The formulas follow TRL's `GRPOTrainer` (`_generate_and_score_completions`, `_compute_loss`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

ADVANTAGE_SCALES = ("std", "group", "batch", "none")
SURROGATE_NORMS = ("token", "sequence", "dr_grpo")
STD_EPS = 1e-4  # TRL: advantages / (std + 1e-4)


def grpo_advantages(
    rewards: jnp.ndarray,
    group_size: int,
    scale: str = "std",
    valid: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """Group-relative advantages  A_i = (r_i − mean_g(r)) / (std_g(r) + 1e-4)  (GRPO, eq. 3).

    The std is the unbiased one (Bessel's correction), as `torch.std` / TRL's `nanstd` compute
    it. Unscorable completions (`valid` False, e.g. every judge failed) are left out of their
    group's mean and std and get advantage 0, as TRL does with NaN rewards.

    Args:
      rewards: [B] scalar reward per completion, B = num_prompts × group_size, prompt-major.
      group_size: G, completions per prompt.
      scale: "std" (alias "group": divide by the group's std), "batch" (by the std of the whole
        batch; Liu et al.'s "Understanding R1-Zero" recommends "none"), or "none" (mean-centred
        only, Dr. GRPO).
      valid: [B] bool, False for completions without a reward (None: all valid).
    Returns:
      [B] float32 advantages.
    """
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"grpo_advantages: scale={scale!r} is not one of {ADVANTAGE_SCALES}")
    rewards = jnp.asarray(rewards, jnp.float32)
    if rewards.ndim != 1 or rewards.shape[0] % group_size:
        raise ValueError(
            f"grpo_advantages: rewards must be [num_prompts * group_size] with group_size="
            f"{group_size}, got shape {rewards.shape}"
        )
    valid = jnp.ones(rewards.shape, bool) if valid is None else jnp.asarray(valid, bool)
    grouped = rewards.reshape(-1, group_size)
    ok = valid.reshape(-1, group_size)
    count = jnp.sum(ok, axis=1, keepdims=True)
    mean = jnp.sum(jnp.where(ok, grouped, 0.0), axis=1, keepdims=True) / jnp.maximum(count, 1)
    centred = jnp.where(ok, grouped - mean, 0.0)
    if scale in ("std", "group"):
        var = jnp.sum(centred**2, axis=1, keepdims=True) / jnp.maximum(count - 1, 1)
        centred = centred / (jnp.sqrt(var) + STD_EPS)
    elif scale == "batch":
        n = jnp.sum(valid)
        batch_mean = jnp.sum(jnp.where(valid, rewards, 0.0)) / jnp.maximum(n, 1)
        var = jnp.sum(jnp.where(valid, rewards - batch_mean, 0.0) ** 2) / jnp.maximum(n - 1, 1)
        centred = centred / (jnp.sqrt(var) + STD_EPS)
    return jnp.where(ok, centred, 0.0).reshape(-1)


def k3_kl(logp: jnp.ndarray, ref_logp: jnp.ndarray) -> jnp.ndarray:
    """Schulman's k3 estimator of KL(π ‖ π_ref) per token:  exp(q − p) − (q − p) − 1,
    p = log π, q = log π_ref. Non-negative, unbiased for tokens sampled from π. Same shape as
    the inputs, float32."""
    d = jnp.asarray(ref_logp, jnp.float32) - jnp.asarray(logp, jnp.float32)
    return jnp.exp(d) - d - 1.0


def clipped_surrogate(
    logp: jnp.ndarray,
    old_logp: jnp.ndarray,
    advantages: jnp.ndarray,
    mask: jnp.ndarray,
    eps_low: float = 0.2,
    eps_high: float | None = None,
    norm: str = "token",
    *,
    ref_logp: jnp.ndarray | None = None,
    kl_coef: float = 0.0,
    max_completion_length: int | None = None,
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """The PPO/GRPO clipped objective as a loss to minimise, with an optional k3 KL penalty.

        ρ_t = exp(log π_t − log π_old,t)
        ℓ_t = −min(ρ_t A, clip(ρ_t, 1 − ε_low, 1 + ε_high) A) + β · k3_t

    Normalisation over the mask M (TRL's `loss_type`):
        "token"     Σ ℓ·M / Σ M                          (DAPO / TRL "bnpo": every token counts once)
        "sequence"  mean_b (Σ_t ℓ·M / Σ_t M)             (the GRPO paper, eq. 3; TRL "grpo")
        "dr_grpo"   Σ ℓ·M / (B · L_max)                  (Dr. GRPO; L_max = max_completion_length)

    Args:
      logp: [B, T] token log-probs under the policy being optimised.
      old_logp: [B, T] under the policy that sampled (equal to `logp` in value at the first
        update, so ρ = 1; pass `jax.lax.stop_gradient(logp)` for a single-update GRPO).
      advantages: [B] (or [B, T]) advantages.
      mask: [B, T] 1 on completion tokens.
      eps_low, eps_high: the clip range (eps_high defaults to eps_low; DAPO uses 0.2 / 0.28).
      norm: "token", "sequence" or "dr_grpo".
      ref_logp: [B, T] reference log-probs for the KL penalty (needed when kl_coef ≠ 0).
      kl_coef: β.
      max_completion_length: L_max for "dr_grpo" (default T).
    Returns:
      (loss scalar, metrics {"clip_frac", "kl", "ratio_mean"}: token means over the mask,
      stop-gradient).
    """
    if norm not in SURROGATE_NORMS:
        raise ValueError(f"clipped_surrogate: norm={norm!r} is not one of {SURROGATE_NORMS}")
    if kl_coef != 0.0 and ref_logp is None:
        raise ValueError("clipped_surrogate: kl_coef != 0 needs ref_logp")
    eps_high = eps_low if eps_high is None else eps_high
    logp = jnp.asarray(logp, jnp.float32)
    mask = jnp.asarray(mask, jnp.float32)
    adv = jnp.asarray(advantages, jnp.float32)
    adv = adv[:, None] if adv.ndim == 1 else adv
    ratio = jnp.exp(logp - jnp.asarray(old_logp, jnp.float32))
    clipped = jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
    per_token = -jnp.minimum(ratio * adv, clipped * adv)
    kl = jnp.zeros_like(per_token) if ref_logp is None else k3_kl(logp, ref_logp)
    if kl_coef != 0.0:
        per_token = per_token + kl_coef * kl
    masked = per_token * mask
    if norm == "token":
        loss = jnp.sum(masked) / jnp.maximum(jnp.sum(mask), 1.0)
    elif norm == "sequence":
        loss = jnp.mean(jnp.sum(masked, -1) / jnp.maximum(jnp.sum(mask, -1), 1.0))
    else:
        length = mask.shape[-1] if max_completion_length is None else max_completion_length
        loss = jnp.sum(masked) / (mask.shape[0] * length)
    tokens = jnp.maximum(jnp.sum(mask), 1.0)
    is_clipped = ((ratio < 1.0 - eps_low) & (adv < 0)) | ((ratio > 1.0 + eps_high) & (adv > 0))
    metrics = {
        "clip_frac": jnp.sum(is_clipped * mask) / tokens,
        "kl": jnp.sum(kl * mask) / tokens,
        "ratio_mean": jnp.sum(ratio * mask) / tokens,
    }
    return loss, jax.lax.stop_gradient(metrics)
