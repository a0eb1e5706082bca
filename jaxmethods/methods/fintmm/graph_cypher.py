"""The Cypher half shared by `KuzuGraphStore` and `Neo4jGraphStore`: the schema version, the
seed / expansion queries (`SEED_QUERY`, `EXPAND_QUERY` and their `... IN $names` forms), the
row <-> `Entity` / `Relation` conversions, and `_CypherStore.expand` (the `graph_store` contract
over any backend that implements `_query(text, params) -> rows`).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any

from jaxmethods.methods.fintmm.graph_window import (
    _OPEN,
    Window,
    _check,
    in_window,
    span_from,
    time_ordinals,
    window_ordinals,
)
from jaxmethods.methods.fintmm.kg_types import Entity, Relation

SCHEMA_VERSION = "fintmm-kg/1"
REBUILD_HINT = "delete it and rerun the fintmm run (it rebuilds the store from the corpus)"

_REL_FIELDS = (
    "RETURN r.idx AS idx, r.src AS src, r.dst AS dst, r.kind AS kind, r.t0 AS t0, r.t1 AS t1, "
    "r.description AS description, r.source_ids AS source_ids, "
    "b.name AS b_name, b.kind AS b_kind, b.t0 AS b_t0, b.t1 AS b_t1, "
    "b.description AS b_description, b.source_ids AS b_source_ids"
)
_ENTITY_FIELDS = (
    "RETURN e.name AS name, e.kind AS kind, e.t0 AS t0, e.t1 AS t1, "
    "e.description AS description, e.source_ids AS source_ids"
)
_WINDOW = "(r.t0 IS NULL OR (r.t1 >= $lo AND r.t0 <= $hi))"
EXPAND_QUERY = f"MATCH (a:Entity {{name: $name}})-[r:Rel]-(b:Entity) WHERE {_WINDOW} {_REL_FIELDS}"
EXPAND_MANY_QUERY = (
    f"MATCH (a:Entity)-[r:Rel]-(b:Entity) WHERE a.name IN $names AND {_WINDOW} {_REL_FIELDS}"
)
SEED_QUERY = f"MATCH (e:Entity {{name: $name}}) {_ENTITY_FIELDS}"
SEEDS_MANY_QUERY = f"MATCH (e:Entity) WHERE e.name IN $names {_ENTITY_FIELDS}"
# A `{name: $name}` pattern is a primary-key / unique-index lookup: O(degree) per query. Kuzu
# 0.11 answers `a.name IN $names` with one scan of the node table (no filter on `b` and no
# LIMIT: either makes it scan the whole rel table), which beats many small queries for large
# frontiers; `per_node_max` picks between the two.


def entity_row(e: Entity) -> dict[str, Any]:
    t0, t1 = time_ordinals(e.time)
    return {
        "name": e.name,
        "kind": e.kind,
        "t0": t0,
        "t1": t1,
        "description": e.description,
        "source_ids": list(e.source_ids),
    }


def relation_row(i: int, r: Relation) -> dict[str, Any]:
    t0, t1 = time_ordinals(r.time)
    return {
        "idx": i,
        "src": r.src,
        "dst": r.dst,
        "kind": r.kind,
        "t0": t0,
        "t1": t1,
        "description": r.description,
        "source_ids": list(r.source_ids),
    }


def _entity(row: dict[str, Any], prefix: str = "") -> Entity:
    return Entity(
        row[prefix + "name"],
        row[prefix + "kind"],
        span_from(row[prefix + "t0"], row[prefix + "t1"]),
        row[prefix + "description"],
        tuple(row[prefix + "source_ids"] or ()),
    )


def _relation(row: dict[str, Any]) -> Relation:
    return Relation(
        row["src"],
        row["dst"],
        row["kind"],
        span_from(row["t0"], row["t1"]),
        row["description"],
        tuple(row["source_ids"] or ()),
    )


class _CypherStore(abc.ABC):
    """`expand` over a Cypher backend: the seeds (`SEED_QUERY`), then per hop the frontier's
    window-passing relations with their other ends (`EXPAND_QUERY`), merged in `idx` order here,
    relations already returned skipped; subclasses implement `_query(text, params)`."""

    per_node_max = 8  # frontiers up to this size: one indexed query per name

    @abc.abstractmethod
    def _query(self, text: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The rows of one Cypher query as dicts (backend-specific)."""

    def _lookup(self, query: str, names: list[str], params: dict[str, Any]) -> list[dict]:
        """Rows of `query` (SEED_QUERY / EXPAND_QUERY) for every name: per name, or in one
        `... IN $names` query when there are more than `per_node_max` names."""
        if len(names) > self.per_node_max:
            many = SEEDS_MANY_QUERY if query == SEED_QUERY else EXPAND_MANY_QUERY
            return self._query(many, {"names": list(names), **params})
        return [row for n in names for row in self._query(query, {"name": n, **params})]

    def expand(
        self, names: Iterable[str], *, window: Window = None, hops: int = 1, limit: int = 100
    ) -> list[Entity | Relation]:
        """See the `graph_store` module docstring."""
        _check(hops, limit)
        win = window_ordinals(window)
        lo, hi = win or _OPEN
        names = list(dict.fromkeys(names))
        if not names or limit == 0:
            return []
        found = {row["name"]: _entity(row) for row in self._lookup(SEED_QUERY, names, {})}
        out: list[Entity | Relation] = []
        seen: set[str] = set(found)
        frontier: list[str] = []
        for name in names:
            e = found.get(name)
            if e is not None and in_window(e.time, win):
                out.append(e)
                frontier.append(name)
        done: set[int] = set()
        for _ in range(hops):
            if len(out) >= limit or not frontier:
                break
            rows = self._lookup(EXPAND_QUERY, frontier, {"lo": lo, "hi": hi})
            rows.sort(key=lambda row: row["idx"])
            frontier = []
            for row in rows:
                if row["idx"] in done:
                    continue
                done.add(row["idx"])
                r = _relation(row)
                out.append(r)
                b = row["b_name"]
                for end in (r.src, r.dst):
                    if end in seen:
                        continue
                    seen.add(end)
                    if end == b:
                        e = _entity(row, "b_")
                        if in_window(e.time, win):
                            out.append(e)
                            frontier.append(end)
                if len(out) >= limit:
                    break
        return out[:limit]
