"""`DenseIndex`: exact inner-product / cosine top-k over embeddings held on device.

    index = DenseIndex(emb, metric="cosine", dtype="bfloat16", mesh=mesh,
                       attributes={"date": days}, docs=store)
    scores, indices = index.search(q, k=10, ranges={"date": (lo, hi)})   # [Q, k] each
    passages = index.passages(indices)                                    # [Q][k] Passage | None

The corpus [N, D] is padded to a multiple of the shard count and split over the mesh (all of its
axes by default); padded rows can never be returned. Queries run in fixed-size batches (padded),
so each (k, filter kind) compiles once. Filters are masks applied inside the search before
top-k: `mask` ([N] or per query [Q, N] bool) and `ranges` (inclusive `(lo, hi)` per named
attribute column, scalars or [Q] arrays, `None` for an open end). Slots no passing document
fills come back as score -inf and index -1. See docs/retrieval.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from safetensors.numpy import save_file

from jaxmethods.hf.safetensors_io import open_safetensors
from jaxmethods.retrieval.dense_search import make_search_fn
from jaxmethods.retrieval.docstore import DocStore
from jaxmethods.train.mesh import make_mesh

METRICS = ("ip", "cosine")
DTYPES = ("float32", "bfloat16")
INDEX_FILE = "index.safetensors"
DOCS_FILE = "docs.jsonl"
FORMAT = "jaxmethods.retrieval.DenseIndex/1"

Bound = float | int | np.ndarray | None


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _column_dtype(name: str, values: np.ndarray) -> np.dtype:
    if np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
        if values.size and (values.min() < -(2**31) or values.max() >= 2**31):
            raise ValueError(f"attribute {name!r}: integer values outside int32")
        return np.dtype(np.int32)
    if np.issubdtype(values.dtype, np.floating):
        return np.dtype(np.float32)
    raise ValueError(f"attribute {name!r}: expected a numeric column, got dtype {values.dtype}")


class DenseIndex:
    """Exact top-k search over N embeddings of dimension D, sharded over a mesh.

    Args:
      embeddings: [N, D] array (NumPy, memmap ok; rows are read shard by shard).
      metric: "ip" (inner product) or "cosine" (rows and queries L2-normalised).
      dtype: storage dtype on device, "float32" or "bfloat16"; scores accumulate in fp32.
      mesh: device mesh (default: all devices on one axis); corpus rows split over
        `corpus_axes` (default: every mesh axis).
      attributes: {name: [N] numeric} columns for range filters (stored int32 / float32).
      docs: optional `DocStore` of the N passages (row i = passage i).
      query_batch: queries per compiled call (the last batch is padded).
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        *,
        metric: str = "ip",
        dtype: str = "float32",
        mesh: Mesh | None = None,
        corpus_axes: tuple[str, ...] | None = None,
        attributes: Mapping[str, np.ndarray] | None = None,
        docs: DocStore | None = None,
        query_batch: int = 64,
    ):
        if embeddings.ndim != 2:
            raise ValueError(f"DenseIndex: embeddings must be [N, D], got shape {embeddings.shape}")
        n, d = embeddings.shape
        self._setup(n, d, metric, dtype, mesh, corpus_axes, docs, query_batch)
        host = embeddings

        def read(start: int, stop: int) -> np.ndarray:
            rows = np.asarray(host[start:stop], dtype=np.float32)
            return _normalize_rows(rows) if metric == "cosine" else rows

        self._emb = self._place(read, d, jnp.dtype(dtype))
        self._attrs: dict[str, jax.Array] = {}
        for name, values in (attributes or {}).items():
            self.add_attribute(name, values)

    def _setup(self, n, d, metric, dtype, mesh, corpus_axes, docs, query_batch) -> None:
        if metric not in METRICS:
            raise ValueError(f"DenseIndex: metric must be one of {METRICS}, got {metric!r}")
        if str(dtype) not in DTYPES:
            raise ValueError(f"DenseIndex: dtype must be one of {DTYPES}, got {dtype!r}")
        if n < 1 or query_batch < 1:
            raise ValueError(
                f"DenseIndex: need N >= 1 and query_batch >= 1, got {n}, {query_batch}"
            )
        if docs is not None and len(docs) != n:
            raise ValueError(f"DenseIndex: doc store has {len(docs)} passages but {n} embeddings")
        self.mesh = make_mesh({"corpus": -1}) if mesh is None else mesh
        self.corpus_axes = tuple(self.mesh.axis_names) if corpus_axes is None else corpus_axes
        self.shards = int(np.prod([self.mesh.shape[a] for a in self.corpus_axes]))
        self.num_docs, self.dim, self.metric, self.dtype = n, d, metric, str(dtype)
        self.padded = -(-n // self.shards) * self.shards
        self.docs, self.query_batch = docs, query_batch
        self._rows = NamedSharding(self.mesh, P(self.corpus_axes))
        self._fns: dict[tuple, Any] = {}

    def _place(self, read: Callable[[int, int], np.ndarray], width: int | None, dtype) -> jax.Array:
        """Builds the padded, sharded device array shard by shard from `read(start, stop)`."""
        shape = (self.padded,) if width is None else (self.padded, width)
        spec = P(self.corpus_axes) if width is None else P(self.corpus_axes, None)
        np_dtype = np.dtype(dtype)

        def shard(index: tuple[slice, ...]) -> np.ndarray:
            start, stop, _ = index[0].indices(self.padded)
            out = np.zeros((stop - start, *shape[1:]), np_dtype)
            end = min(stop, self.num_docs)
            if end > start:
                out[: end - start] = read(start, end).astype(np_dtype)
            return out

        return jax.make_array_from_callback(shape, NamedSharding(self.mesh, spec), shard)

    def add_attribute(self, name: str, values: np.ndarray) -> None:
        """Stores a numeric column [N] on device for range filters (`ranges={name: (lo, hi)}`)."""
        values = np.asarray(values)
        if values.shape != (self.num_docs,):
            raise ValueError(
                f"DenseIndex: attribute {name!r} has shape {values.shape}, expected "
                f"({self.num_docs},)"
            )
        dtype = _column_dtype(name, values)
        self._attrs[name] = self._place(lambda a, b: values[a:b], None, dtype)

    @property
    def attribute_names(self) -> list[str]:
        return sorted(self._attrs)

    @property
    def embeddings(self) -> jax.Array:
        """[N_pad, D] on device (rows >= N are zero padding)."""
        return self._emb

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        mask: np.ndarray | None = None,
        ranges: Mapping[str, tuple[Bound, Bound]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows per query: (scores [Q, k] float32, indices [Q, k] int64), best first.

        `mask`: [N] or [Q, N] bool, True = may be returned. `ranges`: {attribute: (lo, hi)},
        inclusive, each bound a scalar, a [Q] array or None (open). Empty slots: -inf, -1.
        """
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"DenseIndex.search: queries have shape {queries.shape}, the index holds "
                f"[{self.num_docs}, {self.dim}] embeddings (expected [Q, {self.dim}])"
            )
        if k < 1:
            raise ValueError(f"DenseIndex.search: k must be >= 1, got {k}")
        q = queries.shape[0]
        mask_kind, mask = self._check_mask(mask, q)
        names, lows, highs = self._check_ranges(ranges or {}, q)
        key = (k, mask_kind, names)
        if key not in self._fns:
            self._fns[key] = make_search_fn(
                self.mesh,
                self.corpus_axes,
                num_docs=self.num_docs,
                k=k,
                normalize_queries=self.metric == "cosine",
                mask_kind=mask_kind,
                range_names=names,
            )
        fn = self._fns[key]
        b = self.query_batch
        mask_dev = self._put_mask(mask) if mask_kind == "docs" else None
        attrs = {n: self._attrs[n] for n in names}
        outs = []
        for start in range(0, q, b):
            stop = min(start + b, q)
            qb = _pad_rows(queries[start:stop], b)
            lo = {n: _pad_rows(lows[n][start:stop], b) for n in names}
            hi = {n: _pad_rows(highs[n][start:stop], b) for n in names}
            mb = mask_dev
            if mask_kind == "query":
                mb = self._put_mask(_pad_rows(mask[start:stop], b))
            outs.append(fn(qb, self._emb, attrs, mb, lo, hi))
        if not outs:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        outs = jax.device_get(outs)  # one host transfer after every batch was dispatched
        scores = np.concatenate([s for s, _ in outs])[:q].astype(np.float32)
        indices = np.concatenate([i for _, i in outs])[:q].astype(np.int64)
        return scores, indices

    def _check_mask(self, mask, q: int):
        if mask is None:
            return None, None
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise ValueError(f"DenseIndex.search: mask must be bool, got dtype {mask.dtype}")
        if mask.shape == (self.num_docs,):
            return "docs", mask
        if mask.shape == (q, self.num_docs):
            return "query", mask
        raise ValueError(
            f"DenseIndex.search: mask has shape {mask.shape}, expected ({self.num_docs},) or "
            f"({q}, {self.num_docs})"
        )

    def _put_mask(self, mask: np.ndarray) -> jax.Array:
        pad = [(0, 0)] * (mask.ndim - 1) + [(0, self.padded - self.num_docs)]
        spec = P(self.corpus_axes) if mask.ndim == 1 else P(None, self.corpus_axes)
        return jax.device_put(np.pad(mask, pad), NamedSharding(self.mesh, spec))

    def _check_ranges(self, ranges: Mapping[str, tuple[Bound, Bound]], q: int):
        names = tuple(sorted(ranges))
        lows, highs = {}, {}
        for name in names:
            if name not in self._attrs:
                raise KeyError(
                    f"DenseIndex.search: no attribute {name!r} (the index has "
                    f"{self.attribute_names})"
                )
            bounds = ranges[name]
            if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
                raise ValueError(f"DenseIndex.search: ranges[{name!r}] must be (lo, hi)")
            dtype = np.dtype(self._attrs[name].dtype)
            lows[name] = _bound(name, bounds[0], q, dtype, low=True)
            highs[name] = _bound(name, bounds[1], q, dtype, low=False)
        return names, lows, highs

    def passages(self, indices: np.ndarray) -> list:
        """Index array (e.g. [Q, k]) -> nested lists of `Passage | None` (needs `docs`)."""
        if self.docs is None:
            raise ValueError("DenseIndex.passages: this index was built without a doc store")
        return self.docs.get(indices)

    def save(self, folder: str | os.PathLike) -> None:
        """Writes `index.safetensors` (embeddings, `attr/<name>` columns, metadata) and, with a
        doc store, `docs.jsonl`. The unpadded embeddings are gathered to host memory."""
        os.makedirs(folder, exist_ok=True)
        np_dtype = np.dtype(jnp.dtype(self.dtype))
        tensors = {"embeddings": np.asarray(jax.device_get(self._emb))[: self.num_docs]}
        tensors["embeddings"] = np.ascontiguousarray(tensors["embeddings"].astype(np_dtype))
        for name, col in self._attrs.items():
            tensors[f"attr/{name}"] = np.asarray(jax.device_get(col))[: self.num_docs].copy()
        meta = {
            "format": FORMAT,
            "metric": self.metric,
            "dtype": self.dtype,
            "num_docs": str(self.num_docs),
            "dim": str(self.dim),
            "query_batch": str(self.query_batch),
        }
        save_file(tensors, os.path.join(folder, INDEX_FILE), metadata=meta)
        if self.docs is not None:
            self.docs.save_jsonl(os.path.join(folder, DOCS_FILE))

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike,
        *,
        mesh: Mesh | None = None,
        corpus_axes: tuple[str, ...] | None = None,
        dtype: str | None = None,
        query_batch: int | None = None,
    ) -> DenseIndex:
        """Reads a saved index; each device shard is read straight from the memory-mapped file.

        `dtype` overrides the stored dtype (e.g. load an fp32 index as bfloat16).
        """
        path = os.path.join(folder, INDEX_FILE)
        with open_safetensors(path) as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(
                    f"{path}: not a DenseIndex file (metadata format "
                    f"{meta.get('format')!r}, expected {FORMAT!r})"
                )
            emb = f.get_slice("embeddings")
            n, d = (int(x) for x in emb.get_shape())
            docs_path = os.path.join(folder, DOCS_FILE)
            docs = DocStore.load_jsonl(docs_path) if os.path.isfile(docs_path) else None
            self = cls.__new__(cls)
            batch = int(meta.get("query_batch", 64)) if query_batch is None else query_batch
            self._setup(
                n, d, meta["metric"], dtype or meta["dtype"], mesh, corpus_axes, docs, batch
            )
            self._emb = self._place(
                lambda a, b: np.asarray(emb[a:b], np.float32), d, jnp.dtype(self.dtype)
            )
            self._attrs = {}
            for key in sorted(f.keys()):
                if key.startswith("attr/"):
                    col = f.get_tensor(key)
                    self._attrs[key[5:]] = self._place(lambda a, b, c=col: c[a:b], None, col.dtype)
        return self


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    return np.pad(x, [(0, rows - x.shape[0])] + [(0, 0)] * (x.ndim - 1))


def _bound(name: str, value: Bound, q: int, dtype: np.dtype, *, low: bool) -> np.ndarray:
    if value is None:
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            value = info.min if low else info.max
        else:
            value = -np.inf if low else np.inf
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full((q,), arr)
    if arr.shape != (q,):
        side = "lo" if low else "hi"
        raise ValueError(
            f"DenseIndex.search: ranges[{name!r}] {side} has shape {arr.shape}, expected a "
            f"scalar or ({q},)"
        )
    return arr.astype(dtype)
