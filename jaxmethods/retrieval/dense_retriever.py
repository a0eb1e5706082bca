"""Dense retrieval over a text encoder: `DenseRetriever` and `build_dense_index`.

    index = build_dense_index(store, encoder, metric="cosine", dtype="bfloat16", mesh=mesh)
    retriever = DenseRetriever(encoder, index)
    scores, indices = retriever.search(["who wrote hamlet"], k=10)

The encoder is any object with `dim` and `embed(texts, batch_size) -> [N, dim]` (the
`TextEncoder` protocol; `jaxmethods.models.text_encoder.TextEncoder` loads HF encoders). When it
also has `embed_queries` / `embed_passages` (query / passage prefixes), queries go through the
first and passages through the second. With two-tower models (DPR's question and context
encoders) build the index with the passage encoder and search with the question encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxmethods.retrieval.dense import DenseIndex
from jaxmethods.retrieval.docstore import DocStore, Passage, passage_text
from jaxmethods.retrieval.protocols import TextEncoder


def _embed(encoder: TextEncoder, texts: Sequence[str], batch_size: int, role: str) -> np.ndarray:
    """`encoder.embed_queries` / `embed_passages` (query / passage prefixes, e.g. E5's) when the
    encoder has them, else `encoder.embed`; the shape is checked against `encoder.dim`."""
    name = "embed_queries" if role == "query" else "embed_passages"
    if not callable(getattr(encoder, name, None)):
        name = "embed"
    out = np.asarray(getattr(encoder, name)(list(texts), batch_size))
    if out.shape != (len(texts), encoder.dim):
        raise ValueError(
            f"{type(encoder).__name__}.{name} returned shape {out.shape} for {len(texts)} "
            f"texts, expected ({len(texts)}, {encoder.dim}) (its dim)"
        )
    return out


class DenseRetriever:
    """`search(texts, k, **filters)` = `index.search(encoder.embed_queries(texts), k, **filters)`
    (`embed` when the encoder has no `embed_queries`).

    Raises ValueError at construction when the index's dimension is not the encoder's.
    """

    def __init__(self, encoder: TextEncoder, index: DenseIndex, *, batch_size: int = 64):
        if index.dim != encoder.dim:
            raise ValueError(
                f"DenseRetriever: the index holds embeddings of shape [{index.num_docs}, "
                f"{index.dim}] but the encoder {type(encoder).__name__} produces [*, "
                f"{encoder.dim}]; rebuild the index with this encoder"
            )
        self.encoder, self.index, self.batch_size = encoder, index, batch_size

    @property
    def docs(self) -> DocStore | None:
        return self.index.docs

    def search(
        self, queries: Sequence[str], k: int, **filters: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores [Q, k] float32, indices [Q, k] int64); filters as `DenseIndex.search`."""
        if isinstance(queries, str):
            raise TypeError("DenseRetriever.search: pass a list of query strings, not one string")
        q = _embed(self.encoder, queries, self.batch_size, "query")
        return self.index.search(q, k, **filters)


def build_dense_index(
    docs: DocStore,
    encoder: TextEncoder,
    *,
    batch_size: int = 256,
    text_fn: Callable[[Passage], str] = passage_text,
    metric: str = "ip",
    dtype: str = "float32",
    mesh: Mesh | None = None,
    attributes: Mapping[str, np.ndarray] | None = None,
    attribute_fields: Sequence[str] = (),
    query_batch: int = 64,
) -> DenseIndex:
    """Embeds every passage of `docs` (batches of `batch_size`) into a `DenseIndex`.

    The host buffer has the index dtype ([N, D] bf16 or fp32). `attribute_fields` names
    numeric `Passage.meta` fields to store as range-filter columns (besides `attributes`).
    """
    n = len(docs)
    host_dtype = np.dtype(jnp.dtype(dtype))
    emb = np.empty((n, encoder.dim), host_dtype)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        texts = [text_fn(docs[i]) for i in range(start, stop)]
        chunk = _embed(encoder, texts, batch_size, "passage")
        if metric == "cosine":
            chunk = chunk / np.maximum(np.linalg.norm(chunk, axis=1, keepdims=True), 1e-12)
        emb[start:stop] = chunk.astype(host_dtype)
    cols = dict(attributes or {})
    for name in attribute_fields:
        cols[name] = docs.column(name)
    return DenseIndex(
        emb,
        metric=metric,
        dtype=dtype,
        mesh=mesh,
        attributes=cols,
        docs=docs,
        query_batch=query_batch,
    )
