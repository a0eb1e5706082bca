"""Dense index over the KG's entities and relations, with the temporal window inside the search.

    index = EntityIndex.build(kg, HashingEncoder(1024))          # or an HF TextEncoder
    hits = index.search(["AAPL close"], k=5, windows=[TimeSpan.day(date(2022, 3, 15))])
    hits[0]   # [("AAPL 2022-03-15", 0.61), ...]: entity names / relation keys, best first

Each entity and relation is embedded as its `text()` (f"{name} {time} {description}") and stored
in a `jaxmethods.retrieval.DenseIndex` (cosine, exact, sharded over the mesh) with two integer
attribute columns, `t0` and `t1` (the item's first and last day as ordinals; an item without a
time gets the whole int32 range, so it passes every window). A window (lo, hi) is applied as
range filters before top-k: overlap = `t1 >= lo and t0 <= hi`.

`MilvusEntityIndex` is the same interface over Milvus (pymilvus; `milvus-lite` for a local file),
the paper's vector DB, with the window as a Milvus filter expression.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from jax.sharding import Mesh

from jaxmethods.methods.fintmm.graph_store import Window, window_ordinals
from jaxmethods.methods.fintmm.kg import Entity, Relation, TemporalKG
from jaxmethods.retrieval.dense import DenseIndex
from jaxmethods.retrieval.protocols import TextEncoder

NO_T0, NO_T1 = -(2**31), 2**31 - 1
KEYS_FILE = "keys.json"


def kg_items(kg: TemporalKG) -> list[Entity | Relation]:
    """Entities (in insertion order) then relations: the rows of an index over `kg`."""
    return [*kg.entities.values(), *kg.relations]


def item_key(item: Entity | Relation) -> str:
    return item.name if isinstance(item, Entity) else item.key


def _times(items: Sequence[Entity | Relation]) -> tuple[np.ndarray, np.ndarray]:
    t0 = np.array([NO_T0 if i.time is None else i.time.ordinals()[0] for i in items], np.int64)
    t1 = np.array([NO_T1 if i.time is None else i.time.ordinals()[1] for i in items], np.int64)
    return t0, t1


def _embed(encoder: TextEncoder, texts: Sequence[str], batch_size: int, *, query: bool):
    method = getattr(encoder, "embed_queries" if query else "embed_passages", None)
    fn = method if callable(method) else encoder.embed
    return np.asarray(fn(list(texts), batch_size), np.float32)


def window_bounds(windows: Sequence[Window] | None, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query (lo [Q], hi [Q]) day ordinals; a None window -> the whole int32 range."""
    if windows is None:
        windows = [None] * q
    if len(windows) != q:
        raise ValueError(f"search: got {len(windows)} windows for {q} queries")
    lo = np.full((q,), NO_T0, np.int64)
    hi = np.full((q,), NO_T1, np.int64)
    for i, w in enumerate(windows):
        o = window_ordinals(w)
        if o is not None:
            lo[i], hi[i] = o
    return lo, hi


class EntityIndex:
    """Cosine top-k over the KG items' embedded texts with a per-query temporal window.

    Attributes: keys (row -> entity name or relation key), items (row -> Entity | Relation),
    dense (the `DenseIndex`), encoder.
    """

    def __init__(
        self,
        keys: Sequence[str],
        items: Sequence[Entity | Relation],
        dense: DenseIndex,
        encoder: TextEncoder,
        *,
        batch_size: int = 64,
    ):
        self.keys, self.items = list(keys), list(items)
        self.dense, self.encoder, self.batch_size = dense, encoder, batch_size
        self.by_key = dict(zip(self.keys, self.items))

    @classmethod
    def build(
        cls,
        kg: TemporalKG,
        encoder: TextEncoder,
        *,
        mesh: Mesh | None = None,
        dtype: str = "float32",
        batch_size: int = 64,
        query_batch: int = 64,
        embeddings: np.ndarray | None = None,
    ) -> EntityIndex:
        """Embeds every entity and relation of `kg` (`item.text()`; `embeddings` [N, D] skips
        that, rows in `kg_items` order) and places them on the mesh."""
        items = kg_items(kg)
        if not items:
            raise ValueError("EntityIndex.build: the KG has no entities or relations")
        if embeddings is None:
            embeddings = _embed(encoder, [i.text() for i in items], batch_size, query=False)
        if embeddings.shape[0] != len(items):
            raise ValueError(
                f"EntityIndex.build: {embeddings.shape[0]} embeddings for {len(items)} items"
            )
        t0, t1 = _times(items)
        dense = DenseIndex(
            embeddings,
            metric="cosine",
            dtype=dtype,
            mesh=mesh,
            attributes={"t0": t0, "t1": t1},
            query_batch=query_batch,
        )
        return cls([item_key(i) for i in items], items, dense, encoder, batch_size=batch_size)

    def __len__(self) -> int:
        return len(self.keys)

    def search(
        self, queries: Sequence[str], k: int, windows: Sequence[Window] | None = None
    ) -> list[list[tuple[str, float]]]:
        """Top-k (key, cosine) per query, best first; with `windows` (one per query, None =
        no window) only items whose time overlaps the window can be returned."""
        if isinstance(queries, str):
            raise TypeError("EntityIndex.search: pass a sequence of query strings")
        if not queries:
            return []
        q = _embed(self.encoder, queries, self.batch_size, query=True)
        return self.search_vectors(q, k, windows)

    def search_vectors(
        self, q: np.ndarray, k: int, windows: Sequence[Window] | None = None
    ) -> list[list[tuple[str, float]]]:
        """As `search`, from query embeddings [Q, D]."""
        lo, hi = window_bounds(windows, q.shape[0])
        ranges = None
        if windows is not None and any(w is not None for w in windows):
            ranges = {"t1": (lo, None), "t0": (None, hi)}
        scores, idx = self.dense.search(q, min(k, len(self.keys)), ranges=ranges)
        return [
            [(self.keys[i], float(s)) for s, i in zip(srow, irow) if i >= 0]
            for srow, irow in zip(scores, idx)
        ]

    def save(self, folder: str | os.PathLike) -> None:
        """Writes the dense index (`DenseIndex.save`) and `keys.json` (row -> key) to `folder`."""
        self.dense.save(folder)
        with open(os.path.join(folder, KEYS_FILE), "w", encoding="utf-8") as f:
            json.dump(self.keys, f, ensure_ascii=False)

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike,
        kg: TemporalKG,
        encoder: TextEncoder,
        *,
        mesh: Mesh | None = None,
        batch_size: int = 64,
    ) -> EntityIndex:
        """Reads `save`'s folder; `kg` must be the KG it was built from (keys are checked)."""
        with open(os.path.join(folder, KEYS_FILE), encoding="utf-8") as f:
            keys = json.load(f)
        items = kg_items(kg)
        if keys != [item_key(i) for i in items]:
            raise ValueError(
                f"EntityIndex.load: {folder} was built from another KG ({len(keys)} rows, the "
                f"KG has {len(items)} items or they differ); rebuild the index"
            )
        dense = DenseIndex.load(folder, mesh=mesh)
        if dense.dim != encoder.dim:
            raise ValueError(
                f"EntityIndex.load: {folder} holds dim {dense.dim} vectors, the encoder makes "
                f"{encoder.dim}"
            )
        return cls(keys, items, dense, encoder, batch_size=batch_size)

    def get(self, key: str) -> Entity | Relation:
        """The item of an entity name / relation key (KeyError naming it)."""
        try:
            return self.by_key[key]
        except KeyError:
            raise KeyError(f"EntityIndex: no entity or relation {key!r}") from None


class MilvusEntityIndex:
    """`EntityIndex`'s interface over a Milvus collection (the paper's vector DB).

    Args:
      uri: a Milvus server ("http://localhost:19530") or a local file ("kg.db": milvus-lite).
      collection: collection name (dropped and recreated by `build`).
    Rows hold `id` (row number), the vector (COSINE metric, FLAT index: exact like
    `EntityIndex`), `t0`, `t1`; keys and items stay on the Python side.
    """

    def __init__(self, uri: str, encoder: TextEncoder, *, collection: str = "fintmm_kg"):
        from pymilvus import MilvusClient

        if not uri.startswith(("http://", "https://", "tcp://")):
            os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
        self.client, self.collection, self.encoder = MilvusClient(uri), collection, encoder
        self.keys: list[str] = []
        self.items: list[Entity | Relation] = []

    def build(
        self,
        kg: TemporalKG,
        *,
        batch_size: int = 64,
        embeddings: np.ndarray | None = None,
        insert_batch: int = 10_000,
    ) -> MilvusEntityIndex:
        from pymilvus import DataType

        items = kg_items(kg)
        if embeddings is None:
            embeddings = _embed(self.encoder, [i.text() for i in items], batch_size, query=False)
        emb = np.asarray(embeddings, np.float32)
        c = self.client
        if c.has_collection(self.collection):
            c.drop_collection(self.collection)
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(emb.shape[1]))
        schema.add_field("t0", DataType.INT64)
        schema.add_field("t1", DataType.INT64)
        index = c.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
        c.create_collection(self.collection, schema=schema, index_params=index)
        t0, t1 = _times(items)
        for start in range(0, len(items), insert_batch):
            stop = min(start + insert_batch, len(items))
            rows: list[dict[str, Any]] = [
                {"id": i, "vector": emb[i].tolist(), "t0": int(t0[i]), "t1": int(t1[i])}
                for i in range(start, stop)
            ]
            c.insert(self.collection, rows)
        c.load_collection(self.collection)
        self.keys, self.items = [item_key(i) for i in items], items
        return self

    def search(
        self, queries: Sequence[str], k: int, windows: Sequence[Window] | None = None
    ) -> list[list[tuple[str, float]]]:
        """As `EntityIndex.search` (one Milvus request per distinct window)."""
        if not queries:
            return []
        q = _embed(self.encoder, queries, 64, query=True)
        lo, hi = window_bounds(windows, len(queries))
        out: list[list[tuple[str, float]]] = [[] for _ in queries]
        groups: dict[tuple[int, int], list[int]] = {}
        for i in range(len(queries)):
            groups.setdefault((int(lo[i]), int(hi[i])), []).append(i)
        for (a, b), rows in groups.items():
            flt = "" if (a, b) == (NO_T0, NO_T1) else f"t1 >= {a} and t0 <= {b}"
            res = self.client.search(
                self.collection,
                data=[q[i].tolist() for i in rows],
                limit=min(k, len(self.keys)),
                filter=flt,
                output_fields=["id"],
                search_params={"metric_type": "COSINE"},
            )
            for i, hits in zip(rows, res):
                out[i] = [(self.keys[int(h["id"])], float(h["distance"])) for h in hits]
        return out
