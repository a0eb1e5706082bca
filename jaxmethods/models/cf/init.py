"""Initialisers matching the PyTorch ones RecBole uses, drawn directly at a padded width.

Zero-padding is how models of different embedding sizes share one vmapped program: a model of
true size d lives in the leading d (or 2d, ...) coordinates of arrays of a padded width D, and
every other coordinate is zero. For every CF model here those coordinates stay exactly zero in
training (they receive zero gradients, and Adam maps a zero gradient to a zero update), so the
padded model computes the same function as an unpadded one with the same leading values.

Each initialiser takes the true size (a Python int or a traced scalar, so inits can be vmapped
over replicas of different sizes) and the static padded shape; the scale uses the true size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Size = int | jax.Array


def leading_mask(size: Size, padded: int) -> jax.Array:
    """[padded] float32: 1 on the first `size` coordinates, 0 after."""
    return (jnp.arange(padded) < size).astype(jnp.float32)


def xavier_normal(key: jax.Array, rows: int, cols: Size, padded_cols: int) -> jax.Array:
    """torch.nn.init.xavier_normal_ on a [rows, cols] weight, std = sqrt(2 / (rows + cols)),
    returned as [rows, padded_cols] with zero columns past `cols`."""
    std = jnp.sqrt(2.0 / (rows + jnp.asarray(cols, jnp.float32)))
    draw = jax.random.normal(key, (rows, padded_cols), jnp.float32)
    return std * draw * leading_mask(cols, padded_cols)


def xavier_uniform(key: jax.Array, rows: int, cols: Size, padded_cols: int) -> jax.Array:
    """torch.nn.init.xavier_uniform_: U(-a, a), a = sqrt(6 / (rows + cols)), padded as above."""
    bound = jnp.sqrt(6.0 / (rows + jnp.asarray(cols, jnp.float32)))
    draw = jax.random.uniform(key, (rows, padded_cols), jnp.float32, -1.0, 1.0)
    return bound * draw * leading_mask(cols, padded_cols)


def normal_table(key: jax.Array, rows: int, cols: Size, padded_cols: int, std: float) -> jax.Array:
    """N(0, std²) entries in the first `cols` columns (RecBole NeuMF embeddings: std 0.01)."""
    draw = jax.random.normal(key, (rows, padded_cols), jnp.float32)
    return std * draw * leading_mask(cols, padded_cols)


def torch_linear(
    key: jax.Array,
    fan_in: Size,
    fan_out: Size,
    padded_in: int,
    padded_out: int,
    *,
    bound_fan_in: Size | None = None,
) -> tuple[jax.Array, jax.Array]:
    """torch.nn.Linear's default init, U(±1/sqrt(fan_in)) for kernel and bias, as a
    [padded_in, padded_out] kernel (zero outside [fan_in, fan_out]) and a [padded_out] bias.

    `bound_fan_in` overrides the fan-in of the bound (for one half of a concatenated input).
    """
    fan = jnp.asarray(fan_in if bound_fan_in is None else bound_fan_in, jnp.float32)
    bound = 1.0 / jnp.sqrt(fan)
    kw, kb = jax.random.split(key)
    out_mask = leading_mask(fan_out, padded_out)
    kernel = jax.random.uniform(kw, (padded_in, padded_out), jnp.float32, -1.0, 1.0)
    kernel = bound * kernel * leading_mask(fan_in, padded_in)[:, None] * out_mask[None, :]
    bias = bound * jax.random.uniform(kb, (padded_out,), jnp.float32, -1.0, 1.0) * out_mask
    return kernel, bias


def zero_pad(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Places `x` in the leading corner of zeros of `shape` (each dim of x <= that of shape)."""
    if len(shape) != x.ndim or any(s < t for s, t in zip(shape, x.shape)):
        raise ValueError(f"cannot zero-pad shape {x.shape} to {shape}")
    return jnp.pad(x, [(0, s - t) for s, t in zip(shape, x.shape)])
