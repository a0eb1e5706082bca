"""LLM-unlearning losses: per-token CE helpers, GA / GradDiff, NPO, SimNPO and SatImp. Pure jax.

Conventions (those of the open-unlearning code that BalDRO builds on):
  * labels follow the Hugging Face layout: `labels[b, t]` is the id of `input_ids[b, t]` or
    `IGNORE_INDEX` (-100) where no loss is taken; `next_token_labels` shifts them once so that
    `labels[b, t]` becomes the token predicted by position `t` (the `logprobs.py` convention).
  * `NLL_seq(x) = sum_t CE_t * mask_t` is a per-sequence SUM (`sequence_nll`); NPO uses it,
    SimNPO divides it by the number of label tokens, the HF "model loss" is the token mean over
    the whole batch (`token_mean_nll`).
Every function returns per-sample or per-token values unless it says it reduces; reductions are
left to the caller (the BalDRO trainer applies the mean, the group top-k mean or the DV dual).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmethods.losses.common import masked_mean, masked_sum
from jaxmethods.losses.logprobs import chunked_token_logprobs, token_logprobs

IGNORE_INDEX = -100


def next_token_labels(labels: jnp.ndarray, ignore_index: int = IGNORE_INDEX) -> jnp.ndarray:
    """Shifts HF-style labels left by one: [B, T] -> [B, T], last column = `ignore_index`.

    HF computes the loss of `logits[:, :-1]` against `labels[:, 1:]`; keeping T and padding the
    last column with `ignore_index` gives the same terms without slicing the logits.
    """
    pad = jnp.full((*labels.shape[:-1], 1), ignore_index, labels.dtype)
    return jnp.concatenate([labels[..., 1:], pad], axis=-1)


def token_cross_entropy(
    logits: jnp.ndarray, labels: jnp.ndarray, ignore_index: int = IGNORE_INDEX
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per-token CE over label tokens (`nn.CrossEntropyLoss(ignore_index=-100, reduction='none')`).

    Args:
      logits: [B, T, V] any float dtype.
      labels: [B, T] int, already shifted (`next_token_labels`); `ignore_index` marks no-loss.
    Returns:
      (ce [B, T] float32 with 0 at ignored positions, mask [B, T] bool of label tokens).
    """
    mask = labels != ignore_index
    safe = jnp.where(mask, labels, 0)
    ce = -token_logprobs(logits, safe)
    return jnp.where(mask, ce, 0.0), mask


def token_cross_entropy_from_hidden(
    hidden: jnp.ndarray,
    lm_head_kernel: jnp.ndarray,
    labels: jnp.ndarray,
    *,
    chunk_size: int,
    ignore_index: int = IGNORE_INDEX,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """`token_cross_entropy` from hidden states [B, T, H] and the LM head [H, V], chunked over T.

    The [B, T, V] fp32 logits never exist at once (see `chunked_token_logprobs`).
    """
    mask = labels != ignore_index
    safe = jnp.where(mask, labels, 0)
    ce = -chunked_token_logprobs(hidden, lm_head_kernel, safe, chunk_size=chunk_size)
    return jnp.where(mask, ce, 0.0), mask


def sequence_nll(token_ce: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """NLL_seq = sum_t CE_t * mask_t: [B, T], [B, T] -> [B] (a per-sequence SUM)."""
    return masked_sum(token_ce, mask, axis=-1)


def num_label_tokens(mask: jnp.ndarray) -> jnp.ndarray:
    """|y_i|, the number of label tokens per sequence: [B, T] -> [B] float32."""
    return jnp.sum(mask, axis=-1).astype(jnp.float32)


def sequence_mean_nll(token_ce: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """Per-sequence average NLL = NLL_seq / max(1, |y|): [B, T] -> [B] (BalDRO-G hardness)."""
    return sequence_nll(token_ce, mask) / jnp.maximum(num_label_tokens(mask), 1.0)


def token_mean_nll(token_ce: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """HF model loss: sum of CE over all label tokens of the batch / their count -> scalar."""
    return masked_mean(token_ce, mask)


def retain_nll_loss(
    token_ce: jnp.ndarray, mask: jnp.ndarray, *, reduction: str = "token_mean"
) -> jnp.ndarray:
    """Retain NLL, scalar.

    reduction:
      "token_mean": the HF model loss (`compute_retain_loss`), used by the baselines, BalDRO-G and
        DrSimNPO.
      "sequence_sum_mean": mean_i NLL_seq(retain_i), the per-sequence SUM averaged over sequences;
        what DrNPO / DrSatImp compute in the authors' code (`compute_batch_nll(...).mean()`). Its
        scale is |y| times the token mean for equal lengths.
    A row with no label token (a padding row) counts in neither reduction's denominator.
    """
    if reduction == "token_mean":
        return token_mean_nll(token_ce, mask)
    if reduction == "sequence_sum_mean":
        rows = jnp.any(mask, axis=-1)
        return masked_mean(sequence_nll(token_ce, mask), rows)
    raise ValueError(
        f"retain_nll_loss: reduction must be 'token_mean' or 'sequence_sum_mean', got {reduction!r}"
    )


def gradient_ascent_loss(token_ce: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """GA forget loss: minus the HF token-mean NLL of the forget batch -> scalar."""
    return -token_mean_nll(token_ce, mask)


def gradient_difference_loss(
    forget_ce: jnp.ndarray,
    forget_mask: jnp.ndarray,
    retain_ce: jnp.ndarray,
    retain_mask: jnp.ndarray,
    *,
    gamma: float = 1.0,
    alpha: float = 1.0,
) -> jnp.ndarray:
    """GradDiff: gamma * (-NLL_forget) + alpha * NLL_retain, both HF token means -> scalar."""
    return gamma * gradient_ascent_loss(forget_ce, forget_mask) + alpha * token_mean_nll(
        retain_ce, retain_mask
    )


def npo_loss(policy_nll: jnp.ndarray, ref_nll: jnp.ndarray, beta: float) -> jnp.ndarray:
    """Negative Preference Optimization, per sample.

    r_i = log pi_theta(y|x) - log pi_ref(y|x) = NLL_ref,i - NLL_theta,i  (per-sequence sums)
    l_i = -(2/beta) * log sigmoid(-beta * r_i)

    Args:
      policy_nll: [B] NLL_seq under the trained model.
      ref_nll: [B] NLL_seq under the frozen reference (no gradient flows into it).
      beta: inverse temperature (0.1 in BalDRO's configs).
    Returns:
      [B] per-sample losses; at theta = ref each equals (2/beta) log 2.
    """
    log_ratio = jax.lax.stop_gradient(ref_nll) - policy_nll
    return -(2.0 / beta) * jax.nn.log_sigmoid(-beta * log_ratio)


def simnpo_loss(
    policy_nll: jnp.ndarray, num_tokens: jnp.ndarray, beta: float, delta: float = 0.0
) -> jnp.ndarray:
    """SimNPO (reference-free, length-normalised NPO), per sample.

    l_i = -(2/beta) * log sigmoid(beta * (NLL_theta,i / |y_i| - delta))

    Args:
      policy_nll: [B] NLL_seq under the trained model.
      num_tokens: [B] number of label tokens |y_i| (clamped at 1, so padding rows stay finite;
        the authors' code divides without a clamp, which only matters for empty rows).
      beta: 4.5 in BalDRO's configs; delta: margin (0 by default).
    """
    avg = policy_nll / jnp.maximum(num_tokens, 1.0)
    return -(2.0 / beta) * jax.nn.log_sigmoid(beta * (avg - delta))


def satimp_token_loss(
    token_ce: jnp.ndarray,
    beta1: float,
    beta2: float,
    mask: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """SatImp, per token: l_t = -p_t^beta1 * (1 - p_t)^beta2 * CE_t with p_t = exp(-CE_t) detached.

    The weights carry no gradient, so dl_t/dCE_t = -p_t^beta1 (1 - p_t)^beta2 with p_t fixed.

    Args:
      token_ce: [B, T] per-token CE.
      beta1, beta2: saturation / importance exponents (5 and 1 in BalDRO's configs).
      mask: optional [B, T] label-token mask; masked positions return 0.
    Returns:
      [B, T] per-token losses (the baseline reduction is the mean over valid tokens).
    """
    p = jnp.exp(-jax.lax.stop_gradient(token_ce))
    weight = p**beta1 * (1.0 - p) ** beta2
    loss = -weight * token_ce
    return loss if mask is None else jnp.where(mask, loss, 0.0)
