"""RMSNorm: y = x / sqrt(mean(x^2) + eps) * w   (Gemma: * (1 + w), w initialised at 0)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class RMSNorm(nnx.Module):
    """Root-mean-square layer norm over the last axis, statistics in float32.

    Args:
      dim: feature size H.
      eps: added to the mean square.
      plus_one: Gemma's parameterisation, scale = 1 + w.
      param_dtype: storage dtype of `scale`.
    Call: x [..., H] -> [..., H] in x.dtype.
    """

    def __init__(self, dim: int, *, eps: float, plus_one: bool = False, param_dtype=jnp.float32):
        init = jnp.zeros if plus_one else jnp.ones
        self.scale = nnx.Param(init((dim,), dtype=param_dtype))
        self.eps = eps
        self.plus_one = plus_one

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        xf = x.astype(jnp.float32)
        normed = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        if self.plus_one:
            # Gemma multiplies in float32 and casts once at the end.
            return (normed * (1.0 + self.scale[...].astype(jnp.float32))).astype(x.dtype)
        # Llama casts the normalised activations back first, then scales in the input dtype.
        return self.scale[...].astype(x.dtype) * normed.astype(x.dtype)
