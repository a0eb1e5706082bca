"""`Neo4jGraphStore`: the temporal KG in a Neo4j server (the paper's graph DB) through the
official `neo4j` driver, queried with the shared Cypher of `graph_cypher` (`expand` as
documented in `graph_store`); writes are batched `UNWIND` transactions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from jaxmethods.methods.fintmm.graph_cypher import (
    SCHEMA_VERSION,
    _CypherStore,
    entity_row,
    relation_row,
)
from jaxmethods.methods.fintmm.kg_types import TemporalKG


class Neo4jGraphStore(_CypherStore):
    """The KG in a Neo4j server through the official `neo4j` driver, with the same Cypher
    (`:Entity` nodes, `:Rel` relationships, a `:FinTMMMeta` schema-version node).

    Args:
      uri, user: the server, e.g. "neo4j://localhost:7687", "neo4j".
      password_env: the environment variable holding the password (never passed in clear).
      database: the database name (None: the server default).
      batch: rows per `UNWIND` write transaction.
      driver: an already-built driver (tests pass a fake with `session(database=...)`).
    """

    def __init__(
        self,
        uri: str,
        user: str,
        password_env: str = "NEO4J_PASSWORD",
        *,
        database: str | None = None,
        batch: int = 5000,
        driver: Any = None,
    ):
        self.uri, self.database, self.batch = uri, database, batch
        self.per_node_max = 0  # Neo4j answers `IN $names` from its unique index: one query
        if driver is None:
            import neo4j

            password = os.environ.get(password_env)
            if password is None:
                raise ValueError(
                    f"Neo4jGraphStore: environment variable {password_env} (the password for "
                    f"{user}@{uri}) is not set"
                )
            driver = neo4j.GraphDatabase.driver(uri, auth=(user, password))
        self._driver = driver
        self._check_version()

    def _query(self, text: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._driver.session(database=self.database) as session:
            return [record.data() for record in session.run(text, params)]

    def _check_version(self) -> None:
        rows = self._query(
            "MATCH (m:FinTMMMeta {key: 'schema_version'}) RETURN m.value AS value", {}
        )
        if not rows:
            return
        if rows[0]["value"] != SCHEMA_VERSION:
            raise ValueError(
                f"Neo4jGraphStore: {self.uri} (database {self.database or 'default'}) holds a KG "
                f"of schema version {rows[0]['value']!r}, this code reads {SCHEMA_VERSION!r}; "
                "delete its :Entity, :Rel and :FinTMMMeta data (MATCH (n) WHERE n:Entity OR "
                "n:FinTMMMeta DETACH DELETE n) and rerun the fintmm run to rebuild it"
            )

    def close(self) -> None:
        self._driver.close()

    def write(self, kg: TemporalKG) -> None:
        """Replaces the stored graph with `kg` (batched `UNWIND` writes)."""
        self._query("MATCH (n) WHERE n:Entity OR n:FinTMMMeta DETACH DELETE n", {})
        self._query(
            "CREATE CONSTRAINT fintmm_entity_name IF NOT EXISTS "
            "FOR (e:Entity) REQUIRE e.name IS UNIQUE",
            {},
        )
        ents = [entity_row(e) for e in kg.entities.values()]
        for rows in _batches(ents, self.batch):
            self._query("UNWIND $rows AS row CREATE (e:Entity) SET e = row", {"rows": rows})
        rels = [relation_row(i, r) for i, r in enumerate(kg.relations)]
        for rows in _batches(rels, self.batch):
            self._query(
                "UNWIND $rows AS row MATCH (a:Entity {name: row.src}), (b:Entity {name: row.dst}) "
                "CREATE (a)-[r:Rel]->(b) SET r = row",
                {"rows": rows},
            )
        self._query(
            "CREATE (:FinTMMMeta {key: 'schema_version', value: $v})", {"v": SCHEMA_VERSION}
        )


def _batches(rows: Sequence[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield list(rows[start : start + size])
