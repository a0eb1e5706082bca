"""Dense retrieval: queries/s of `DenseIndex` (exact, on device) against faiss `IndexFlatIP`.

For each corpus size N x D (random normal fp32 embeddings, the same for both): our index's
search program compiled apart from running, then the whole query set searched (in batches of
`--query_batch`) after a warm-up, median and p90 over `--iters` runs; faiss-cpu's exact
`IndexFlatIP` (the optional `bench` extra) on the same corpus and queries, timed the same way;
and recall@k of ours against faiss (both exact: 1.0 up to ties).

    python benchmarks/retrieval.py --cases 100000x768 1000000x128 --out runs/bench/retrieval.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import compile_jitted, environment, time_calls, write_json
from jaxmethods.retrieval.dense import DenseIndex
from jaxmethods.retrieval.dense_search import make_search_fn
from jaxmethods.train.mesh import make_mesh


def recall_at_k(ours: np.ndarray, reference: np.ndarray) -> float:
    """Mean |ours_q ∩ reference_q| / k over queries."""
    k = reference.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ours, reference)]))


def time_faiss(emb: np.ndarray, queries: np.ndarray, k: int, iters: int) -> dict | None:
    try:
        import faiss
    except ImportError:
        return None
    start = time.perf_counter()
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    build_s = time.perf_counter() - start
    holder = {}

    def call():
        holder["out"] = index.search(queries, k)
        return 0

    stats = time_calls(call, warmup=1, iters=iters)
    return {
        "build_s": build_s,
        "threads": faiss.omp_get_max_threads(),
        "stats": stats,
        "result": holder["out"],
    }


def bench_case(n: int, d: int, args, mesh) -> dict:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((n, d), dtype=np.float32)
    queries = rng.standard_normal((args.queries, d), dtype=np.float32)
    row: dict = {
        "num_docs": n,
        "dim": d,
        "queries": args.queries,
        "k": args.k,
        "query_batch": args.query_batch,
        "dtype": args.dtype,
    }

    start = time.perf_counter()
    index = DenseIndex(emb, dtype=args.dtype, mesh=mesh, query_batch=args.query_batch)
    jax.block_until_ready(index.embeddings)
    row["ours_build_s"] = time.perf_counter() - start
    fn = make_search_fn(mesh, index.corpus_axes, num_docs=n, k=args.k, normalize_queries=False)
    q0 = jnp.zeros((args.query_batch, d), jnp.float32)
    _, row["ours_compile_s"] = compile_jitted(fn, q0, index.embeddings, {}, None, {}, {})
    holder = {}

    def ours():
        holder["out"] = index.search(queries, args.k)  # ends in a host transfer: synchronous
        return 0

    stats = time_calls(ours, warmup=1, iters=args.iters)
    row["ours"] = {k: stats[k] for k in ("median_s", "p90_s", "min_s", "iters")}
    row["ours_qps_median"] = args.queries / stats["median_s"]
    row["ours_qps_p90"] = args.queries / stats["p90_s"]

    faiss_row = None if args.no_faiss else time_faiss(emb, queries, args.k, args.iters)
    if faiss_row is not None:
        fs = faiss_row["stats"]
        row["faiss"] = {k: fs[k] for k in ("median_s", "p90_s", "min_s", "iters")}
        row["faiss_build_s"], row["faiss_threads"] = faiss_row["build_s"], faiss_row["threads"]
        row["faiss_qps_median"] = args.queries / fs["median_s"]
        row["faiss_qps_p90"] = args.queries / fs["p90_s"]
        row["ours_over_faiss_qps"] = row["ours_qps_median"] / row["faiss_qps_median"]
        f_scores, f_indices = faiss_row["result"]
        o_scores, o_indices = holder["out"]
        row[f"recall_at_{args.k}_vs_faiss"] = recall_at_k(o_indices, f_indices)
        row["max_abs_score_diff_vs_faiss"] = float(np.abs(o_scores - f_scores).max())
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=["100000x768", "1000000x128"], help="NxD")
    p.add_argument("--queries", type=int, default=512)
    p.add_argument("--query_batch", type=int, default=256)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--no_faiss", action="store_true")
    p.add_argument("--out", default="runs/bench/retrieval.json")
    args = p.parse_args(argv)
    mesh = make_mesh({"corpus": -1})
    results = []
    for case in args.cases:
        n, d = (int(x) for x in case.lower().split("x"))
        row = bench_case(n, d, args, mesh)
        print({k: v for k, v in row.items() if not isinstance(v, dict)}, flush=True)
        results.append(row)
    write_json(
        args.out, {"benchmark": "retrieval", "environment": environment(mesh), "results": results}
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
