"""The GRPO update as a pure loss for `make_train_step`: completion log-probs and the clipped
surrogate with TRL's normalisations over a gradient-accumulated batch.

An update batch of B completions (prompt-major, B = prompts x G) holds

    input_ids, attention_mask   [B, P + C]  left-padded prompt (P) then the completion (C)
    completion_mask             [B, C]      1 on generated tokens (EOS included), 0 after
    advantages                  [B]         group advantages
    num_tokens                  [B]         Σ completion_mask over the WHOLE batch, every row
    old_logp                    [B, C]      (optional) log-probs of the policy that sampled
    ref_logp                    [B, C]      (optional) log-probs of the reference policy

`make_train_step` splits it into micro-batches along axis 0 and averages their losses and
gradients; the loss of one micro-batch is scaled so that the average is the loss of the whole
accumulated batch (DAPO: Σ over every active token / their total count, as TRL does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.losses import token_cross_entropy, token_cross_entropy_from_hidden
from jaxmethods.losses.policy_gradient import clipped_surrogate

IGNORE = -100


def completion_logprobs(
    model: Any,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    completion_mask: jax.Array,
    *,
    temperature: float = 1.0,
    chunk_size: int = 0,
    dropout_rng: jax.Array | None = None,
) -> jax.Array:
    """log π(y_t | x, y_<t) of every completion token, with logits divided by `temperature`
    (TRL's `_get_per_token_logps`: the sampling distribution before top-k/top-p).

    Args:
      input_ids, attention_mask: [B, P + C], the last C columns the completion.
      completion_mask: [B, C] 1 on completion tokens.
      chunk_size: > 0 runs the LM head over chunks of positions (no [B, C, V] fp32 logits).
    Returns:
      [B, C] float32, 0 where `completion_mask` is 0. Only the C completion positions go
      through the LM head (none of the prompt's).
    """
    c = completion_mask.shape[1]
    p = input_ids.shape[1] - c
    if p < 1:
        raise ValueError(f"completion_logprobs: no prompt column in input_ids {input_ids.shape}")
    h = model.hidden_states(input_ids, attention_mask, dropout_rng=dropout_rng)
    h = h[:, p - 1 : p - 1 + c]  # position t predicts token t + 1
    labels = jnp.where(completion_mask > 0, input_ids[:, p:], IGNORE)
    if chunk_size > 0:
        if temperature != 1.0:
            h = h / jnp.asarray(temperature, h.dtype)
        ce, _ = token_cross_entropy_from_hidden(
            h, model.lm_head_kernel(), labels, chunk_size=chunk_size
        )
    else:
        logits = model.logits_from_hidden(h)
        if temperature != 1.0:
            logits = logits.astype(jnp.float32) / temperature
        ce, _ = token_cross_entropy(logits, labels)
    return -ce


def make_grpo_loss_fn(
    graphdef: nnx.GraphDef,
    *,
    micro_batches: int,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    norm: str = "token",
    kl_coef: float = 0.0,
    max_completion_length: int | None = None,
    temperature: float = 1.0,
    chunk_size: int = 0,
) -> Callable:
    """`loss_fn(params, rest, batch, rng) -> (loss, metrics)` for `make_train_step` with
    `grad_accum_steps=micro_batches`.

    Without `old_logp` in the batch the ratio is exp(logp - stop_gradient(logp)) = 1 (one
    on-policy update, TRL's shortcut); without `ref_logp` there is no KL term. Metrics
    (`clip_frac`, `kl`, `ratio_mean`, `completion_tokens`) are token means over the whole
    accumulated batch.
    """

    def loss_fn(params, rest, batch, rng):
        model = nnx.merge(graphdef, params, rest)
        mask = batch["completion_mask"].astype(jnp.float32)
        logp = completion_logprobs(
            model, batch["input_ids"], batch["attention_mask"], mask,
            temperature=temperature, chunk_size=chunk_size, dropout_rng=rng,
        )  # fmt: skip
        old = batch["old_logp"] if "old_logp" in batch else jax.lax.stop_gradient(logp)
        ref = batch.get("ref_logp")
        loss, m = clipped_surrogate(
            logp, old, batch["advantages"], mask, eps_low, eps_high, norm,
            ref_logp=ref, kl_coef=kl_coef if ref is not None else 0.0,
            max_completion_length=max_completion_length,
        )  # fmt: skip
        n_micro = jnp.sum(mask)
        n_total = jnp.maximum(jnp.max(batch["num_tokens"]).astype(jnp.float32), 1.0)
        # Micro-batch token means -> shares of the whole batch's token mean (averaged over
        # `micro_batches` by make_train_step, they sum to Σ / n_total).
        share = n_micro * micro_batches / n_total
        if norm == "token":
            loss = loss * jnp.maximum(n_micro, 1.0) * micro_batches / n_total
        metrics = {k: v * share for k, v in m.items()}
        metrics["completion_tokens"] = n_micro * micro_batches
        return loss, metrics

    return loss_fn
