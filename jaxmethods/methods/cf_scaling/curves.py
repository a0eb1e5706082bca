"""Curve classifier: "double-peak", "logarithmic" or "other" for NDCG@20 against log2(d).

The rule (y_0..y_n the metric at increasing sizes, tol = rel_tol · max(y)):
1. double-peak: there are sizes i < j < k with y_i - y_j >= tol and y_k - y_j >= tol, i.e. the
   curve rises to a peak, dips by at least tol, and rises again by at least tol (whatever it does
   afterwards). This is the paper's rise / fall / second rise.
2. logarithmic: otherwise, if the decline after the maximum is small, y_max - y_n <=
   max(tol, drop_frac · (y_max - y_0)): the curve rises (or is flat) and keeps nearly all of its
   gain, the monotone, saturating shape.
3. other: everything else (a single peak followed by a large decline, a falling curve, ...).

The default tol (0.3 % of the peak) separates the paper's Douban / ML-100k double peaks (second
rises of 0.002 to 0.005 NDCG at peaks near 0.5 to 0.65) from flat noise; average several seeds
before classifying noisy curves, or raise rel_tol.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SHAPES = ("double-peak", "logarithmic", "other")


def find_double_peak(y: Sequence[float], tol: float) -> tuple[int, int, int] | None:
    """The first (peak, dip, second peak) indices with both drops >= tol, or None."""
    y = np.asarray(y, np.float64)
    n = len(y)
    for j in range(1, n - 1):
        left = int(np.argmax(y[:j]))
        right = j + 1 + int(np.argmax(y[j + 1 :]))
        if y[left] - y[j] >= tol and y[right] - y[j] >= tol:
            return left, j, right
    return None


def classify_curve(
    dims: Sequence[int],
    values: Sequence[float],
    *,
    rel_tol: float = 0.003,
    drop_frac: float = 0.25,
) -> str:
    """Classifies one curve (values at the given dims; the order of dims does not matter)."""
    dims, values = np.asarray(dims), np.asarray(values, np.float64)
    if dims.shape != values.shape or dims.ndim != 1:
        raise ValueError(f"dims {dims.shape} and values {values.shape} must be matching 1-D")
    if len(values) < 2 or not np.all(np.isfinite(values)):
        return "other"
    y = values[np.argsort(dims)]
    tol = rel_tol * float(np.max(np.abs(y)))
    if find_double_peak(y, tol) is not None:
        return "double-peak"
    peak = int(np.argmax(y))
    decline, gain = y[peak] - y[-1], y[peak] - y[0]
    if decline <= max(tol, drop_frac * gain):
        return "logarithmic"
    return "other"
