"""Functional inverted dropout shared by the modules that take an explicit key."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def dropout(x: jnp.ndarray, rate: float, key: jax.Array | None) -> jnp.ndarray:
    """Zeroes each element of `x` with probability `rate` and scales the rest by 1 / (1 - rate)
    (torch's `nn.Dropout` in training). No key or a zero rate: `x` unchanged (evaluation).
    Same shape and dtype as `x`."""
    if key is None or rate <= 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)
