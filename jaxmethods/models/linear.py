"""Dense (with an optional LoRA branch) and token-embedding modules.

Kernels are stored [in, out] (HF torch stores `weight` [out, in]; the loaders transpose). A Dense
carries LoRA factors `lora_a` [in, r] and `lora_b` [r, out] once `models.lora.apply_lora` added
them:  y = x W + b + (alpha / r) * dropout(x) A B   (Hu et al., 2021, eq. 3).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx


@functools.partial(jax.jit, static_argnames=("shape", "dtype"))
def normal_init(key: jax.Array, std: float, *, shape: tuple[int, ...], dtype) -> jax.Array:
    """std * N(0, 1) of `shape` in `dtype`, as one compiled program per shape (cheap model init)."""
    return (std * jax.random.normal(key, shape, jnp.float32)).astype(dtype)


class Dense(nnx.Module):
    """y = x @ kernel (+ bias) (+ LoRA), computed in `dtype`.

    Args:
      in_features, out_features: kernel shape [in, out].
      use_bias: add a [out] bias.
      dtype: compute dtype; param_dtype: storage dtype.
      init_std: std of the normal kernel init.
      rngs: nnx.Rngs for the init.
    Call: x [..., in] -> [..., out]; `dropout_key` enables LoRA dropout (None = deterministic).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool,
        dtype: jnp.dtype,
        param_dtype: jnp.dtype,
        init_std: float,
        rngs: nnx.Rngs,
    ):
        self.kernel = nnx.Param(
            normal_init(
                rngs.params(), init_std, shape=(in_features, out_features), dtype=param_dtype
            )
        )
        self.bias = nnx.data(
            nnx.Param(jnp.zeros((out_features,), param_dtype)) if use_bias else None
        )
        self.lora_a = nnx.data(None)
        self.lora_b = nnx.data(None)
        self.lora_scale = 0.0
        self.lora_dropout = 0.0
        self.lora_merged = False  # True after merge_lora: the delta lives in `kernel`
        self.dtype = jnp.dtype(dtype)

    def __call__(self, x: jnp.ndarray, *, dropout_key: jax.Array | None = None) -> jnp.ndarray:
        dt = self.dtype
        y = jnp.einsum("...i,io->...o", x.astype(dt), self.kernel[...].astype(dt))
        if self.bias is not None:
            y = y + self.bias[...].astype(dt)
        if self.lora_a is not None and not self.lora_merged:
            xl = x
            if self.lora_dropout > 0.0 and dropout_key is not None:
                keep = jax.random.bernoulli(dropout_key, 1.0 - self.lora_dropout, x.shape)
                xl = jnp.where(keep, x / (1.0 - self.lora_dropout), 0.0).astype(x.dtype)
            down = jnp.einsum("...i,ir->...r", xl.astype(dt), self.lora_a[...].astype(dt))
            up = jnp.einsum("...r,ro->...o", down, self.lora_b[...].astype(dt))
            y = y + (self.lora_scale * up).astype(dt)
        return y


class Embed(nnx.Module):
    """Token embedding table `embedding` [V, H]; `attend` is the tied LM head (h @ E^T)."""

    def __init__(
        self,
        vocab_size: int,
        features: int,
        *,
        dtype: jnp.dtype,
        param_dtype: jnp.dtype,
        init_std: float,
        rngs: nnx.Rngs,
    ):
        self.embedding = nnx.Param(
            normal_init(rngs.params(), init_std, shape=(vocab_size, features), dtype=param_dtype)
        )
        self.dtype = jnp.dtype(dtype)

    def __call__(self, ids: jnp.ndarray) -> jnp.ndarray:
        """ids [B, T] int -> [B, T, H] in the compute dtype."""
        return jnp.take(self.embedding[...], ids, axis=0).astype(self.dtype)


@jax.custom_jvp
def wide_matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., D] @ w [D, K] for K << D, with a gradient dw that XLA:CPU runs as a GEMM.

    The value is the plain product. Reverse mode would give dw = xᵀ dy, a dot with a [D, K]
    output that XLA:CPU runs as a loop walking x with a stride of D (~250 ms for x [1792, 4096],
    K = 2). The JVP here writes the tangent as (dwᵀ xᵀ)ᵀ with an optimization barrier on dwᵀ,
    so its transpose is dyᵀ x, a [K, R] x [R, D] GEMM with a [K, D] output (~10 ms), and only
    the small [K, D] result is transposed. Forward mode (`jax.jacfwd`) works as usual.
    """
    return x @ w


@functools.partial(wide_matmul.defjvp, symbolic_zeros=True)
def _wide_matmul_jvp(primals, tangents):
    x, w = primals
    dx, dw = tangents
    y = x @ w
    dy = jnp.zeros_like(y)
    if not isinstance(dw, jax.custom_derivatives.SymbolicZero):
        dw_t = jax.lax.optimization_barrier(dw.T)  # [K, D]
        dy = dy + jnp.moveaxis(jnp.tensordot(dw_t, x, axes=((1,), (x.ndim - 1,))), 0, -1)
    if not isinstance(dx, jax.custom_derivatives.SymbolicZero):
        dy = dy + dx @ w
    return y, dy
