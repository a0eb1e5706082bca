"""BM25 through the maintained `bm25s` package, with the retrievers' `search(queries, k)`.

    bm25 = BM25Retriever(store, stopwords="en")          # index the passages of a DocStore
    scores, indices = bm25.search(["who wrote hamlet"], k=10)
    bm25.save("runs/bm25"); bm25 = BM25Retriever.load("runs/bm25")

Tokenisation is `bm25s.tokenize` (lower-casing, its word regex, optional stopwords and a
PyStemmer stemmer by language name); scoring and top-k are bm25s's (`method` "lucene", "robertson",
"atire", "bm25l", "bm25+"). Results are exactly bm25s's, including documents with score 0 when
fewer than k documents match; slots beyond the corpus size come back as -1 / -inf.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import bm25s
import numpy as np

from jaxmethods.retrieval.docstore import DocStore, Passage, passage_text

CONFIG_FILE = "retriever.json"
DOCS_FILE = "docs.jsonl"
MODEL_DIR = "bm25s"


def _make_stemmer(language: str | None):
    if language is None:
        return None
    try:
        import Stemmer  # PyStemmer, the stemmer bm25s documents
    except ImportError:
        raise ImportError(
            f"BM25Retriever(stemmer={language!r}) needs PyStemmer: pip install PyStemmer"
        ) from None
    return Stemmer.Stemmer(language).stemWords


class BM25Retriever:
    """BM25 over a `DocStore` (row i = passage i).

    Args:
      docs: the passages.
      k1, b, delta, method: bm25s scoring parameters.
      stopwords: bm25s stopwords: a language ("en", ...), a list of words, or None.
      stemmer: a PyStemmer language name ("english") or None.
      text_fn: what is indexed for a passage (default "title\\ntext").
    """

    def __init__(
        self,
        docs: DocStore,
        *,
        k1: float = 1.5,
        b: float = 0.75,
        delta: float = 0.5,
        method: str = "lucene",
        stopwords: str | list[str] | None = "en",
        stemmer: str | None = None,
        text_fn: Callable[[Passage], str] = passage_text,
        _model: bm25s.BM25 | None = None,
    ):
        self.docs = docs
        self.config = {
            "k1": k1,
            "b": b,
            "delta": delta,
            "method": method,
            "stopwords": stopwords,
            "stemmer": stemmer,
        }
        self._stemmer = _make_stemmer(stemmer)
        if _model is None:
            if len(docs) == 0:
                raise ValueError("BM25Retriever: the doc store is empty")
            _model = bm25s.BM25(k1=k1, b=b, delta=delta, method=method)
            tokens = self._tokenize([text_fn(p) for p in docs])
            _model.index(tokens, show_progress=False)
        self.model = _model

    def _tokenize(self, texts: Sequence[str]):
        return bm25s.tokenize(
            list(texts),
            stopwords=self.config["stopwords"],
            stemmer=self._stemmer,
            show_progress=False,
        )

    def search(
        self, queries: Sequence[str], k: int, *, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores [Q, k] float32, indices [Q, k] int64), best first.

        `mask`: [N] bool, True = may be returned (bm25s's `weight_mask`; masked documents that
        bm25s still returns with score 0 come back as -1 / -inf).
        """
        if isinstance(queries, str):
            raise TypeError("BM25Retriever.search: pass a list of query strings, not one string")
        if k < 1:
            raise ValueError(f"BM25Retriever.search: k must be >= 1, got {k}")
        n, q = len(self.docs), len(queries)
        weight = None
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (n,) or mask.dtype != np.bool_:
                raise ValueError(
                    f"BM25Retriever.search: mask must be bool of shape ({n},), got "
                    f"{mask.dtype} {mask.shape}"
                )
            weight = mask.astype(np.float32)
        kk = min(k, n)
        scores = np.full((q, k), -np.inf, np.float32)
        indices = np.full((q, k), -1, np.int64)
        if q:
            res = self.model.retrieve(
                self._tokenize(queries), k=kk, show_progress=False, weight_mask=weight
            )
            scores[:, :kk], indices[:, :kk] = res.scores, res.documents
        if mask is not None:
            drop = (indices >= 0) & ~mask[np.maximum(indices, 0)]
            scores[drop], indices[drop] = -np.inf, -1
            order = np.argsort(indices < 0, axis=1, kind="stable")  # empty slots last
            scores = np.take_along_axis(scores, order, 1)
            indices = np.take_along_axis(indices, order, 1)
        return scores, indices

    def save(self, folder: str | os.PathLike) -> None:
        """Writes bm25s's index (`bm25s/`), the doc store (`docs.jsonl`) and the tokeniser
        settings (`retriever.json`)."""
        os.makedirs(folder, exist_ok=True)
        self.model.save(os.path.join(folder, MODEL_DIR), show_progress=False)
        self.docs.save_jsonl(os.path.join(folder, DOCS_FILE))
        with open(os.path.join(folder, CONFIG_FILE), "w") as f:
            json.dump(self.config, f, indent=2)

    @classmethod
    def load(cls, folder: str | os.PathLike, *, mmap: bool = False) -> BM25Retriever:
        """Reads a folder written by `save` (`mmap=True` memory-maps bm25s's arrays)."""
        path = os.path.join(folder, CONFIG_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{folder}: no {CONFIG_FILE}; not a saved BM25Retriever")
        with open(path) as f:
            config = json.load(f)
        model = bm25s.BM25.load(os.path.join(folder, MODEL_DIR), mmap=mmap, show_progress=False)
        docs = DocStore.load_jsonl(os.path.join(folder, DOCS_FILE))
        if model.scores["num_docs"] != len(docs):
            raise ValueError(
                f"{folder}: bm25s index has {model.scores['num_docs']} documents but "
                f"{DOCS_FILE} has {len(docs)}"
            )
        return cls(docs, _model=model, **config)
