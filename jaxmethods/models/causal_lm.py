"""The causal-LM token cross-entropy and sequence log-probs of a decoder on HF-layout labels
(-100 = ignored).

The shift happens here (`next_token_labels`), so every method passes HF labels unshifted. With
`chunk_size > 0` the LM head runs chunk by chunk (`chunked_token_logprobs`) and fp32 [B, T, V]
logits never exist at once.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxmethods.losses import (
    masked_mean,
    next_token_labels,
    token_cross_entropy,
    token_cross_entropy_from_hidden,
)
from jaxmethods.models.decoder import DecoderLM


def causal_lm_token_ce(
    model: DecoderLM,
    input_ids: jnp.ndarray,
    attention_mask: jnp.ndarray,
    labels: jnp.ndarray,
    *,
    chunk_size: int = 0,
    dropout_rng=None,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per-token CE of predicting `labels[:, t + 1]` at position t.

    Args:
      input_ids, attention_mask: [B, T].
      labels: [B, T] HF layout (not shifted), -100 where no loss is taken.
    Returns:
      (ce [B, T] float32, 0 where ignored; mask [B, T] bool of the scored positions).
    """
    shifted = next_token_labels(labels)
    if chunk_size > 0:
        h = model.hidden_states(input_ids, attention_mask, dropout_rng=dropout_rng)
        return token_cross_entropy_from_hidden(
            h, model.lm_head_kernel(), shifted, chunk_size=chunk_size
        )
    logits = model(input_ids, attention_mask, dropout_rng=dropout_rng)
    return token_cross_entropy(logits, shifted)


def causal_lm_loss(model: DecoderLM, batch: dict, *, chunk_size: int = 0, dropout_rng=None):
    """HF's causal-LM loss: the mean CE over every label token of the batch; `(loss, tokens)`."""
    ce, mask = causal_lm_token_ce(
        model, batch["input_ids"], batch["attention_mask"], batch["labels"],
        chunk_size=chunk_size, dropout_rng=dropout_rng,
    )  # fmt: skip
    return masked_mean(ce, mask), jnp.sum(mask)


def causal_lm_sequence_logprobs(
    model: DecoderLM,
    input_ids: jnp.ndarray,
    attention_mask: jnp.ndarray,
    labels: jnp.ndarray,
    *,
    chunk_size: int = 0,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """log π(y | x) summed over the completion tokens, and their count.

    The inputs of DPO's `dpo_loss` (policy or reference, chosen and rejected concatenated along
    the batch in one call); `chunk_size > 0` takes the chunked LM-head path.

    Args:
      input_ids, attention_mask: [B, T] prompt + completion.
      labels: [B, T] HF layout (not shifted): the completion ids, -100 on prompt and padding.
    Returns:
      (logp [B] float32, lengths [B] float32 = completion tokens scored).
    """
    ce, mask = causal_lm_token_ce(model, input_ids, attention_mask, labels, chunk_size=chunk_size)
    return -jnp.sum(ce, axis=-1), jnp.sum(mask, axis=-1).astype(jnp.float32)
