"""Cached top-k files: per-question passages in the DPR / FiD retriever-output JSONL style.

One JSON object per line:
    {"id": "q0", "question": "...", "answers": ["..."],
     "ctxs": [{"id": "123", "title": "...", "text": "...", "score": 81.2, ...}, ...]}
best passage first (DPR writes scores as strings; both are read). Extra question fields and extra
ctx fields (e.g. `has_answer`) are kept. `CachedRetriever` serves `search(questions, k)` from
such a file, so pipelines run without a live index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jaxmethods.data.jsonl import jsonl_objects
from jaxmethods.retrieval.docstore import DocStore, Passage
from jaxmethods.retrieval.protocols import Retriever

CTX_KEYS = ("id", "title", "text", "score")


@dataclass(frozen=True)
class CachedQuestion:
    """One question's cached retrieval: passages and scores best first."""

    question: str
    passages: list[Passage]
    scores: list[float]
    answers: list[str] = field(default_factory=list)
    id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        ctxs = [
            {"id": p.id, "title": p.title, "text": p.text, "score": float(s), **p.meta}
            for p, s in zip(self.passages, self.scores)
        ]
        head = {} if self.id is None else {"id": self.id}
        return {
            **head,
            "question": self.question,
            "answers": list(self.answers),
            "ctxs": ctxs,
            **self.meta,
        }


def _ctx(where: str, j: int, ctx: Any) -> tuple[Passage, float]:
    if not isinstance(ctx, dict) or "id" not in ctx or "text" not in ctx:
        raise ValueError(f"{where}: ctxs[{j}] must be an object with 'id' and 'text'")
    try:
        score = float(ctx.get("score", "nan"))
    except (TypeError, ValueError):
        raise ValueError(f"{where}: ctxs[{j}].score {ctx['score']!r} is not a number") from None
    meta = {k: v for k, v in ctx.items() if k not in CTX_KEYS}
    return Passage(
        id=str(ctx["id"]), text=str(ctx["text"]), title=str(ctx.get("title") or ""), meta=meta
    ), score


def read_cached_topk(path: str | os.PathLike) -> Iterator[CachedQuestion]:
    """Streams the questions of a cached top-k JSONL; a malformed row names file and line."""
    for where, row in jsonl_objects(path):
        if not isinstance(row.get("question"), str):
            raise ValueError(f"{where}: missing string field 'question'")
        ctxs = row.get("ctxs")
        if not isinstance(ctxs, list):
            raise ValueError(f"{where}: missing list field 'ctxs'")
        answers = row.get("answers", [])
        if not isinstance(answers, list):
            raise ValueError(f"{where}: field 'answers' must be a list")
        pairs = [_ctx(where, j, c) for j, c in enumerate(ctxs)]
        meta = {k: v for k, v in row.items() if k not in ("id", "question", "answers", "ctxs")}
        yield CachedQuestion(
            question=row["question"],
            passages=[p for p, _ in pairs],
            scores=[s for _, s in pairs],
            answers=[str(a) for a in answers],
            id=None if row.get("id") is None else str(row["id"]),
            meta=meta,
        )


def write_cached_topk(path: str | os.PathLike, rows: Iterable[CachedQuestion]) -> None:
    """Writes cached questions as JSONL (atomically: a temporary file then a rename)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def cache_retrieval(
    path: str | os.PathLike,
    retriever: Retriever,
    questions: Sequence[str],
    k: int,
    *,
    answers: Sequence[Sequence[str]] | None = None,
    ids: Sequence[str] | None = None,
    **filters: Any,
) -> list[CachedQuestion]:
    """Runs `retriever.search(questions, k)` and writes the results as a cached top-k file
    (empty slots dropped). Returns the rows written."""
    scores, indices = retriever.search(list(questions), k, **filters)
    rows = []
    for q, question in enumerate(questions):
        keep = indices[q] >= 0
        rows.append(
            CachedQuestion(
                question=question,
                passages=[retriever.docs[int(i)] for i in indices[q][keep]],
                scores=[float(s) for s in scores[q][keep]],
                answers=list(answers[q]) if answers is not None else [],
                id=None if ids is None else str(ids[q]),
            )
        )
    write_cached_topk(path, rows)
    return rows


class CachedRetriever:
    """A retriever that serves `search(questions, k)` from cached top-k rows.

    Questions are matched on their text (`key="question"`) or on their id (`key="id"`); an
    unknown one raises KeyError naming it and the file. The doc store holds every distinct
    cached passage (by id, first occurrence); slots beyond a question's cached passages are
    -1 / -inf.
    """

    def __init__(
        self, source: str | os.PathLike | Iterable[CachedQuestion], *, key: str = "question"
    ):
        if key not in ("question", "id"):
            raise ValueError(f"CachedRetriever: key must be 'question' or 'id', got {key!r}")
        is_path = isinstance(source, (str, os.PathLike))
        self.source = str(source) if is_path else "<cached rows>"
        rows = read_cached_topk(source) if is_path else source
        self.key = key
        self._rows: dict[str, tuple[CachedQuestion, np.ndarray]] = {}
        passages: list[Passage] = []
        row_of: dict[str, int] = {}
        for row in rows:
            name = row.question if key == "question" else row.id
            if name is None:
                raise ValueError(f"{self.source}: question {row.question!r} has no id")
            for p in row.passages:
                if p.id not in row_of:
                    row_of[p.id] = len(passages)
                    passages.append(p)
            self._rows[name] = (row, np.array([row_of[p.id] for p in row.passages], np.int64))
        self.docs = DocStore(passages)

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, question: str) -> CachedQuestion:
        """The cached row of `question` (its text or id, as `key` says)."""
        try:
            return self._rows[question][0]
        except KeyError:
            raise KeyError(
                f"{self.source}: no cached retrieval for {self.key} {question!r} "
                f"({len(self._rows)} cached)"
            ) from None

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores [Q, k] float32, indices [Q, k] int64 into `docs`), cached order."""
        scores = np.full((len(queries), k), -np.inf, np.float32)
        indices = np.full((len(queries), k), -1, np.int64)
        for q, question in enumerate(queries):
            row = self.lookup(question)
            rows = self._rows[question][1][:k]
            scores[q, : len(rows)] = row.scores[: len(rows)]
            indices[q, : len(rows)] = rows
        return scores, indices
