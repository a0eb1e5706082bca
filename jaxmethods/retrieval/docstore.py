"""Passages, queries and the doc store every retriever's row indices point into.

A `DocStore` holds N passages in row order (row i of a dense index or BM25 index is passage i).
It saves as BEIR-style JSON Lines (`{"_id", "title", "text", ...extra fields}`), so the saved
store is itself a valid BEIR `corpus.jsonl`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Passage:
    """One retrievable document: `id` (string), `text`, `title` and free-form `meta` fields."""

    id: str
    text: str
    title: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """BEIR corpus row: `{"_id", "title", "text", **meta}`."""
        return {"_id": self.id, "title": self.title, "text": self.text, **self.meta}


def passage_text(p: Passage) -> str:
    """The text retrievers index by default: "title\ntext" (just the text when untitled)."""
    return f"{p.title}\n{p.text}" if p.title else p.text


@dataclass(frozen=True)
class Query:
    """One query: `id`, `text` and free-form `meta` (e.g. answers)."""

    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


class DocStore:
    """N passages in row order, with id -> row lookup.

    `store[i]` is passage i; `store.get(indices)` maps an index array of any shape (e.g. a
    search result `[Q, k]`, -1 for an empty slot) to nested lists of `Passage | None`.
    """

    def __init__(self, passages: Iterable[Passage]):
        self._passages: list[Passage] = list(passages)
        self._row_of: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self._passages)

    def __getitem__(self, i: int) -> Passage:
        return self._passages[i]

    def __iter__(self):
        return iter(self._passages)

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self._passages]

    def texts(self) -> list[str]:
        return [p.text for p in self._passages]

    def index_of(self, doc_id: str) -> int:
        """The row of passage `doc_id`; KeyError naming it when absent."""
        if self._row_of is None:
            row_of: dict[str, int] = {}
            for i, p in enumerate(self._passages):
                if p.id in row_of:
                    raise ValueError(
                        f"doc store: passage id {p.id!r} appears at rows {row_of[p.id]} and {i}"
                    )
                row_of[p.id] = i
            self._row_of = row_of
        try:
            return self._row_of[doc_id]
        except KeyError:
            raise KeyError(f"doc store has no passage with id {doc_id!r}") from None

    def get(self, indices: np.ndarray | Sequence) -> list:
        """`indices` of any shape (-1 = empty slot) -> the same nesting of `Passage | None`."""
        arr = np.asarray(indices)
        if arr.ndim == 0:
            i = int(arr)
            return None if i < 0 else self._passages[i]  # type: ignore[return-value]
        return [self.get(row) for row in arr]

    def column(self, name: str, dtype: Any = None) -> np.ndarray:
        """A `meta` field of every passage as an array [N] (e.g. a date column for an index);
        KeyError naming the first passage that lacks it."""
        values = []
        for i, p in enumerate(self._passages):
            if name not in p.meta:
                raise KeyError(f"doc store row {i} (id {p.id!r}) has no field {name!r}")
            values.append(p.meta[name])
        return np.asarray(values, dtype=dtype)

    def save_jsonl(self, path: str | os.PathLike) -> None:
        """Writes the store as BEIR `corpus.jsonl` rows, in row order."""
        with open(path, "w", encoding="utf-8") as f:
            for p in self._passages:
                f.write(json.dumps(p.to_json(), ensure_ascii=False) + "\n")

    @classmethod
    def load_jsonl(cls, path: str | os.PathLike) -> DocStore:
        """Reads a store written by `save_jsonl` (any BEIR `corpus.jsonl`)."""
        from jaxmethods.retrieval.formats import read_beir_corpus

        return cls(read_beir_corpus(path))
