"""Rank fusion of several retrievers' results: reciprocal-rank fusion and weighted score fusion.

Pure NumPy functions over result arrays: each input is `(scores [Q, k_r], indices [Q, k_r])`
with -1 marking an empty slot (ignored); the keys (`indices`) must refer to the same documents
across inputs. Both return `(scores [Q, k] float64, indices [Q, k] int64)` sorted by fused
score, ties broken by the smaller index; empty slots -inf / -1.

- RRF (Cormack et al., 2009): fused(d) = sum_r w_r / (rrf_k + rank_r(d)), rank from 1; a
  document a retriever did not return adds nothing.
- Score fusion: fused(d) = sum_r w_r * norm_r(s_r(d)), normalised per query over what retriever
  r returned: "minmax" (s - min) / (max - min) (all 1 when max == min), a missing document 0;
  "zscore" (s - mean) / std (all 0 when std == 0), a missing document the lowest z of r.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Result = tuple[np.ndarray, np.ndarray]
NORMS = ("minmax", "zscore")


def _check(results: Sequence[Result], weights: Sequence[float] | None) -> list[float]:
    if not results:
        raise ValueError("fusion: need at least one result")
    qs = {np.asarray(i).shape[0] for _, i in results}
    if len(qs) != 1:
        raise ValueError(f"fusion: results disagree on the number of queries: {sorted(qs)}")
    for r, (s, i) in enumerate(results):
        if np.shape(s) != np.shape(i) or np.ndim(i) != 2:
            raise ValueError(
                f"fusion: result {r} has scores {np.shape(s)} and indices {np.shape(i)}, "
                "expected two [Q, k] arrays"
            )
    weights = [1.0] * len(results) if weights is None else [float(w) for w in weights]
    if len(weights) != len(results):
        raise ValueError(f"fusion: {len(weights)} weights for {len(results)} results")
    return weights


def _top(fused: list[dict[int, float]], k: int) -> Result:
    scores = np.full((len(fused), k), -np.inf)
    indices = np.full((len(fused), k), -1, np.int64)
    for q, table in enumerate(fused):
        ranked = sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        for j, (doc, score) in enumerate(ranked):
            scores[q, j], indices[q, j] = score, doc
    return scores, indices


def rrf_fuse(
    results: Sequence[Result],
    k: int,
    *,
    rrf_k: float = 60.0,
    weights: Sequence[float] | None = None,
) -> Result:
    """Reciprocal-rank fusion of `results` (only their order is used) -> top `k`."""
    weights = _check(results, weights)
    fused: list[dict[int, float]] = [{} for _ in range(np.shape(results[0][1])[0])]
    for w, (_, indices) in zip(weights, results):
        for q, row in enumerate(np.asarray(indices)):
            rank = 0
            for doc in row:
                if doc < 0:
                    continue
                rank += 1
                fused[q][int(doc)] = fused[q].get(int(doc), 0.0) + w / (rrf_k + rank)
    return _top(fused, k)


def _normalise(s: np.ndarray, norm: str) -> tuple[np.ndarray, float]:
    """Normalised scores of one retriever for one query, and the value of a missing doc."""
    if norm == "minmax":
        lo, hi = s.min(), s.max()
        return (np.ones_like(s) if hi == lo else (s - lo) / (hi - lo)), 0.0
    std = s.std()
    z = np.zeros_like(s) if std == 0 else (s - s.mean()) / std
    return z, float(z.min())


def score_fuse(
    results: Sequence[Result],
    k: int,
    *,
    weights: Sequence[float] | None = None,
    norm: str = "minmax",
) -> Result:
    """Weighted fusion of per-query normalised scores (see module docstring) -> top `k`."""
    if norm not in NORMS:
        raise ValueError(f"score_fuse: norm must be one of {NORMS}, got {norm!r}")
    weights = _check(results, weights)
    fused: list[dict[int, float]] = []
    for q in range(np.shape(results[0][1])[0]):
        per: list[tuple[float, dict[int, float], float]] = []
        docs: set[int] = set()
        for w, (scores, indices) in zip(weights, results):
            idx, sc = np.asarray(indices[q]), np.asarray(scores[q], np.float64)
            ok = (idx >= 0) & np.isfinite(sc)
            if not ok.any():
                per.append((w, {}, 0.0))
                continue
            normed, missing = _normalise(sc[ok], norm)
            table = dict(zip(idx[ok].tolist(), normed.tolist()))
            per.append((w, table, missing))
            docs.update(table)
        fused.append({d: sum(w * t.get(d, m) for w, t, m in per) for d in docs})
    return _top(fused, k)
