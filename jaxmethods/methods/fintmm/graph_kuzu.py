"""`KuzuGraphStore`: the temporal KG in an embedded Kuzu database file, queried with the
shared Cypher of `graph_cypher` (`expand` as documented in `graph_store`).
"""

from __future__ import annotations

import os
from typing import Any

from jaxmethods.methods.fintmm.graph_cypher import REBUILD_HINT, SCHEMA_VERSION, _CypherStore
from jaxmethods.methods.fintmm.graph_window import time_ordinals
from jaxmethods.methods.fintmm.kg_types import TemporalKG


class KuzuGraphStore(_CypherStore):
    """The KG in an embedded Kuzu database file (Cypher), persisted at `path`.

    Node table `Entity(name PK, kind, t0, t1, description, source_ids STRING[])`, rel table
    `Rel(idx, src, dst, kind, t0, t1, description, source_ids)` (t0/t1: day ordinals, NULL for
    no time; idx: the relation's position in `kg.relations`), and `Meta(key, value)` holding
    `schema_version`. Opening a file written by another schema version raises a ValueError
    naming the path and how to rebuild. `write` bulk-loads through Arrow (`COPY ... FROM`).
    `buffer_pool_mb`: Kuzu's page cache; `threads`: its worker threads (0 = all cores).

    Kuzu 0.11 (the last release; the project was archived in Oct 2025) is used rather than its
    fork `ladybug` because it is the pinned, widely installed wheel with the same Cypher dialect;
    only `_connect` names the module.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        read_only: bool = False,
        buffer_pool_mb: int = 1024,
        threads: int = 0,
    ):
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._db, self._conn = self._connect(read_only, buffer_pool_mb, threads)
        self._check_version()
        self._tune()

    def _tune(self) -> None:
        """An `IN $names` query scans the node table (~1.3 s per 1M entities, measured), one
        indexed query per name costs ~10 ms: switch over at about one name per 8k entities."""
        self.per_node_max = max(8, len(self) // 8000)

    def _connect(self, read_only: bool, buffer_pool_mb: int, threads: int):
        import kuzu

        db = kuzu.Database(
            self.path,
            read_only=read_only,
            buffer_pool_size=buffer_pool_mb << 20,
            max_num_threads=threads,
        )
        return db, kuzu.Connection(db)

    def _tables(self) -> set[str]:
        return {row[1] for row in self._conn.execute("CALL show_tables() RETURN *").get_all()}

    def _check_version(self) -> None:
        tables = self._tables()
        if not tables:
            return
        version = None
        if "Meta" in tables:
            rows = self._conn.execute(
                "MATCH (m:Meta) WHERE m.key = 'schema_version' RETURN m.value"
            ).get_all()
            version = rows[0][0] if rows else None
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"KuzuGraphStore: {self.path} holds a KG of schema version {version!r}, this "
                f"code reads {SCHEMA_VERSION!r}; {REBUILD_HINT} (rm -rf {self.path})"
            )

    def close(self) -> None:
        self._conn.close()
        self._db.close()

    def _query(self, text: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        result = self._conn.execute(text, params)
        cols = result.get_column_names()
        return [dict(zip(cols, row)) for row in result.get_all()]

    def __len__(self) -> int:
        if "Entity" not in self._tables():
            return 0
        return int(self._conn.execute("MATCH (e:Entity) RETURN count(e)").get_all()[0][0])

    def write(self, kg: TemporalKG) -> None:
        """Replaces the stored graph with `kg` (drops and recreates the tables)."""
        import pyarrow as pa

        for table in ("Rel", "Entity", "Meta"):
            if table in self._tables():
                self._conn.execute(f"DROP TABLE {table}")
        c = self._conn
        c.execute("CREATE NODE TABLE Meta(key STRING PRIMARY KEY, value STRING)")
        c.execute(
            "CREATE NODE TABLE Entity(name STRING PRIMARY KEY, kind STRING, t0 INT64, t1 INT64, "
            "description STRING, source_ids STRING[])"
        )
        c.execute(
            "CREATE REL TABLE Rel(FROM Entity TO Entity, idx INT64, src STRING, dst STRING, "
            "kind STRING, t0 INT64, t1 INT64, description STRING, source_ids STRING[])"
        )
        strs = pa.list_(pa.string())
        ents = list(kg.entities.values())
        entities = pa.table(  # noqa: F841 (read by name by Kuzu's COPY)
            {
                "name": pa.array([e.name for e in ents], pa.string()),
                "kind": pa.array([e.kind for e in ents], pa.string()),
                "t0": pa.array([time_ordinals(e.time)[0] for e in ents], pa.int64()),
                "t1": pa.array([time_ordinals(e.time)[1] for e in ents], pa.int64()),
                "description": pa.array([e.description for e in ents], pa.string()),
                "source_ids": pa.array([list(e.source_ids) for e in ents], strs),
            }
        )
        missing = {end for r in kg.relations for end in (r.src, r.dst)} - kg.entities.keys()
        if missing:
            raise ValueError(
                f"KuzuGraphStore.write: relations name {len(missing)} entities that the KG "
                f"does not hold, e.g. {sorted(missing)[:3]}"
            )
        rels = kg.relations
        relations = pa.table(  # noqa: F841 (read by name by Kuzu's COPY)
            {
                "from": pa.array([r.src for r in rels], pa.string()),
                "to": pa.array([r.dst for r in rels], pa.string()),
                "idx": pa.array(range(len(rels)), pa.int64()),
                "src": pa.array([r.src for r in rels], pa.string()),
                "dst": pa.array([r.dst for r in rels], pa.string()),
                "kind": pa.array([r.kind for r in rels], pa.string()),
                "t0": pa.array([time_ordinals(r.time)[0] for r in rels], pa.int64()),
                "t1": pa.array([time_ordinals(r.time)[1] for r in rels], pa.int64()),
                "description": pa.array([r.description for r in rels], pa.string()),
                "source_ids": pa.array([list(r.source_ids) for r in rels], strs),
            }
        )
        if ents:
            c.execute("COPY Entity FROM entities")
        if rels:
            c.execute("COPY Rel FROM relations")
        c.execute("CREATE (:Meta {key: 'schema_version', value: $v})", {"v": SCHEMA_VERSION})
        self._tune()
