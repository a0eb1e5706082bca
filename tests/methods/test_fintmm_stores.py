"""FinTMMBench stores: dense entity index vs brute-force NumPy cosine (with ties and temporal
windows), graph expansion (in-memory vs a brute-force BFS, Kuzu vs in-memory after a reopen),
the schema-version check, Neo4j's Cypher through a fake driver, Milvus (slow)."""

import datetime

import numpy as np
import pytest

from jaxmethods.methods.fintmm.graph_store import (
    EXPAND_MANY_QUERY,
    EXPAND_QUERY,
    SCHEMA_VERSION,
    SEED_QUERY,
    SEEDS_MANY_QUERY,
    InMemoryGraphStore,
    KuzuGraphStore,
    Neo4jGraphStore,
)
from jaxmethods.methods.fintmm.kg import Entity, Relation, TemporalKG
from jaxmethods.methods.fintmm.records import TimeSpan
from jaxmethods.methods.fintmm.vector_store import EntityIndex, MilvusEntityIndex
from jaxmethods.retrieval.hashing_encoder import HashingEncoder

D = datetime.date
SMALL = {"buffer_pool_mb": 64, "threads": 2}  # Kuzu starts faster with a small page cache


def day(i: int) -> TimeSpan:
    return TimeSpan.day(D(2022, 3, 7) + datetime.timedelta(days=i))


def toy_kg() -> TemporalKG:
    """Two companies, 8 days each chained, a weekly chart per company covering days 0-6, a news
    item on day 2 about both, a quarterly table each."""
    ents, rels = {}, []

    def ent(name, kind, time, desc=""):
        ents[name] = Entity(name, kind, time, desc or f"{kind} {name}", (f"src:{name}",))

    def rel(a, b, kind, time):
        rels.append(Relation(a, b, kind, time, f"{a} {kind} {b}", (f"src:{a}|{b}",)))

    week = TimeSpan(D(2022, 3, 7), D(2022, 3, 13))
    q1 = TimeSpan.quarter(2022, 1)
    for co in ("Alpha", "Beta"):
        ent(co, "company", None)
        ent(f"{co} chart W10", "chart", week)
        rel(f"{co} chart W10", co, "chart_of", week)
        ent(f"{co} table Q1", "table", q1)
        rel(co, f"{co} table Q1", "reports", q1)
        for i in range(8):
            ent(f"{co} d{i}", "price", day(i))
            rel(f"{co} d{i}", co, "price_of", day(i))
            if i:
                span = TimeSpan(day(i - 1).start, day(i).start)
                rel(f"{co} d{i - 1}", f"{co} d{i}", "next_trading_day", span)
            if i < 7:
                rel(f"{co} chart W10", f"{co} d{i}", "covers", day(i))
    ent("News", "news", day(2))
    for co in ("Alpha", "Beta"):
        rel("News", co, "mentions", day(2))
    return TemporalKG(ents, rels)


def brute_expand(kg: TemporalKG, seeds, window, hops) -> set[str]:
    """Keys reachable within `hops` through relations overlapping the window (sets, no order)."""
    ok = lambda t: t is None or window is None or t.overlaps(window)
    front = {s for s in seeds if s in kg.entities and ok(kg.entities[s].time)}
    keys, seen = set(front), set(seeds) & set(kg.entities)
    for _ in range(hops):
        nxt = set()
        for r in kg.relations:
            if ok(r.time) and (r.src in front or r.dst in front):
                keys.add(r.key)
                for end in (r.src, r.dst):
                    if end not in seen:
                        seen.add(end)
                        if ok(kg.entities[end].time):
                            keys.add(end)
                            nxt.add(end)
        front = nxt
    return keys


def keys(items) -> list[str]:
    return [i.name if isinstance(i, Entity) else i.key for i in items]


CASES = [  # (seeds, window, hops, limit)
    (["Alpha"], None, 1, 1000),
    (["Alpha", "nope", "News"], day(2), 1, 1000),
    (["Alpha d3"], TimeSpan(day(2).start, day(4).start), 2, 1000),
    (["Beta chart W10"], day(5), 2, 1000),
    (["Alpha"], TimeSpan.month(2022, 3), 2, 7),  # cut by the limit
    (["Alpha d7"], day(7), 3, 1000),  # the chart (days 0-6) is out of the window
    (["Alpha d7"], (D(2022, 3, 14), D(2022, 3, 14)), 1, 1000),  # window as dates
]


@pytest.fixture(scope="module")
def kg():
    return toy_kg()


@pytest.fixture(scope="module")
def kuzu_path(kg, tmp_path_factory):
    path = tmp_path_factory.mktemp("kuzu") / "kg.kuzu"
    store = KuzuGraphStore(path, **SMALL)
    store.write(kg)
    store.close()
    return path


@pytest.mark.parametrize("seeds,window,hops,limit", CASES)
def test_in_memory_expand_matches_brute_force(kg, seeds, window, hops, limit):
    got = InMemoryGraphStore(kg).expand(seeds, window=window, hops=hops, limit=limit)
    win = TimeSpan(*window) if isinstance(window, tuple) else window
    want = brute_expand(kg, seeds, win, hops)
    if limit >= len(want):
        assert set(keys(got)) == want and len(got) == len(want)
    else:
        assert len(got) == limit and set(keys(got)) <= want
    for item in got:  # the temporal filter
        assert item.time is None or win is None or item.time.overlaps(win)


def test_expand_order_by_hand(kg):
    got = InMemoryGraphStore(kg).expand(["Alpha d7"], window=day(7), hops=2)
    assert keys(got) == [
        "Alpha d7",
        "Alpha d7 -[price_of]-> Alpha",  # relations in kg order, each then its new end
        "Alpha",
        "Alpha d6 -[next_trading_day]-> Alpha d7",
        "Alpha -[reports]-> Alpha table Q1",  # hop 2, from Alpha (d6 is out of the window)
        "Alpha table Q1",
    ]


def test_kuzu_round_trip_matches_in_memory(kg, kuzu_path):
    store = KuzuGraphStore(kuzu_path, read_only=True, **SMALL)  # reopened from the file
    assert len(store) == len(kg.entities)
    mem = InMemoryGraphStore(kg)
    for per_node_max in (0, 8, 1000):  # `IN $names` queries, mixed, one query per name
        store.per_node_max = per_node_max
        for seeds, window, hops, limit in CASES:
            want = mem.expand(seeds, window=window, hops=hops, limit=limit)
            assert store.expand(seeds, window=window, hops=hops, limit=limit) == want
    full = store.expand(list(kg.entities), hops=0, limit=10_000)
    assert full == list(kg.entities.values())  # every field round-trips
    rels = store.expand(["Alpha", "Beta", "News"], hops=1, limit=10_000)
    touching = [r for r in kg.relations if {"Alpha", "Beta", "News"} & {r.src, r.dst}]
    assert [r for r in rels if isinstance(r, Relation)] == touching
    store.close()


def test_kuzu_old_schema_version_raises(kg, tmp_path):
    path = tmp_path / "old.kuzu"
    store = KuzuGraphStore(path, **SMALL)
    store.write(TemporalKG({}, []))
    store._conn.execute("MATCH (m:Meta) SET m.value = 'fintmm-kg/0'")
    store.close()
    with pytest.raises(ValueError, match=r"old\.kuzu.*'fintmm-kg/0'.*rm -rf"):
        KuzuGraphStore(path, **SMALL)


class FakeSession:
    def __init__(self, driver):
        self.driver = driver

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, query, params):
        self.driver.log.append((query, params))
        rows = self.driver.answer(query, params)
        return [type("Rec", (), {"data": lambda self, r=r: r})() for r in rows]


class FakeDriver:
    """Answers the expand queries from an in-memory KG the way a Cypher engine would."""

    def __init__(self, kg, version=None):
        self.kg, self.version, self.log = kg, version, []

    def session(self, database=None):
        assert database == "fin"
        return FakeSession(self)

    def answer(self, query, params):
        from jaxmethods.methods.fintmm.graph_store import entity_row, relation_row

        if "FinTMMMeta {key" in query and query.startswith("MATCH"):
            return [] if self.version is None else [{"value": self.version}]
        names = [params["name"]] if "name" in params else params.get("names", [])
        if query in (SEED_QUERY, SEEDS_MANY_QUERY):
            return [entity_row(self.kg.entities[n]) for n in names if n in self.kg.entities]
        if query in (EXPAND_QUERY, EXPAND_MANY_QUERY):
            rows = []
            for i, r in enumerate(self.kg.relations):
                if r.time is not None:
                    t0, t1 = r.time.ordinals()
                    if not (t1 >= params["lo"] and t0 <= params["hi"]):
                        continue
                for a, b in ((r.src, r.dst), (r.dst, r.src)):
                    if a in names:
                        brow = {f"b_{k}": v for k, v in entity_row(self.kg.entities[b]).items()}
                        rows.append({**relation_row(i, r), **brow})
            return rows[::-1]  # any order: the store sorts by idx
        return []


def test_neo4j_cypher_through_a_fake_driver(kg, monkeypatch):
    driver = FakeDriver(kg)
    store = Neo4jGraphStore("neo4j://x:7687", "neo4j", database="fin", batch=10, driver=driver)
    store.write(kg)
    queries = [q for q, _ in driver.log]
    ent_batches = [p["rows"] for q, p in driver.log if "CREATE (e:Entity)" in q]
    rel_batches = [p["rows"] for q, p in driver.log if "CREATE (a)-[r:Rel]->(b)" in q]
    assert sum(map(len, ent_batches)) == len(kg.entities) and max(map(len, ent_batches)) == 10
    assert [r["idx"] for b in rel_batches for r in b] == list(range(len(kg.relations)))
    assert any("REQUIRE e.name IS UNIQUE" in q for q in queries)
    assert driver.log[-1][1] == {"v": SCHEMA_VERSION}
    mem = InMemoryGraphStore(kg)
    for per_node_max in (0, 8):
        store.per_node_max = per_node_max
        for seeds, window, hops, limit in CASES:
            want = mem.expand(seeds, window=window, hops=hops, limit=limit)
            assert store.expand(seeds, window=window, hops=hops, limit=limit) == want
    with pytest.raises(ValueError, match="schema version 'old'"):
        Neo4jGraphStore("neo4j://x", "neo4j", database="fin", driver=FakeDriver(kg, "old"))
    monkeypatch.delenv("NO_SUCH_PASSWORD_VAR", raising=False)
    with pytest.raises(ValueError, match="NO_SUCH_PASSWORD_VAR"):
        Neo4jGraphStore("neo4j://x", "neo4j", "NO_SUCH_PASSWORD_VAR")


def _brute_topk(emb, q, times, window, k):
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    s = e @ (q / np.linalg.norm(q))
    ok = np.array([t is None or window is None or t.overlaps(window) for t in times])
    order = [i for i in np.argsort(-s, kind="stable") if ok[i]]  # ties: lower row first
    return order[:k], s


def test_entity_index_matches_brute_force_cosine_with_ties_and_windows(kg, tmp_path):
    items = [*kg.entities.values(), *kg.relations]
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(items), 12)).astype(np.float32)
    emb[5] = emb[3]  # exact ties: equal rows give equal scores
    emb[9] = 2 * emb[3]  # cosine ties too
    index = EntityIndex.build(kg, HashingEncoder(12), embeddings=emb)
    assert index.keys == keys(items)
    q = np.stack([emb[3] + 0.01 * rng.normal(size=12), rng.normal(size=12), emb[3]])
    q = q.astype(np.float32)
    windows = [day(3), TimeSpan(day(1).start, day(2).start), None]
    got = index.search_vectors(q, 6, windows)
    for row, w, hits in zip(q, windows, got):
        order, s = _brute_topk(emb.astype(np.float64), row.astype(np.float64),
                               [i.time for i in items], w, 6)  # fmt: skip
        assert [k for k, _ in hits] == [index.keys[i] for i in order]
        np.testing.assert_allclose([v for _, v in hits], s[order], rtol=1e-5, atol=1e-5)
    assert [k for k, _ in got[2][:3]] == [index.keys[i] for i in (3, 5, 9)]  # 3-way tie
    # text queries go through the encoder; an empty window result is an empty list
    hits = index.search(["Alpha d3 price"], 6, windows=[(D(2030, 1, 1), D(2030, 1, 2))])
    assert all(index.get(k).time is None for k, _ in hits[0])
    assert index.search([], 3) == []
    index.save(tmp_path / "index")
    again = EntityIndex.load(tmp_path / "index", kg, HashingEncoder(12))
    assert again.search_vectors(q, 6, windows) == got
    with pytest.raises(ValueError, match="another KG"):
        EntityIndex.load(tmp_path / "index", TemporalKG({}, kg.relations), HashingEncoder(12))
    with pytest.raises(KeyError, match="no entity or relation 'zzz'"):
        index.get("zzz")


@pytest.mark.slow
def test_milvus_lite_matches_entity_index(kg, tmp_path):
    pytest.importorskip("milvus_lite")
    enc = HashingEncoder(64)
    dense = EntityIndex.build(kg, enc)
    milvus = MilvusEntityIndex(str(tmp_path / "m.db"), enc).build(kg)
    queries = ["Alpha d3 price", "Beta chart", "News mentions Alpha"]
    windows = [None, day(3), TimeSpan(day(1).start, day(2).start)]
    for a, b in zip(dense.search(queries, 5, windows), milvus.search(queries, 5, windows)):
        np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=1e-5)
        last = a[-1][1]  # keys above the last score are the same (ties at it may differ)
        assert {k for k, s in a if s > last + 1e-5} == {k for k, s in b if s > last + 1e-5}
