"""Sampling warpers on logits [N, V], applied in Hugging Face order: temperature, top-k, top-p."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def apply_temperature(logits: jax.Array, temperature: jax.Array | float) -> jax.Array:
    """logits / T (T > 0)."""
    return logits / jnp.asarray(temperature, logits.dtype)


def apply_top_k(logits: jax.Array, top_k: int) -> jax.Array:
    """Keeps the `top_k` largest logits per row (ties with the k-th value kept), -inf elsewhere."""
    if top_k <= 0 or top_k >= logits.shape[-1]:
        return logits
    kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
    return jnp.where(logits < kth, -jnp.inf, logits)


def apply_top_p(logits: jax.Array, top_p: jax.Array | float) -> jax.Array:
    """Nucleus filtering: keeps the smallest set of most likely tokens whose mass reaches `top_p`.

    A token is kept when the probability mass of the tokens ranked strictly above it is < top_p,
    so the most likely token is always kept (HF `TopPLogitsWarper` with min_tokens_to_keep=1).
    `top_p >= 1` keeps everything.
    """
    sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
    sorted_probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_above = jnp.cumsum(sorted_probs, axis=-1) - sorted_probs
    keep_sorted = mass_above < top_p
    # The smallest kept logit is the threshold; ties with it are kept as well.
    num_kept = jnp.sum(keep_sorted, axis=-1, keepdims=True)
    threshold = jnp.take_along_axis(sorted_logits, num_kept - 1, axis=-1)
    return jnp.where(logits < threshold, -jnp.inf, logits)


def warp_logits(
    logits: jax.Array,
    *,
    temperature: jax.Array | float,
    top_k: int,
    top_p: jax.Array | float | None,
) -> jax.Array:
    """Temperature, then top-k, then top-p (the order of HF's warper list).

    `top_k` is static (0 disables it); `top_p=None` skips the nucleus sort altogether.
    """
    logits = apply_temperature(logits, temperature)
    logits = apply_top_k(logits, top_k)
    if top_p is not None:
        logits = apply_top_p(logits, top_p)
    return logits
