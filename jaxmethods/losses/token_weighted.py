"""Token-weighted cross-entropy and the token weights of IGD, Pos and CFT. Pure jax.

IGD-Tuning (Lin et al. 2025, eq. 7-8): every target token t gets a static weight
w_t = beta if IG_t == 0 else 1, and the micro-batch loss is

    L = sum_{valid tokens} w_t * CE_t / sum_{valid tokens} w_t

normalised over ALL valid tokens of the micro-batch (not per sequence). beta = 1 is plain SFT.

Baselines on the same interface:
- Pos: position-decay weights w_t = 1 - (pos_t - 1)(1 - beta) / (n - 1), pos_t = 1..n over a
  sequence's n target tokens.
- CFT (causal fine-tuning): the Pos-weighted CE plus alpha times the Pos-weighted CE of the
  logit difference to a counterfactual ("Unknow"-history) prompt, both normalised by the same
  sum of weights.

Convention: `labels[b, t]` is predicted by `logits[b, t]` (shifted once by the caller).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxmethods.losses.logprobs import token_logprobs


def weighted_token_nll(
    token_logps: jnp.ndarray, weights: jnp.ndarray, mask: jnp.ndarray
) -> jnp.ndarray:
    """sum(w * -logp) / sum(w) over the valid tokens; 0 when the weights sum to 0.

    Args:
      token_logps: [B, T] log p(label) per position (e.g. from a chunked log-prob kernel).
      weights: [B, T] non-negative token weights.
      mask: [B, T] bool/0-1, valid (target) positions.
    Returns:
      scalar float32.
    """
    if token_logps.shape != weights.shape or token_logps.shape != mask.shape:
        raise ValueError(
            "weighted_token_nll: token_logps, weights and mask must share a shape, got "
            f"{token_logps.shape}, {weights.shape}, {mask.shape}"
        )
    w = jnp.where(mask.astype(bool), weights.astype(jnp.float32), 0.0)
    total = jnp.sum(w)
    weighted = jnp.sum(w * -token_logps.astype(jnp.float32))
    return jnp.where(total > 0, weighted / jnp.where(total > 0, total, 1.0), 0.0)


def weighted_token_ce(
    logits: jnp.ndarray, labels: jnp.ndarray, weights: jnp.ndarray, mask: jnp.ndarray
) -> jnp.ndarray:
    """Token-weighted cross-entropy normalised by the sum of weights (IGD eq. 8).

    Args:
      logits: [B, T, V] any float dtype (CE is computed in float32).
      labels: [B, T] int token ids (any value at masked positions, e.g. -100, is ignored).
      weights: [B, T] token weights (IGD: `igd_token_weights`; Pos: `position_decay_weights`).
      mask: [B, T] valid target positions.
    Returns:
      scalar float32 sum(w * CE) / sum(w). With unit weights this is the token-mean CE.
    """
    safe_labels = jnp.where(mask.astype(bool), labels, 0)
    return weighted_token_nll(token_logprobs(logits, safe_labels), weights, mask)


def igd_token_weights(ig: jnp.ndarray, beta: float) -> jnp.ndarray:
    """IGD-Tuning weights: beta where IG == 0 (deterministic tokens), else 1.

    Args:
      ig: [...] float, trie information gain of each target token (all zeros for a target that
        is not in the catalog tree, which therefore gets beta everywhere).
      beta: weight of zero-IG tokens (paper: 0.1 generally; 1 recovers plain SFT).
    Returns:
      [...] float32.
    """
    return jnp.where(jnp.asarray(ig) == 0, jnp.float32(beta), jnp.float32(1.0))


def position_decay_weights(mask: jnp.ndarray, beta: float) -> jnp.ndarray:
    """Pos baseline weights: 1 - (pos - 1)(1 - beta)/(n - 1) over each row's valid tokens.

    The first target token has weight 1 and the last beta, linearly in between; 0 elsewhere.
    A row with a single valid token gets weight 1 (the authors' formula divides by n - 1 = 0).

    Args:
      mask: [B, T] valid target positions.
      beta: weight of the last target token.
    Returns:
      [B, T] float32.
    """
    valid = mask.astype(jnp.float32)
    n = jnp.sum(valid, axis=-1, keepdims=True)
    pos = jnp.cumsum(valid, axis=-1)
    gap = (1.0 - beta) / jnp.maximum(n - 1.0, 1.0)
    return jnp.where(mask.astype(bool), 1.0 - (pos - 1.0) * gap, 0.0)


def causal_fine_tuning_loss(
    logits: jnp.ndarray,
    counterfactual_logits: jnp.ndarray,
    labels: jnp.ndarray,
    weights: jnp.ndarray,
    mask: jnp.ndarray,
    *,
    alpha: float,
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """CFT training loss: weighted CE + alpha * weighted CE of (logits - counterfactual_logits).

    Both prompts end in the same target, aligned at the same positions (left padding). The
    counterfactual prompt replaces the user history with "Unknow"; gradients flow through both
    forward passes, as in the authors' `DebiasedTrainer`.

    Args:
      logits: [B, T, V] logits on the real prompt.
      counterfactual_logits: [B, T, V] logits on the counterfactual prompt.
      labels, weights, mask: [B, T] as in `weighted_token_ce` (weights: `position_decay_weights`).
      alpha: weight of the counterfactual term.
    Returns:
      (scalar loss, {"ce": weighted CE, "cf_ce": weighted CE of the logit difference}).
    """
    ce = weighted_token_ce(logits, labels, weights, mask)
    diff = logits.astype(jnp.float32) - counterfactual_logits.astype(jnp.float32)
    cf_ce = weighted_token_ce(diff, labels, weights, mask)
    return ce + alpha * cf_ce, {"ce": ce, "cf_ce": cf_ce}
