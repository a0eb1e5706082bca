"""Graph stores for the temporal KG, one `expand` contract (below): `InMemoryGraphStore` (dicts,
here), `KuzuGraphStore` (embedded Cypher persisted in a file, `graph_kuzu`), `Neo4jGraphStore`
(the paper's server DB, same Cypher, through the official driver, `graph_neo4j`). The shared
Cypher lives in `graph_cypher`, the window helpers in `graph_window`; this module re-exports
them all, so every store name imports from here.

    store = KuzuGraphStore("workdir/kg.kuzu")    # or InMemoryGraphStore() / Neo4jGraphStore(...)
    store.write(kg)
    items = store.expand(["Apple Inc"], window=TimeSpan.month(2022, 3), hops=1, limit=50)

`expand(names, *, window=None, hops=1, limit=100) -> list[Entity | Relation]`, the same list
from every store:
1. the seed entities among `names` (in the given order, unknown names ignored) whose time
   overlaps `window`;
2. for each hop: every relation touching the frontier (the entities reached in the previous hop,
   the kept seeds first) whose time overlaps `window` and that was not returned yet, in the
   order of `kg.relations`, each followed by its other end when that is new and overlaps
   `window` (that end joins the next frontier);
3. cut at `limit` items.
An item without a time (a company) overlaps every window. `window` is a `TimeSpan`, a pair of
dates or a pair of day ordinals (inclusive), or None (no filter).
"""

from __future__ import annotations

from collections.abc import Iterable

from jaxmethods.methods.fintmm.graph_cypher import (
    EXPAND_MANY_QUERY,
    EXPAND_QUERY,
    REBUILD_HINT,
    SCHEMA_VERSION,
    SEED_QUERY,
    SEEDS_MANY_QUERY,
    entity_row,
    relation_row,
)
from jaxmethods.methods.fintmm.graph_kuzu import KuzuGraphStore
from jaxmethods.methods.fintmm.graph_neo4j import Neo4jGraphStore
from jaxmethods.methods.fintmm.graph_window import (
    Window,
    _check,
    in_window,
    span_from,
    time_ordinals,
    window_ordinals,
)
from jaxmethods.methods.fintmm.kg_types import Entity, Relation, TemporalKG
from jaxmethods.methods.fintmm.records import TimeSpan

__all__ = [
    "EXPAND_MANY_QUERY",
    "EXPAND_QUERY",
    "REBUILD_HINT",
    "SCHEMA_VERSION",
    "SEEDS_MANY_QUERY",
    "SEED_QUERY",
    "Entity",
    "InMemoryGraphStore",
    "KuzuGraphStore",
    "Neo4jGraphStore",
    "Relation",
    "TemporalKG",
    "TimeSpan",
    "Window",
    "entity_row",
    "in_window",
    "relation_row",
    "span_from",
    "time_ordinals",
    "window_ordinals",
]


class InMemoryGraphStore:
    """The KG in dicts with an adjacency index (relation positions per entity name)."""

    def __init__(self, kg: TemporalKG | None = None):
        self.entities: dict[str, Entity] = {}
        self.relations: list[Relation] = []
        self._adj: dict[str, list[int]] = {}
        if kg is not None:
            self.write(kg)

    def write(self, kg: TemporalKG) -> None:
        """Replaces the stored graph with `kg`."""
        self.entities = dict(kg.entities)
        self.relations = list(kg.relations)
        adj: dict[str, list[int]] = {}
        for i, r in enumerate(self.relations):
            adj.setdefault(r.src, []).append(i)
            if r.dst != r.src:
                adj.setdefault(r.dst, []).append(i)
        self._adj = adj

    def __len__(self) -> int:
        return len(self.entities)

    def expand(
        self, names: Iterable[str], *, window: Window = None, hops: int = 1, limit: int = 100
    ) -> list[Entity | Relation]:
        """See the module docstring."""
        _check(hops, limit)
        win = window_ordinals(window)
        out: list[Entity | Relation] = []
        seen: set[str] = set()
        frontier: list[str] = []
        for name in names:
            e = self.entities.get(name)
            if e is None or name in seen:
                continue
            seen.add(name)
            if in_window(e.time, win):
                out.append(e)
                frontier.append(name)
        done: set[int] = set()
        for _ in range(hops):
            if len(out) >= limit or not frontier:
                break
            idx = sorted({i for n in frontier for i in self._adj.get(n, ())} - done)
            frontier = []
            for i in idx:
                r = self.relations[i]
                if not in_window(r.time, win):
                    continue
                done.add(i)
                out.append(r)
                for end in (r.src, r.dst):
                    if end in seen:
                        continue
                    seen.add(end)
                    e = self.entities.get(end)
                    if e is not None and in_window(e.time, win):
                        out.append(e)
                        frontier.append(end)
                if len(out) >= limit:
                    break
        return out[:limit]
