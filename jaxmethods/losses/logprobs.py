"""Token and sequence log-probabilities from logits. Pure jax.

Convention: `labels[b, t]` is the token predicted by `logits[b, t]` (callers shift once, outside).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmethods.losses.common import masked_sum


def token_logprobs(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """log p(labels | logits) per position, computed in float32.

    Args:
      logits: [..., V] any float dtype.
      labels: [...] int token ids.
    Returns:
      [...] float32, log softmax(logits)[labels].
    """
    logits = logits.astype(jnp.float32)
    lse = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return picked - lse


def sequence_logprobs(
    logits: jnp.ndarray, labels: jnp.ndarray, mask: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Sum of token log-probs over valid positions: [B, T, V], [B, T], [B, T] -> [B]."""
    return masked_sum(token_logprobs(logits, labels), mask, axis=-1)
