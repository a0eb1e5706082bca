"""Every benchmark in one run: one JSON and one markdown table of the headline numbers.

    python benchmarks/suite.py --smoke --out runs/bench/smoke     # tiny sizes, CPU, CI
    python benchmarks/suite.py --out runs/bench/cpu               # the documented CPU sizes
    python benchmarks/suite.py --gpu --out runs/bench/h200        # accelerator sizes (bf16)

In the cpu and gpu tiers each benchmark runs in its own process (`python benchmarks/<name>.py
... --out <dir>/<name>.json`), so that its XLA flags, compile cache, allocator and memory peak
are its own and no benchmark's numbers depend on what an earlier one left behind (memory_plan,
for one, sets XLA_FLAGS before jax starts).

The smoke tier checks that every benchmark still runs, not how fast: it calls `main(argv)` of
every `benchmarks/<name>.py` in the suite's own process, so jax and the project are imported
once, and, when jax is not imported yet, with `SMOKE_XLA_FLAGS`, which cut XLA:CPU's compile
time of a tiny train step about eightfold (the code it emits is slower: smoke numbers are not
measurements). Two such processes share the benchmarks (`--jobs`, default 2: each takes the
next benchmark when it is free; `--jobs 1` where another job has the other core, as under
`pytest -n 2`), `--isolate` runs one process per benchmark, `--xla-opt` keeps XLA's default
optimisation.

Either way one failure does not stop the rest: a failed benchmark (a non-zero exit, a
`SystemExit` or an exception; 124 past `--timeout`) is a row with its exit status and the tail
of its output and traceback, and the suite exits non-zero at the end. `--only a,b` runs a subset.

The table (`<out>/suite.md`, also printed) lists, per benchmark, the numbers a reader compares:
ratios against the peer or baseline run in the same process (`ratio*`, `speedup*`, `*_over_*`),
throughput (`*tokens_per_s*`, `*per_s`), MFU and peak / temp memory, taken from each
benchmark's own JSON (`headline`). Absolute times count only on an accelerator; on CPU read the
ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from types import ModuleType
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxmethods.xla_flags import FAST_COMPILE_CPU_FLAGS  # noqa: E402  (imports no jax)


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
          smoke=("--models", "bpr", "lightgcn", "--dims", "16", "--iters", "1", "--no_torch",
                 "--interactions_per_user", "10"),
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

# XLA:CPU options of the smoke tier (set in XLA_FLAGS before jax starts).
SMOKE_XLA_FLAGS = FAST_COMPILE_CPU_FLAGS
TAIL_CHARS = 2000

HEADLINE_KEYS = (
    "ratio", "speedup", "_over_", "tokens_per_s", "per_s", "qps_median", "epoch_median_s", "mfu",
    "peak", "temp_size",
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


def _script(bench: Bench) -> str:
    return bench.script or os.path.join(ROOT, "benchmarks", f"{bench.name}.py")


def _row(bench: Bench, tier: str, out_json: str, rc: int, tail: str, wall_s: float) -> dict:
    """The row of one run: command, exit status, wall time, and its headline or error tail."""
    script = _script(bench)
    row: dict[str, Any] = {
        "benchmark": bench.name,
        "command": " ".join(
            ["python", os.path.relpath(script, ROOT), *bench.args(tier), "--out", out_json]
        ),
        "returncode": rc,
        "wall_s": wall_s,
    }
    if rc == 0 and os.path.exists(out_json):
        with open(out_json) as f:
            row["headline"] = headline(json.load(f))
    else:
        row["error_tail"] = tail[-TAIL_CHARS:]
    return row


def run_one(bench: Bench, tier: str, out_dir: str, timeout_s: float) -> dict[str, Any]:
    """Runs one benchmark in a subprocess; returns its row (status, wall time, headline)."""
    out_json = os.path.join(out_dir, f"{bench.name}.json")
    cmd = [sys.executable, _script(bench), *bench.args(tier), "--out", out_json]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        rc, tail = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        rc, tail = 124, f"timed out after {timeout_s:.0f} s: {str(e.stdout or '')[-1500:]}"
    return _row(bench, tier, out_json, rc, tail, time.perf_counter() - start)


class BenchmarkTimeout(Exception):
    """An in-process benchmark ran past the suite's `--timeout`."""


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Raises `BenchmarkTimeout` in the body after `seconds` (main thread on POSIX only; a
    running XLA compile is interrupted when it returns to Python)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise BenchmarkTimeout(f"timed out after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _load(bench: Bench) -> ModuleType:
    """`benchmarks/<name>` as a module (imported once per process), or `bench.script` by path."""
    if not bench.script:
        return importlib.import_module(f"benchmarks.{bench.name}")
    name = f"_suite_script_{bench.name}"
    spec = importlib.util.spec_from_file_location(name, bench.script)
    if spec is None or spec.loader is None:
        raise ImportError(f"suite: cannot import {bench.script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _exit_code(e: SystemExit) -> int:
    """The exit status `sys.exit(code)` would give: None -> 0, an int -> itself, else 1."""
    if e.code is None:
        return 0
    return e.code if isinstance(e.code, int) else 1


def run_in_process(bench: Bench, tier: str, out_dir: str, timeout_s: float) -> dict[str, Any]:
    """Runs one benchmark's `main(argv)` in this process; returns the row `run_one` would.

    Its stdout and stderr are captured; `SystemExit(code)` gives the exit status `code`, any
    other exception status 1 and its traceback in the tail, a timeout status 124.
    """
    out_json = os.path.join(out_dir, f"{bench.name}.json")
    argv = [*bench.args(tier), "--out", out_json]
    buf = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            with _alarm(timeout_s):
                _load(bench).main(argv)
            rc = 0
        except SystemExit as e:
            rc = _exit_code(e)
            if rc and not isinstance(e.code, int):
                print(e.code)
        except BenchmarkTimeout:
            rc = 124
            traceback.print_exc()
        except Exception:
            rc = 1
            traceback.print_exc()
    return _row(bench, tier, out_json, rc, buf.getvalue(), time.perf_counter() - start)


def use_smoke_xla_flags() -> bool:
    """Prepends `SMOKE_XLA_FLAGS` to XLA_FLAGS (later flags there win) if jax is not imported
    yet (XLA reads them once per process); returns whether they apply."""
    if "jax" in sys.modules:
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = " ".join([*SMOKE_XLA_FLAGS, flags]).strip()
    return True


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


def _run_indexed(job: tuple[int, bool, Bench, str, str, float]) -> tuple[int, dict[str, Any]]:
    index, in_process, bench, tier, out_dir, timeout_s = job
    run = run_in_process if in_process else run_one
    return index, run(bench, tier, out_dir, timeout_s)


def run_all(
    chosen: list[Bench],
    tier: str,
    out_dir: str,
    timeout_s: float,
    *,
    in_process: bool,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """The rows of `chosen`, in order, run one after the other or, with `jobs` > 1, by that
    many worker processes (spawned, so each imports jax once; each takes the next benchmark
    when it is free)."""
    todo = [(i, in_process, b, tier, out_dir, timeout_s) for i, b in enumerate(chosen)]
    rows: list[dict[str, Any] | None] = [None] * len(chosen)

    def report(index: int, row: dict[str, Any]) -> None:
        rows[index] = row
        print(f"[suite] {row['benchmark']}: rc {row['returncode']} in {row['wall_s']:.1f} s",
              flush=True)  # fmt: skip

    if jobs <= 1 or len(todo) <= 1:
        for job in todo:
            report(*_run_indexed(job))
    else:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(min(jobs, len(todo)))
        try:
            for index, row in pool.imap_unordered(_run_indexed, todo):
                report(index, row)
        except BaseException:
            pool.terminate()
            raise
        pool.close()  # the workers exit normally (terminate would skip their clean-up)
        pool.join()
    return [r for r in rows if r is not None]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    tier = p.add_mutually_exclusive_group()
    tier.add_argument("--smoke", action="store_true", help="tiny sizes (CI, CPU)")
    tier.add_argument("--gpu", action="store_true", help="accelerator sizes")
    p.add_argument("--only", default="", help="comma-separated benchmark names")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per benchmark")
    p.add_argument(
        "--isolate",
        action="store_true",
        help="smoke tier: one process per benchmark (as the cpu and gpu tiers)",
    )
    p.add_argument(
        "--xla-opt",
        action="store_true",
        help="smoke tier: keep XLA's default optimisation (no SMOKE_XLA_FLAGS)",
    )
    p.add_argument(
        "--jobs", type=int, default=0,
        help="smoke tier: worker processes sharing the benchmarks (default: 2, or 1 on one core)",
    )  # fmt: skip
    p.add_argument("--out", default="runs/bench/suite")
    args = p.parse_args(argv)
    tier_name = "smoke" if args.smoke else "gpu" if args.gpu else "cpu"
    in_process = tier_name == "smoke" and not args.isolate
    if args.jobs > 1 and tier_name != "smoke":
        raise SystemExit("suite: --jobs is for the smoke tier (timed tiers need the machine)")
    jobs = args.jobs or (min(2, os.cpu_count() or 1) if tier_name == "smoke" else 1)
    names = [n for n in args.only.split(",") if n]
    known = {b.name for b in BENCHMARKS}
    unknown = sorted(set(names) - known)
    if unknown:
        raise SystemExit(f"suite: unknown benchmark(s) {unknown}; known: {sorted(known)}")
    chosen = [b for b in BENCHMARKS if not names or b.name in names]
    os.makedirs(args.out, exist_ok=True)
    smoke_flags = tier_name == "smoke" and not args.xla_opt and use_smoke_xla_flags()
    rows = run_all(chosen, tier_name, args.out, args.timeout, in_process=in_process, jobs=jobs)
    import jax  # only for the device name, after the benchmarks ran

    device = jax.devices()[0].device_kind
    payload = {
        "benchmark": "suite", "tier": tier_name, "device": device, "rows": rows,
        "in_process": in_process, "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "smoke_xla_flags": smoke_flags, "jobs": jobs,
    }  # fmt: skip
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
