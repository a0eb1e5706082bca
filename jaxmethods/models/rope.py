"""Rotary position embeddings (RoPE) in the Hugging Face "rotate half" layout.

theta_i = base^(-2i / d) for i < d/2 (optionally rescaled, e.g. Llama 3.1's smooth
low/high-frequency interpolation), and for position p:
  rope(x)_p = x * cos(p theta) + rotate_half(x) * sin(p theta),  rotate_half([a, b]) = [-b, a].
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpy as np


def inverse_frequencies(
    head_dim: int, theta: float, rope_scaling: dict[str, Any] | None = None
) -> np.ndarray:
    """The d/2 inverse frequencies, float32, with HF's rope types "default", "linear", "llama3".

    Args:
      head_dim: rotary dimension d (even).
      theta: RoPE base.
      rope_scaling: None or HF `rope_parameters` / `rope_scaling` dict.
    Returns:
      [head_dim // 2] float32 NumPy array (a static constant of the model).
    """
    # Same arithmetic order as HF: int64 arange -> float32, base ** (i / d), 1 / that.
    exponent = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
    inv_freq = (1.0 / (np.float32(theta) ** exponent)).astype(np.float32)
    kind = (
        "default"
        if rope_scaling is None
        else rope_scaling.get("rope_type", rope_scaling.get("type"))
    )
    if kind in (None, "default"):
        return inv_freq
    if kind == "linear":
        return (inv_freq / np.float32(rope_scaling["factor"])).astype(np.float32)
    if kind == "llama3":
        return _llama3_scaling(inv_freq, rope_scaling)
    raise ValueError(f"rope_scaling: rope_type {kind!r} is not supported (default, linear, llama3)")


def _llama3_scaling(inv_freq: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Llama 3.1 frequency rescaling: long wavelengths / factor, short kept, smooth in between."""
    missing = [
        k
        for k in (
            "factor",
            "low_freq_factor",
            "high_freq_factor",
            "original_max_position_embeddings",
        )
        if k not in params
    ]
    if missing:
        raise ValueError(f"rope_scaling of type 'llama3' is missing field(s) {missing}")
    factor = np.float32(params["factor"])
    low, high = np.float32(params["low_freq_factor"]), np.float32(params["high_freq_factor"])
    old_len = np.float32(params["original_max_position_embeddings"])
    low_freq_wavelen, high_freq_wavelen = old_len / low, old_len / high
    wavelen = np.float32(2 * math.pi) / inv_freq
    scaled = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return np.where(is_medium, smoothed, scaled).astype(np.float32)


def rope_cos_sin(positions: jnp.ndarray, inv_freq: np.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """cos/sin tables for integer positions.

    Args:
      positions: [B, T] int.
      inv_freq: [D/2] float32.
    Returns:
      (cos, sin), each [B, T, D] float32 (the D/2 angles repeated twice, HF layout).
    """
    angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)[None, None, :]
    angles = jnp.concatenate([angles, angles], axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


def apply_rope(x: jnp.ndarray, cos: jnp.ndarray, sin: jnp.ndarray) -> jnp.ndarray:
    """Rotates x: [B, T, N, D] by cos/sin: [B, T, D]; math in float32, result in x.dtype."""
    xf = x.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-xf[..., half:], xf[..., :half]], axis=-1)
    out = xf * cos[:, :, None, :] + rotated * sin[:, :, None, :]
    return out.astype(x.dtype)
