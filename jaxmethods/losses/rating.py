"""The expected-rating head of Reason4Rec (arXiv 2502.02061; the authors' `logits_weighted_predict`).

At the position after the prefix "Predicted Rating: " the model's next-token logits over the
tokens "1".."5" are normalised by a softmax and averaged:

    p_k = softmax_k(z[id_1], ..., z[id_5]),   r = clip(sum_k p_k * k, 1, 5)

Pure jax: a function of the next-token logits and the five token ids.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

RATING_VALUES = (1.0, 2.0, 3.0, 4.0, 5.0)


def rating_probs(next_logits: jnp.ndarray, rating_token_ids: jnp.ndarray) -> jnp.ndarray:
    """Softmax over the logits of the K rating tokens.

    Args:
      next_logits: [..., V] next-token logits (any float dtype; computed in float32).
      rating_token_ids: [K] int token ids of "1".."K" in rating order.
    Returns:
      [..., K] float32 probabilities summing to 1 over the last axis.
    """
    z = jnp.take(next_logits.astype(jnp.float32), jnp.asarray(rating_token_ids), axis=-1)
    return jax.nn.softmax(z, axis=-1)


def expected_rating(
    next_logits: jnp.ndarray,
    rating_token_ids: jnp.ndarray,
    *,
    values: tuple[float, ...] = RATING_VALUES,
    clip: tuple[float, float] | None = (1.0, 5.0),
) -> jnp.ndarray:
    """Σ_k p_k · v_k over the rating tokens, clipped to `clip` (the authors clip to [1, 5]).

    Args:
      next_logits: [..., V] next-token logits at the position after "Predicted Rating: ".
      rating_token_ids: [K] int token ids of the K rating tokens ("1".."5").
      values: the K ratings the tokens stand for.
      clip: (low, high) or None. Differentiable with respect to the logits (the clip only
        matters for `values` outside it).
    Returns:
      [...] float32 expected ratings.
    """
    p = rating_probs(next_logits, rating_token_ids)
    if p.shape[-1] != len(values):
        raise ValueError(
            f"expected_rating: {p.shape[-1]} rating token ids but {len(values)} values"
        )
    r = jnp.sum(p * jnp.asarray(values, jnp.float32), axis=-1)
    return r if clip is None else jnp.clip(r, clip[0], clip[1])
