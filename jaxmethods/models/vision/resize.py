"""Resampling matrices for resizing position tables and images (NumPy, static shapes).

`torch_bicubic_matrix(n_in, n_out)` is torch's `F.interpolate(mode="bicubic",
align_corners=False)` along one axis, given an output size (scale = n_in / n_out): output i samples
source x = (i + 0.5) * scale - 0.5 with the cubic convolution kernel of Keys (1981), A = -0.75,
over the 4 taps floor(x) - 1 .. floor(x) + 2, indices clamped to the border (no antialiasing).
HF resizes the ViT position grid this way (`interpolate_pos_encoding`).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np


def _cubic_weights(t: np.ndarray, a: float) -> np.ndarray:
    """Weights [..., 4] of the taps at offsets -1, 0, 1, 2 for fractional positions t in [0, 1)."""

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


@functools.lru_cache(maxsize=64)
def torch_bicubic_matrix(n_in: int, n_out: int, a: float = -0.75) -> np.ndarray:
    """[n_out, n_in] float64 matrix M with out = M @ in (torch bicubic, align_corners=False)."""
    if n_in <= 0 or n_out <= 0:
        raise ValueError(f"torch_bicubic_matrix: sizes must be positive, got {n_in} -> {n_out}")
    scale = n_in / n_out
    src = (np.arange(n_out) + 0.5) * scale - 0.5
    base = np.floor(src)
    weights = _cubic_weights(src - base, a)
    m = np.zeros((n_out, n_in))
    for k in range(4):
        idx = np.clip(base.astype(np.int64) - 1 + k, 0, n_in - 1)
        np.add.at(m, (np.arange(n_out), idx), weights[:, k])
    return m


def resize_grid_bicubic(grid: jnp.ndarray, out_h: int, out_w: int) -> jnp.ndarray:
    """[h, w, D] -> [out_h, out_w, D] with torch's bicubic (align_corners=False), in float32."""
    h, w, _ = grid.shape
    mh = jnp.asarray(torch_bicubic_matrix(h, out_h), jnp.float32)
    mw = jnp.asarray(torch_bicubic_matrix(w, out_w), jnp.float32)
    g = grid.astype(jnp.float32)
    return jnp.einsum("ih,hwd,jw->ijd", mh, g, mw)
