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

Label convention (every method of the project): HF causal-LM labels, `labels[b, t]` is the
token at position t of `input_ids` when it is a target token and `IGNORE_INDEX` (-100)
elsewhere; `weights[b, t]` is the weight of the label at the same position. The shift happens
here: position t's logits predict `labels[b, t + 1]` (`next_token_labels`).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxmethods.losses.logprobs import token_logprobs
from jaxmethods.losses.unlearning import IGNORE_INDEX, next_token_labels


def shift_labels_and_weights(
    labels: jnp.ndarray, weights: jnp.ndarray, ignore_index: int = IGNORE_INDEX
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """HF labels and their aligned weights -> what position t's logits are scored against.

    Args:
      labels: [B, T] int HF labels (`ignore_index` = no loss), unshifted.
      weights: [B, T] float weight of each label token, unshifted (any value where ignored).
    Returns:
      (safe_labels [B, T] int32, the next token's id with 0 where ignored,
       weights [B, T] float32, the next token's weight with 0 where ignored,
       mask [B, T] bool, whether position t has a next-token label).
    """
    if labels.shape != weights.shape:
        raise ValueError(
            f"labels {labels.shape} and weights {weights.shape} must share a shape [B, T]"
        )
    nxt = next_token_labels(labels, ignore_index)
    mask = nxt != ignore_index
    w = jnp.where(mask, next_token_labels(weights.astype(jnp.float32), 0.0), 0.0)
    return jnp.where(mask, nxt, 0).astype(jnp.int32), w, mask


def weighted_token_nll(
    token_logps: jnp.ndarray, weights: jnp.ndarray, mask: jnp.ndarray
) -> jnp.ndarray:
    """sum(w * -logp) / sum(w) over the valid tokens; 0 when the weights sum to 0.

    Args:
      token_logps: [B, T] log p(next token) per position (already shifted, e.g. the chunked
        log-prob kernel on the output of `shift_labels_and_weights`).
      weights: [B, T] non-negative token weights, aligned with `token_logps`.
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
    logits: jnp.ndarray, labels: jnp.ndarray, weights: jnp.ndarray
) -> jnp.ndarray:
    """Token-weighted causal-LM cross-entropy normalised by the sum of weights (IGD eq. 8).

    L = sum_t w_{t+1} CE(logits_t, labels_{t+1}) / sum_t w_{t+1} over the label tokens.

    Args:
      logits: [B, T, V] any float dtype (CE is computed in float32).
      labels: [B, T] int HF labels, unshifted, -100 where there is no loss.
      weights: [B, T] weight of each label token (IGD: `igd_token_weights`; Pos:
        `position_decay_weights`), unshifted like `labels`.
    Returns:
      scalar float32. With unit weights this is HF's token-mean causal-LM loss.
    """
    safe, w, mask = shift_labels_and_weights(labels, weights)
    return weighted_token_nll(token_logprobs(logits, safe), w, mask)


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
      labels, weights: [B, T] unshifted HF labels and their weights, as in `weighted_token_ce`.
      alpha: weight of the counterfactual term.
    Returns:
      (scalar loss, {"ce": weighted CE, "cf_ce": weighted CE of the logit difference}).
    """
    ce = weighted_token_ce(logits, labels, weights)
    diff = logits.astype(jnp.float32) - counterfactual_logits.astype(jnp.float32)
    cf_ce = weighted_token_ce(diff, labels, weights)
    return ce + alpha * cf_ce, {"ce": ce, "cf_ce": cf_ce}
