"""The two interfaces retrieval code is written against: `Retriever` and `TextEncoder`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from jaxmethods.retrieval.docstore import DocStore


@runtime_checkable
class Retriever(Protocol):
    """A doc store and `search(queries, k) -> (scores [Q, k] float32, indices [Q, k] int64)`:
    rows of `docs`, best first, -inf / -1 for empty slots."""

    docs: DocStore

    def search(
        self, queries: Sequence[str], k: int, **filters: Any
    ) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class TextEncoder(Protocol):
    """Texts -> embeddings: `embed(texts, batch_size) -> [len(texts), dim]` float array.

    Optional: `embed_queries` / `embed_passages` with the same signature (e.g. adding E5-style
    prefixes); the dense retriever prefers them for queries and passages.
    """

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray: ...
