"""Min-K% Prob membership inference and its ROC AUC (MUSE privleak).

Min-K% (Shi et al., 2024), as open-unlearning implements it: for each sequence take the
log-probabilities of its label tokens (all but the last one, the authors' `tokenwise_logprobs`
drops the final label position), keep the `max(1, int(n * k))` smallest and score
`-mean(those)`; a higher score means less likely, i.e. more probably a non-member. The AUC is
computed with forget samples labelled 0 and holdout samples labelled 1, so a model that still
memorises the forget set has AUC near 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def min_k_scores(token_logprobs: jnp.ndarray, mask: jnp.ndarray, k: float = 0.4) -> jnp.ndarray:
    """Min-K% scores per sequence: [B, T], [B, T] -> [B] (0 for a sequence with no token).

    Args:
      token_logprobs: [B, T] log p of each label token.
      mask: [B, T] bool, the tokens that count (callers drop the last label token to match the
        authors' code; see `drop_last_label`).
      k: fraction of lowest-probability tokens kept (0.4 in open-unlearning's MUSE/TOFU configs).
    """
    if not 0.0 < k <= 1.0:
        raise ValueError(f"min_k_scores: k must be in (0, 1], got {k!r}")
    lp = jnp.where(mask, token_logprobs.astype(jnp.float32), jnp.inf)
    n = jnp.sum(mask, axis=-1)
    num_k = jnp.maximum(1, jnp.floor(n.astype(jnp.float32) * k + 1e-6).astype(jnp.int32))
    lowest_first = jnp.sort(lp, axis=-1)
    keep = jnp.arange(lp.shape[-1])[None, :] < num_k[:, None]
    total = jnp.sum(jnp.where(keep, lowest_first, 0.0), axis=-1)
    return jnp.where(n > 0, -total / num_k, 0.0)


def drop_last_label(mask: jnp.ndarray) -> jnp.ndarray:
    """Removes each row's last True position: [B, T] bool -> [B, T] bool."""
    positions = jnp.arange(mask.shape[-1])[None, :]
    last = jnp.max(jnp.where(mask, positions, -1), axis=-1, keepdims=True)
    return mask & (positions != last)


min_k_scores_jit = jax.jit(min_k_scores, static_argnames=("k",))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties), like sklearn's.

    Args:
      scores: [N] real scores, higher = more likely positive.
      labels: [N] 0/1 labels; both classes must be present.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"roc_auc: need both classes, got {n_pos} positive and {n_neg} negative")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def mia_auc(forget_scores: np.ndarray, holdout_scores: np.ndarray) -> float:
    """AUC of an MIA score separating holdout (label 1) from forget (label 0) samples."""
    forget_scores = np.asarray(forget_scores, np.float64)
    holdout_scores = np.asarray(holdout_scores, np.float64)
    scores = np.concatenate([forget_scores, holdout_scores])
    labels = np.concatenate([np.zeros(len(forget_scores)), np.ones(len(holdout_scores))])
    return roc_auc(scores, labels)
