"""Masked reductions shared by every loss. Pure jax."""

from __future__ import annotations

import jax.numpy as jnp


def masked_sum(x: jnp.ndarray, mask: jnp.ndarray | None = None, axis=None) -> jnp.ndarray:
    """Sum of `x` over `axis`, counting only entries where `mask` is true (all when None)."""
    if mask is None:
        return jnp.sum(x, axis=axis)
    return jnp.sum(jnp.where(mask, x, 0.0), axis=axis)


def masked_mean(x: jnp.ndarray, mask: jnp.ndarray | None = None, axis=None) -> jnp.ndarray:
    """Mean of `x` over the valid entries of `mask`; 0 where nothing is valid (never NaN)."""
    if mask is None:
        return jnp.mean(x, axis=axis)
    mask = jnp.broadcast_to(mask, x.shape)
    count = jnp.sum(mask, axis=axis)
    return masked_sum(x, mask, axis) / jnp.maximum(count, 1)
