"""Collaborative-filtering losses: BPR, sampled BCE, InfoNCE, embedding L2, BPR with sample drop.

Pure functions of score/embedding arrays (jax only). Conventions:
- `mask: [B] bool` marks the real rows of a padded batch (the last batch of an epoch is padded
  to a static shape); masked rows contribute nothing, and means are over the real rows.
- `reduction` is "mean" (over real rows), "sum" or "none" (per-example values, 0 where masked).

The defaults follow RecBole's code (the toolkit the scaling study most plausibly used, see
`docs/cf_scaling.md`): BPR and BCE are means, SGL's terms are sums (its model passes
`reduction="sum"`), and the embedding regulariser is RecBole's `EmbLoss` (unsquared norms unless
`squared=True`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmethods.losses.common import masked_mean, masked_sum

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(per_example: jnp.ndarray, mask: jnp.ndarray | None, reduction: str) -> jnp.ndarray:
    if reduction == "mean":
        return masked_mean(per_example, mask)
    if reduction == "sum":
        return masked_sum(per_example, mask)
    if reduction == "none":
        return per_example if mask is None else jnp.where(mask, per_example, 0.0)
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def bpr_loss(
    pos_scores: jnp.ndarray,
    neg_scores: jnp.ndarray,
    *,
    mask: jnp.ndarray | None = None,
    reduction: str = "mean",
) -> jnp.ndarray:
    """Bayesian Personalised Ranking (Rendle et al. 2009, eq. 7 without the prior term).

    L = -log σ(s(u,i) - s(u,j)) per (user, positive, negative) triple.

    Args:
      pos_scores: [B] float, s(u, i) for the observed items.
      neg_scores: [B] float, s(u, j) for the sampled negatives.
      mask: optional [B] bool, real rows.
      reduction: "mean" (RecBole `BPRLoss`), "sum" (RecBole SGL) or "none".

    RecBole writes -log(1e-10 + σ(x)); `-log_sigmoid(x)` is the same up to that 1e-10 and stays
    finite for very negative x.
    """
    per_example = -jax.nn.log_sigmoid(pos_scores - neg_scores)
    return _reduce(per_example, mask, reduction)


def sampled_bce_loss(
    pos_logits: jnp.ndarray,
    neg_logits: jnp.ndarray,
    *,
    mask: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """Pointwise binary cross-entropy with sampled negatives (NeuMF, He et al. 2017, eq. 7).

    L = [Σ_b softplus(-ŷ_b+) + Σ_{b,n} softplus(ŷ_{b,n}-)] / (B · (1 + N)), i.e. the mean of
    BCE-with-logits over every labelled row (positives label 1, negatives label 0), as RecBole's
    `BCEWithLogitsLoss` on a pointwise batch.

    Args:
      pos_logits: [B] float.
      neg_logits: [B] or [B, N] float (N negatives per positive).
      mask: optional [B] bool; a masked positive also masks its negatives.
    """
    neg_logits = neg_logits[:, None] if neg_logits.ndim == 1 else neg_logits
    per_row = jax.nn.softplus(-pos_logits) + jnp.sum(jax.nn.softplus(neg_logits), axis=-1)
    rows_per_example = 1 + neg_logits.shape[-1]
    return masked_mean(per_row, mask) / rows_per_example


def info_nce(
    anchors: jnp.ndarray,
    candidates: jnp.ndarray,
    positives: jnp.ndarray,
    *,
    temperature: float,
    mask: jnp.ndarray | None = None,
    reduction: str = "mean",
) -> jnp.ndarray:
    """InfoNCE with every node of the second view as a candidate (SGL, Wu et al. 2021, eq. 10).

    With z = x / max(||x||, 1e-12) (`F.normalize`), anchor b of view 1 and its own node p_b:

        L_b = -log( exp(z1_b · z2_{p_b} / τ) / Σ_{c=1..N} exp(z1_b · z2_c / τ) )

    The denominator runs over all N nodes of view 2 (every user for user anchors, every item for
    item anchors), the positive included, as RecBole's `SGL.calc_ssl_loss`; it is not restricted
    to the batch. A node that appears several times in the batch is an anchor each time.

    Args:
      anchors: [B, d] float, view-1 embeddings of the batch nodes (not necessarily normalised).
      candidates: [N, d] float, view-2 embeddings of all N nodes of the same type.
      positives: [B] int, the row of `candidates` that is each anchor's own node.
      temperature: τ > 0 (RecBole `ssl_tau`).
      mask: optional [B] bool; masked anchors contribute nothing (candidates are never masked).
      reduction: "mean", "sum" (RecBole / SGL) or "none".
    """
    z1 = anchors / jnp.maximum(jnp.linalg.norm(anchors, axis=-1, keepdims=True), 1e-12)
    z2 = candidates / jnp.maximum(jnp.linalg.norm(candidates, axis=-1, keepdims=True), 1e-12)
    logits = (z1 @ z2.T) / temperature  # [B, N]
    positive = jnp.sum(z1 * z2[positives], axis=-1) / temperature
    per_example = jax.nn.logsumexp(logits, axis=-1) - positive
    return _reduce(per_example, mask, reduction)


def embedding_l2_reg(
    *embeddings: jnp.ndarray, mask: jnp.ndarray | None = None, squared: bool = False
) -> jnp.ndarray:
    """RecBole's `EmbLoss` on the batch's ego (layer-0) embeddings.

    squared=False (RecBole default, `require_pow=False`): Σ_k ||E_k||_F / B.
    squared=True  (`require_pow=True`, the paper's ||E||²):   Σ_k ||E_k||_F² / (2B).

    Args:
      *embeddings: each [B, d] float (e.g. users, positives, negatives of the batch).
      mask: optional [B] bool; B above is the number of real rows.
    """
    if not embeddings:
        raise ValueError("embedding_l2_reg needs at least one [B, d] embedding array")
    rows = None if mask is None else mask[:, None]
    batch = embeddings[-1].shape[0] if mask is None else jnp.maximum(jnp.sum(mask), 1)
    total = 0.0
    for emb in embeddings:
        sq = masked_sum(jnp.square(emb), rows)
        # The tiny floor keeps the gradient of the norm finite for an all-zero batch.
        total = total + (sq / 2.0 if squared else jnp.sqrt(jnp.maximum(sq, 1e-30)))
    return total / batch


def drop_rate_schedule(step: jnp.ndarray, *, max_rate: float, ramp_steps: int) -> jnp.ndarray:
    """ε(t) = ε_max · min(t / T, 1): linear ramp to the maximum drop rate (T-CE style)."""
    if ramp_steps <= 0:
        return jnp.asarray(max_rate, jnp.float32)
    frac = jnp.minimum(jnp.asarray(step, jnp.float32) / ramp_steps, 1.0)
    return max_rate * frac


def drop_highest_loss_mask(
    per_example: jnp.ndarray, drop_rate: jnp.ndarray | float, mask: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Keep-mask that removes the ⌊ε·B⌋ highest-loss real rows (B = number of real rows).

    Ties are broken by position (earlier rows are dropped first). Returns [B] bool.
    """
    valid = jnp.ones(per_example.shape, bool) if mask is None else mask
    n_valid = jnp.sum(valid)
    n_drop = jnp.floor(jnp.asarray(drop_rate, jnp.float32) * n_valid).astype(jnp.int32)
    keyed = jnp.where(valid, jax.lax.stop_gradient(per_example), -jnp.inf)
    order = jnp.argsort(-keyed, stable=True)
    rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0]))
    return valid & (rank >= n_drop)


def bpr_drop_loss(
    pos_scores: jnp.ndarray,
    neg_scores: jnp.ndarray,
    *,
    drop_rate: jnp.ndarray | float,
    mask: jnp.ndarray | None = None,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """BPR with loss-based sample drop (the study's "BPR_Drop"; truncated loss of T-CE).

    The ⌊ε·B⌋ triples with the largest BPR loss are treated as likely-noisy interactions and
    dropped; the loss is the mean BPR over the kept triples. With ε = 0 it equals `bpr_loss`.

    Returns:
      (loss scalar, keep mask [B] bool).
    """
    per_example = -jax.nn.log_sigmoid(pos_scores - neg_scores)
    keep = drop_highest_loss_mask(per_example, drop_rate, mask)
    return masked_mean(per_example, keep), keep
