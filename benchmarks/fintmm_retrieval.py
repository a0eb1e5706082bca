"""FinTMMBench retrieval at scale: dense entity search with temporal windows, graph expansion
(Kuzu vs in-memory), and hybrid (dense then graph) queries/s, on synthetic temporal KGs.

For each size N (entities): a synthetic KG shaped like FinTMMBench's (per company: a company node,
252 trading days chained by `next_trading_day` and linked `price_of`, 12 quarterly + 3 annual
statements, 52 weekly + 12 monthly charts with `chart_of` and weekly `covers` links, news linked
`mentions`; about 2.4 relations per entity; companies = N / 362), random unit embeddings of width
`--dim` for every entity and relation (the encoder is out of the loop; `HashingEncoder` texts/s
is measured apart on a sample), then:
  * build: KG generation, `InMemoryGraphStore.write`, `KuzuGraphStore.write` (Arrow COPY) and
    `EntityIndex.build` seconds;
  * dense: `EntityIndex.search_vectors` for `--queries` queries, with a random one-week window
    per query (range filter inside the search) and without: queries/s (median over `--iters`);
  * graph: `expand([company, 3 price days], window=month, hops=h, limit=--limit)` latency per
    call (median / p90 ms) for each store and h in `--hops`, and whether Kuzu's answer equals
    the in-memory one;
  * hybrid: dense top-k with windows, then expansion (hops 1) from the hits' entity names, per
    store: end-to-end queries/s.

    python benchmarks/fintmm_retrieval.py --sizes 10000 100000 1000000 \
        --out runs/bench/fintmm_retrieval.json
    python benchmarks/fintmm_retrieval.py --smoke      # tiny sizes, a few seconds
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from benchmarks.timing import environment, time_calls, write_json
from jaxmethods.methods.fintmm.graph_store import InMemoryGraphStore, KuzuGraphStore
from jaxmethods.methods.fintmm.kg import Entity, Relation, TemporalKG
from jaxmethods.methods.fintmm.records import TimeSpan
from jaxmethods.methods.fintmm.vector_store import EntityIndex, kg_items
from jaxmethods.retrieval.hashing_encoder import HashingEncoder
from jaxmethods.train.mesh import make_mesh

ENTITIES_PER_COMPANY = 362
YEAR = 2022


def trading_days(year: int = YEAR) -> list[datetime.date]:
    days = np.arange(f"{year}-01-01", f"{year + 1}-01-01", dtype="datetime64[D]")
    return [d.astype(datetime.date) for d in days if np.is_busday(d)][:252]


def synthetic_kg(num_entities: int, seed: int = 0) -> TemporalKG:
    """A FinTMMBench-shaped temporal KG of about `num_entities` entities (see the docstring)."""
    rng = np.random.default_rng(seed)
    companies = max(1, round(num_entities / ENTITIES_PER_COMPANY))
    days = trading_days()
    day_span = {d: TimeSpan(d, d) for d in days}
    quarters = [TimeSpan.quarter(YEAR, q) for q in range(1, 5)]
    weeks = [TimeSpan.iso_week(YEAR, w) for w in range(1, 53)]
    months = [TimeSpan.month(YEAR, m) for m in range(1, 13)]
    ents: dict[str, Entity] = {}
    rels: list[Relation] = []
    for c in range(companies):
        sym, name = f"T{c:05d}", f"Company {c:05d} Inc"
        ents[name] = Entity(name, "company", None, f"{name}, ticker {sym}", ())
        close = 100.0
        prev = None
        for d in days:
            close *= float(np.exp(rng.normal(0, 0.02)))
            pname = f"{sym} {d.isoformat()}"
            t = day_span[d]
            ents[pname] = Entity(pname, "price", t, f"{sym} close {close:.2f} on {d}", (pname,))
            rels.append(Relation(pname, name, "price_of", t, "daily price", ()))
            if prev is not None:
                span = TimeSpan(prev, d)
                rels.append(Relation(f"{sym} {prev}", pname, "next_trading_day", span, "", ()))
            prev = d
        for i, q in enumerate(quarters):
            for table in ("balance sheet", "income statement", "cash flow"):
                tname = f"{name} {table} {q.label()}"
                ents[tname] = Entity(tname, "table", q, f"{table} rows {i}", (tname,))
                rels.append(Relation(name, tname, "reports", q, "", ()))
        year = TimeSpan.year(YEAR)
        for table in ("balance sheet", "income statement", "cash flow"):
            tname = f"{name} {table} {YEAR}"
            ents[tname] = Entity(tname, "table", year, f"annual {table}", (tname,))
            rels.append(Relation(name, tname, "reports", year, "", ()))
        for span, kind in [*((w, "weekly") for w in weeks), *((m, "monthly") for m in months)]:
            cname = f"{name} {kind} candlestick chart {span.label()}"
            ents[cname] = Entity(cname, "chart", span, f"{kind} chart", (cname,))
            rels.append(Relation(cname, name, "chart_of", span, "", ()))
            if kind == "weekly":
                for d in days:
                    if span.start <= d <= span.end:
                        rels.append(
                            Relation(cname, f"{sym} {d.isoformat()}", "covers", day_span[d], "", ())
                        )
        filled = len(ents) - c * ENTITIES_PER_COMPANY
        for j in range(ENTITIES_PER_COMPANY - filled):
            d = days[int(rng.integers(len(days)))]
            nname = f"News {d} {sym} #{j}"
            ents[nname] = Entity(nname, "news", day_span[d], f"news about {name}", (nname,))
            rels.append(Relation(nname, name, "mentions", day_span[d], "", ()))
    return TemporalKG(ents, rels)


def _ms_stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "median_ms": 1e3 * statistics.median(s),
        "p90_ms": 1e3 * s[min(len(s) - 1, int(0.9 * len(s)))],
        "calls": len(s),
    }


def bench_size(n: int, args, mesh, workdir: str) -> dict:
    row: dict = {"num_entities_target": n}
    t = time.perf_counter()
    kg = synthetic_kg(n, seed=args.seed)
    row["gen_s"] = time.perf_counter() - t
    row["num_entities"], row["num_relations"] = len(kg.entities), len(kg.relations)
    companies = [e.name for e in kg.entities.values() if e.kind == "company"]
    prices = [e for e in kg.entities.values() if e.kind == "price"]

    t = time.perf_counter()
    mem = InMemoryGraphStore(kg)
    row["memory_write_s"] = time.perf_counter() - t
    stores = {"memory": mem}
    if not args.no_kuzu:
        path = os.path.join(workdir, f"kg_{n}.kuzu")
        t = time.perf_counter()
        kuzu = KuzuGraphStore(path, buffer_pool_mb=args.kuzu_buffer_mb)
        kuzu.write(kg)
        row["kuzu_write_s"] = time.perf_counter() - t
        stores["kuzu"] = kuzu

    rng = np.random.default_rng(args.seed + 1)
    items = len(kg_items(kg))
    emb = rng.standard_normal((items, args.dim), dtype=np.float32)
    t = time.perf_counter()
    index = EntityIndex.build(
        kg, HashingEncoder(args.dim), mesh=mesh, embeddings=emb, query_batch=args.query_batch
    )
    row["index_build_s"] = time.perf_counter() - t
    row["index_rows"] = items
    del emb

    # dense, with and without a one-week window per query
    q = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    starts = [prices[int(i)].time.start for i in rng.integers(len(prices), size=args.queries)]
    weeks = [TimeSpan(s, s + datetime.timedelta(days=6)) for s in starts]
    for label, windows in (("dense_window", weeks), ("dense_nowindow", None)):
        holder = {}

        def call(windows=windows, holder=holder):
            holder["hits"] = index.search_vectors(q, args.k, windows)
            return 0

        stats = time_calls(call, warmup=1, iters=args.iters)
        row[f"{label}_qps"] = args.queries / stats["median_s"]
        row[f"{label}_median_s"] = stats["median_s"]
        if windows is not None:
            hits = holder["hits"]
            ok = all(
                index.get(k).time is None or index.get(k).time.overlaps(w)
                for w, h in zip(windows, hits)
                for k, _ in h
            )
            row["dense_window_hits_in_window"] = bool(ok)

    # graph expansion latency
    seeds_list = []
    for i in range(args.expand_calls):
        c = companies[i % len(companies)]
        p = [prices[int(j)].name for j in rng.integers(len(prices), size=3)]
        month = TimeSpan.month(YEAR, int(rng.integers(1, 13)))
        seeds_list.append(([c, *p], month))
    for hops in args.hops:
        answers = {}
        for sname, store in stores.items():
            samples, outs = [], []
            store.expand(*seeds_list[0][:1], window=seeds_list[0][1], hops=hops)  # warm-up
            for seeds, window in seeds_list:
                t = time.perf_counter()
                outs.append(store.expand(seeds, window=window, hops=hops, limit=args.limit))
                samples.append(time.perf_counter() - t)
            row[f"expand_h{hops}_{sname}"] = _ms_stats(samples)
            row[f"expand_h{hops}_{sname}"]["mean_items"] = float(np.mean([len(o) for o in outs]))
            answers[sname] = outs
        if "kuzu" in answers:
            row[f"expand_h{hops}_kuzu_equals_memory"] = answers["kuzu"] == answers["memory"]

    # hybrid: dense (windowed) then hops-1 expansion from the hits
    for sname, store in stores.items():
        t = time.perf_counter()
        hits = index.search_vectors(q, args.k, weeks)
        for h, w in zip(hits, weeks):
            names = []
            for key, _ in h:
                it = index.get(key)
                names += [it.name] if isinstance(it, Entity) else [it.src, it.dst]
            store.expand(list(dict.fromkeys(names)), window=w, hops=1, limit=args.limit)
        row[f"hybrid_{sname}_qps"] = args.queries / (time.perf_counter() - t)
    if "kuzu" in stores:
        stores["kuzu"].close()
    return row


def encoder_throughput(texts: int, dim: int) -> dict:
    kg = synthetic_kg(texts)
    sample = [i.text() for i in kg_items(kg)[:texts]]
    enc = HashingEncoder(dim)
    t = time.perf_counter()
    enc.embed(sample)
    dt = time.perf_counter() - t
    return {"texts": len(sample), "dim": dim, "texts_per_s": len(sample) / dt}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=64)
    p.add_argument("--query_batch", type=int, default=64)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--hops", nargs="+", type=int, default=[1, 2])
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--expand_calls", type=int, default=50)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no_kuzu", action="store_true")
    p.add_argument("--kuzu_buffer_mb", type=int, default=4096)
    p.add_argument("--workdir", default="", help="where the Kuzu files go (default: a temp dir)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and counts")
    p.add_argument("--out", default="runs/bench/fintmm_retrieval.json")
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes, args.queries, args.expand_calls, args.iters = [1000, 3000], 8, 5, 1
    mesh = make_mesh({"corpus": -1})
    workdir = args.workdir or tempfile.mkdtemp(prefix="fintmm_bench_")
    results = []
    try:
        for n in args.sizes:
            row = bench_size(n, args, mesh, workdir)
            print({k: v for k, v in row.items() if not isinstance(v, dict)}, flush=True)
            results.append(row)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    payload = {
        "benchmark": "fintmm_retrieval",
        "environment": environment(mesh),
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "encoder": encoder_throughput(2000 if args.smoke else 20_000, 1024),
        "results": results,
    }
    write_json(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
