"""`HybridRetriever`: several retrievers with the common `search(queries, k)`, fused.

    hybrid = HybridRetriever([bm25, dense], method="rrf")             # or method="score"
    scores, indices = hybrid.search(queries, k=10)                    # rows of hybrid.docs

Each retriever is asked for `depth` candidates (default k). Results are fused on the documents'
rows when every retriever shares one doc store, otherwise on passage ids, mapped into the first
retriever's store (a passage it lacks is a KeyError naming the id). Filter keyword arguments are
passed to every retriever.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxmethods.retrieval.fusion import rrf_fuse, score_fuse
from jaxmethods.retrieval.protocols import Retriever

METHODS = ("rrf", "score")


class HybridRetriever:
    """Fuses `retrievers` by reciprocal rank ("rrf", `rrf_k`) or normalised score ("score",
    `norm` "minmax" | "zscore"), with optional per-retriever `weights`."""

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        *,
        method: str = "rrf",
        weights: Sequence[float] | None = None,
        rrf_k: float = 60.0,
        norm: str = "minmax",
        depth: int | None = None,
    ):
        if method not in METHODS:
            raise ValueError(f"HybridRetriever: method must be one of {METHODS}, got {method!r}")
        if not retrievers:
            raise ValueError("HybridRetriever: need at least one retriever")
        if weights is not None and len(weights) != len(retrievers):
            raise ValueError(
                f"HybridRetriever: {len(weights)} weights for {len(retrievers)} retrievers"
            )
        self.retrievers = list(retrievers)
        self.docs = self.retrievers[0].docs
        self.method, self.weights, self.rrf_k, self.norm, self.depth = (
            method,
            weights,
            rrf_k,
            norm,
            depth,
        )

    def _to_rows(self, r: Retriever, indices: np.ndarray) -> np.ndarray:
        if r.docs is self.docs:
            return indices
        out = np.full(indices.shape, -1, np.int64)
        for pos, i in np.ndenumerate(indices):
            if i >= 0:
                out[pos] = self.docs.index_of(r.docs[int(i)].id)
        return out

    def search(
        self, queries: Sequence[str], k: int, **filters: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """(fused scores [Q, k] float32, indices [Q, k] int64 into `self.docs`)."""
        depth = max(k, self.depth or k)
        results = []
        for r in self.retrievers:
            scores, indices = r.search(queries, depth, **filters)
            results.append((scores, self._to_rows(r, np.asarray(indices))))
        if self.method == "rrf":
            scores, indices = rrf_fuse(results, k, rrf_k=self.rrf_k, weights=self.weights)
        else:
            scores, indices = score_fuse(results, k, weights=self.weights, norm=self.norm)
        return scores.astype(np.float32), indices
