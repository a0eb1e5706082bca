"""Every benchmark in one run: one JSON and one markdown table of the headline numbers.

    python benchmarks/suite.py --smoke --out runs/bench/smoke     # tiny sizes, CPU, CI
    python benchmarks/suite.py --out runs/bench/cpu               # the documented CPU sizes
    python benchmarks/suite.py --gpu --out runs/bench/h200        # accelerator sizes (bf16)

Each benchmark runs in its own process (`python benchmarks/<name>.py ... --out <dir>/<name>.json`)
so that its XLA flags, compile cache and memory are its own, and one failure does not stop the
rest: a failed benchmark is a row with its exit status and the tail of its output, and the suite
exits non-zero at the end. `--only a,b` runs a subset.

The table (`<out>/suite.md`, also printed) lists, per benchmark, the numbers a reader compares:
ratios against the peer or baseline run in the same process (`ratio*`, `speedup*`), throughput
(`*tokens_per_s*`, `*per_s`), MFU and peak / temp memory, taken from each benchmark's own JSON
(`headline`). Absolute times count only on an accelerator; on CPU read the ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@dataclasses.dataclass(frozen=True)
class Bench:
    """One benchmark script and its arguments per tier (smoke / cpu / gpu)."""

    name: str
    smoke: tuple[str, ...]
    cpu: tuple[str, ...] = ()
    gpu: tuple[str, ...] = ()
    script: str = ""  # default: benchmarks/<name>.py

    def args(self, tier: str) -> tuple[str, ...]:
        return {"smoke": self.smoke, "cpu": self.cpu, "gpu": self.gpu}[tier]


BENCHMARKS: tuple[Bench, ...] = (
    Bench("lm_step",
          smoke=("--size", "tiny", "--batch", "2", "--seq", "16", "--steps", "2", "--warmup", "1",
                 "--gen-batch", "2", "--gen-prompt", "8", "--gen-new", "4", "--gen-iters", "1",
                 "--beams", "2", "--no-torch"),
          cpu=("--size", "small"),
          gpu=("--size", "bench", "--scan-layers", "--remat", "full", "--chunk", "1024",
               "--attention-impl", "cudnn")),
    Bench("dpo_step", smoke=("--preset", "smoke"), cpu=("--preset", "cpu"), gpu=("--preset", "gpu")),
    Bench("baldro_step", smoke=("--preset", "smoke"), cpu=("--preset", "cpu"),
          gpu=("--preset", "gpu")),
    Bench("igd_step", smoke=("--preset", "smoke"), cpu=("--preset", "cpu"),
          gpu=("--preset", "gpu")),
    Bench("grpo_step", smoke=("--preset", "smoke", "--no-trl"), cpu=("--preset", "cpu"),
          gpu=("--preset", "gpu", "--no-trl")),
    Bench("dep_step", smoke=("--preset", "smoke"), cpu=("--preset", "cpu"), gpu=("--preset", "gpu")),
    Bench("drc_step", smoke=("--preset", "smoke"), cpu=("--preset", "cpu"), gpu=("--preset", "gpu")),
    Bench("multi_lora", smoke=("--preset", "smoke"), cpu=("--preset", "cpu"),
          gpu=("--preset", "gpu")),
    Bench("mrm_meta_step",
          smoke=("--users", "8", "--dim", "32", "--tasks", "2", "--pairs", "4", "8", "--iters", "2"),
          cpu=(), gpu=("--users", "1024", "--tasks", "64")),
    Bench("cf_epoch",
          smoke=("--models", "bpr", "lightgcn", "--dims", "16", "--iters", "1", "--no_torch"),
          cpu=(), gpu=("--dims", "64", "512", "1024", "--no_torch")),
    Bench("retrieval",
          smoke=("--cases", "2000x32", "--queries", "16", "--query_batch", "16", "--iters", "1",
                 "--no_faiss"),
          cpu=(), gpu=("--no_faiss",)),
    Bench("fintmm_retrieval", smoke=("--smoke",), cpu=("--sizes", "10000", "100000"), gpu=()),
    Bench("encode",
          smoke=("--size", "tiny", "--num-texts", "16", "--batch-size", "8", "--max-length", "32",
                 "--iters", "1", "--no-torch"),
          cpu=("--size", "small"), gpu=("--size", "base", "--num-texts", "4096")),
    Bench("memory_plan",
          smoke=("--models", "tiny", "--modes", "ft,lora", "--remat", "full", "--devices", "1",
                 "--seqs", "32"),
          cpu=("--remat", "full"), gpu=("--remat", "full")),
)  # fmt: skip

HEADLINE_KEYS = (
    "ratio", "speedup", "tokens_per_s", "per_s", "qps_median", "epoch_median_s", "mfu", "peak",
    "temp_size",
)  # fmt: skip
# Fields that name a row of a benchmark's list of results (e.g. cf_epoch's per model and dim).
ROW_LABELS = ("model", "mode", "remat", "dim", "num_docs", "devices", "seq", "name")


def _leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(tree, dict):
        for k, v in tree.items():
            if k in ("environment", "env", "config", "params"):
                continue
            yield from _leaves(v, f"{prefix}/{k}" if prefix else str(k))
    elif isinstance(tree, list) and tree and all(isinstance(x, dict) for x in tree):
        for i, row in enumerate(tree):
            label = "-".join(str(row[k]) for k in ROW_LABELS if k in row) or str(i)
            yield from _leaves(row, f"{prefix}[{label}]")
    else:
        yield prefix, tree


def headline(result: dict[str, Any]) -> dict[str, float]:
    """The flat numeric leaves of one benchmark's JSON whose path names a ratio, a throughput,
    MFU or memory (`HEADLINE_KEYS`); everything else (raw samples, configs) is left out."""
    out: dict[str, float] = {}
    for path, value in _leaves(result):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if any(key in path.lower() for key in HEADLINE_KEYS):
            out[path] = float(value)
    return out


def run_one(bench: Bench, tier: str, out_dir: str, timeout_s: float) -> dict[str, Any]:
    """Runs one benchmark in a subprocess; returns its row (status, wall time, headline)."""
    script = bench.script or os.path.join(ROOT, "benchmarks", f"{bench.name}.py")
    out_json = os.path.join(out_dir, f"{bench.name}.json")
    cmd = [sys.executable, script, *bench.args(tier), "--out", out_json]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-2000:]
    except subprocess.TimeoutExpired as e:
        rc, tail = 124, f"timed out after {timeout_s:.0f} s: {str(e.stdout or '')[-1500:]}"
    row: dict[str, Any] = {
        "benchmark": bench.name,
        "command": " ".join(["python", os.path.relpath(script, ROOT), *cmd[2:]]),
        "returncode": rc,
        "wall_s": time.perf_counter() - start,
    }
    if rc == 0 and os.path.exists(out_json):
        with open(out_json) as f:
            row["headline"] = headline(json.load(f))
    else:
        row["error_tail"] = tail
    return row


def markdown(rows: list[dict[str, Any]], tier: str, device: str) -> str:
    lines = [
        f"Benchmark suite, tier `{tier}`, device {device}.",
        "",
        "| benchmark | status | wall s | headline numbers |",
        "|---|---|---|---|",
    ]
    for r in rows:
        status = "ok" if r["returncode"] == 0 else f"failed (rc {r['returncode']})"
        numbers = "; ".join(f"{k} {v:.4g}" for k, v in sorted(r.get("headline", {}).items()))
        lines.append(f"| {r['benchmark']} | {status} | {r['wall_s']:.1f} | {numbers} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    tier = p.add_mutually_exclusive_group()
    tier.add_argument("--smoke", action="store_true", help="tiny sizes (CI, CPU)")
    tier.add_argument("--gpu", action="store_true", help="accelerator sizes")
    p.add_argument("--only", default="", help="comma-separated benchmark names")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per benchmark")
    p.add_argument("--out", default="runs/bench/suite")
    args = p.parse_args(argv)
    tier_name = "smoke" if args.smoke else "gpu" if args.gpu else "cpu"
    names = [n for n in args.only.split(",") if n]
    known = {b.name for b in BENCHMARKS}
    unknown = sorted(set(names) - known)
    if unknown:
        raise SystemExit(f"suite: unknown benchmark(s) {unknown}; known: {sorted(known)}")
    chosen = [b for b in BENCHMARKS if not names or b.name in names]
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for bench in chosen:
        row = run_one(bench, tier_name, args.out, args.timeout)
        rows.append(row)
        print(f"[suite] {bench.name}: rc {row['returncode']} in {row['wall_s']:.1f} s", flush=True)
    import jax  # only for the device name, after the children ran

    device = jax.devices()[0].device_kind
    payload = {"benchmark": "suite", "tier": tier_name, "device": device, "rows": rows}
    with open(os.path.join(args.out, "suite.json"), "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
    table = markdown(rows, tier_name, device)
    with open(os.path.join(args.out, "suite.md"), "w") as f:
        f.write(table)
    print(table)
    failed = [r["benchmark"] for r in rows if r["returncode"] != 0]
    if failed:
        print(f"[suite] failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
