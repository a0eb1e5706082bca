"""Shared benchmark protocol: compile apart from running, warm-up, median/p90, FLOPs, MFU, JSON.

    compiled, compile_s = compile_jitted(jax.jit(step), *args)
    stats = time_calls(lambda: compiled(*args), warmup=2, iters=10)
    flops = xla_flops(compiled)       # None when the backend has no cost analysis
    mfu(flops, stats["median_s"], jax.devices())

Notes:
  * Every timed call ends in `jax.block_until_ready`, so times are device times plus dispatch.
  * XLA's cost analysis counts a while/scan body once, not once per iteration: for programs with
    loops (scanned layers, chunked log-probs, decoding loops) use an analytic FLOP count.
  * MFU = achieved FLOP/s / (devices x peak dense bf16 FLOP/s of the device kind); null on CPU
    or an unknown device (never a guessed peak).
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

# Peak dense bf16 FLOP/s per device (vendor datasheets; no sparsity).
PEAK_BF16_FLOPS: dict[str, float] = {
    "h100": 989e12,
    "h200": 989e12,
    "a100": 312e12,
    "tpu v4": 275e12,
    "tpu v5 lite": 197e12,  # v5e reports its device_kind as "TPU v5 lite"
    "tpu v5e": 197e12,
    "tpu v5p": 459e12,
    "tpu v5": 459e12,  # v5p reports "TPU v5"
}


def device_peak_flops(device: jax.Device | None = None) -> float | None:
    """Peak bf16 FLOP/s of `device` (default: the first device); None for CPU / unknown kinds."""
    device = jax.devices()[0] if device is None else device
    if device.platform == "cpu":
        return None
    kind = device.device_kind.lower()
    # Longest key first so "tpu v5 lite" wins over "tpu v5".
    for key in sorted(PEAK_BF16_FLOPS, key=len, reverse=True):
        if key in kind:
            return PEAK_BF16_FLOPS[key]
    return None


def compile_jitted(
    fn: Any, *args: Any, compiler_options: dict[str, Any] | None = None
) -> tuple[Any, float]:
    """AOT-compiles a jitted function for `args`: (executable, seconds spent lowering+compiling).

    The executable is called with the same `args` (no static arguments). `compiler_options`
    are XLA debug options for this compile only (e.g. {"xla_cpu_enable_fast_math": True}), so
    variants can be compared in one process; an unknown option is an error from XLA.
    """
    start = time.perf_counter()
    compiled = fn.lower(*args).compile(compiler_options=compiler_options or None)
    return compiled, time.perf_counter() - start


def parse_compiler_options(specs: Sequence[str]) -> dict[str, Any]:
    """`["xla_cpu_enable_fast_math=true", "xla_cpu_prefer_vector_width=512"]` -> typed dict
    (true/false -> bool, integers -> int, anything else stays a string)."""
    out: dict[str, Any] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key:
            raise ValueError(f"compiler option {spec!r}: expected name=value")
        low = value.lower()
        out[key] = low == "true" if low in ("true", "false") else _int_or_str(value)
    return out


def _int_or_str(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value


def time_calls(call: Callable[[], Any], *, warmup: int = 2, iters: int = 10) -> dict[str, Any]:
    """Times `call()` (blocked until ready) `iters` times after `warmup` untimed calls.

    `call` may carry state between calls (e.g. a train step whose donated state it replaces).
    Returns seconds: median, mean, p10, p90, min, and every sample.
    """
    if warmup < 0 or iters < 1:
        raise ValueError(f"time_calls: need warmup >= 0 and iters >= 1, got {warmup}, {iters}")
    for _ in range(warmup):
        jax.block_until_ready(call())
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - start)
    return {
        "median_s": statistics.median(times),
        "mean_s": statistics.fmean(times),
        "p10_s": float(np.percentile(times, 10)),
        "p90_s": float(np.percentile(times, 90)),
        "min_s": min(times),
        "iters": iters,
        "warmup": warmup,
        "samples_s": times,
    }


def train_step_call(compiled: Any, state: Any, *args: Any) -> Callable[[], Any]:
    """A zero-argument call of a donating `compiled(state, *args) -> (state, metrics)`.

    Each call feeds the state the previous call returned (the donated one is gone) and returns
    `metrics["loss"]`, so `time_calls` blocks on the step's result.
    """
    holder = {"state": state}

    def call() -> Any:
        holder["state"], metrics = compiled(holder["state"], *args)
        return metrics["loss"]

    return call


def interleaved_samples(
    calls: dict[str, Callable[[], Any]], *, rounds: int, warmup: int, iters: int
) -> dict[str, list[float]]:
    """Seconds per call of every variant, timed in `rounds` alternating rounds of `iters` calls
    (after `warmup` untimed ones), so drift on a shared machine does not favour any variant."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            samples[name] += time_calls(call, warmup=warmup, iters=iters)["samples_s"]
    return samples


def xla_flops(compiled: Any) -> float | None:
    """FLOPs of one call from `compiled.cost_analysis()` (None if unavailable)."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # backends without cost analysis raise (e.g. some plugins)
        return None
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        return None
    flops = float(analysis["flops"])
    return flops if flops > 0 else None


def memory_bytes(compiled: Any) -> dict[str, int] | None:
    """Argument / output / alias / temp bytes of the executable (`memory_analysis`), if any.

    `alias` is the output memory reusing donated arguments (a donated train state shows here).
    """
    try:
        stats = compiled.memory_analysis()
    except Exception:
        return None
    if stats is None:
        return None
    fields = (
        "argument_size_in_bytes",
        "output_size_in_bytes",
        "alias_size_in_bytes",
        "temp_size_in_bytes",
    )
    return {f: int(getattr(stats, f)) for f in fields if hasattr(stats, f)}


def mfu(
    flops_per_call: float | None,
    seconds_per_call: float,
    devices: Sequence[jax.Device] | None = None,
) -> float | None:
    """Model FLOPs utilisation: flops / seconds / (n_devices * peak); None when unknown."""
    devices = list(jax.devices() if devices is None else devices)
    peak = device_peak_flops(devices[0])
    if flops_per_call is None or peak is None or seconds_per_call <= 0:
        return None
    return flops_per_call / seconds_per_call / (len(devices) * peak)


def environment(mesh: jax.sharding.Mesh | None = None) -> dict[str, Any]:
    """Versions, device kind and mesh shape for the JSON record."""
    import flax
    import jaxlib
    import optax

    device = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "python": platform.python_version(),
        "platform": device.platform,
        "device_kind": device.device_kind,
        "num_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "mesh_shape": None if mesh is None else dict(mesh.shape),
        "peak_bf16_flops_per_device": device_peak_flops(device),
    }


def write_json(path: str, payload: dict[str, Any]) -> None:
    """Writes `payload` (indented) to `path`, creating its folder."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=_jsonable)
        f.write("\n")


def _jsonable(x: Any) -> Any:
    if isinstance(x, (np.generic, jax.Array)):
        return np.asarray(x).tolist()
    raise TypeError(f"write_json: cannot serialise {type(x).__name__}")


def preset_decoder_config(p: dict[str, Any], *, param_dtype: str = "float32"):
    """The scanned Llama-style `DecoderConfig` of a benchmark preset (keys hidden, inter,
    layers, heads, kv, vocab, dtype, remat; head_dim = hidden / heads)."""
    from jaxmethods.models.decoder import DecoderConfig

    return DecoderConfig(
        vocab_size=p["vocab"], hidden_size=p["hidden"], intermediate_size=p["inter"],
        num_layers=p["layers"], num_heads=p["heads"], num_kv_heads=p["kv"],
        head_dim=p["hidden"] // p["heads"], dtype=p["dtype"], param_dtype=param_dtype,
        scan_layers=True, remat=p["remat"],
    )  # fmt: skip


_HLO_INSTR = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = [^\n]*?metadata=\{([^}]*)\}", re.M)
_TABLE_ROW = re.compile(r"^(\d+) (.*)$")
_KV = re.compile(r"(\w+)=(\d+)")
_OWN_CODE = ("jaxmethods/", "optax/", "benchmarks/")


def _tables(hlo_text: str) -> dict[str, dict[int, str]]:
    """The FileNames / FunctionNames / FileLocations / StackFrames tables of an HLO module."""
    tables: dict[str, dict[int, str]] = {}
    current = None
    for line in hlo_text.splitlines():
        if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            current = tables.setdefault(line, {})
            continue
        m = _TABLE_ROW.match(line)
        if current is not None and m:
            current[int(m.group(1))] = m.group(2).strip().strip('"')
        elif not line.strip() or line.startswith("%") or line.startswith("HloModule"):
            current = None if line.strip() else current
    return tables


def hlo_op_sources(hlo_text: str) -> dict[str, tuple[str, bool]]:
    """HLO instruction name -> ("dir/file.py:function" of the innermost frame in the project,
    optax or the benchmark; in the backward pass) from a compiled module's text
    (`compiled.as_text()`: its metadata and stack-frame tables). Backward = JAX `transpose(`."""
    t = _tables(hlo_text)
    files, funcs = t.get("FileNames", {}), t.get("FunctionNames", {})
    locs = {
        k: dict((a, int(b)) for a, b in _KV.findall(v))
        for k, v in t.get("FileLocations", {}).items()
    }
    frames = {
        k: dict((a, int(b)) for a, b in _KV.findall(v)) for k, v in t.get("StackFrames", {}).items()
    }

    def where(frame_id: int) -> str:
        seen = set()
        while frame_id in frames and frame_id not in seen:
            seen.add(frame_id)
            loc = locs.get(frames[frame_id].get("file_location_id", -1), {})
            path = files.get(loc.get("file_name_id", -1), "")
            for root in _OWN_CODE:
                if root in path:
                    short = "/".join(path.split(root, 1)[1].split("/")[-2:])
                    return f"{short}:{funcs.get(loc.get('function_name_id', -1), '?')}"
            frame_id = frames[frame_id].get("parent_frame_id", -1)
        return "?"

    out: dict[str, tuple[str, bool]] = {}
    for name, meta in _HLO_INSTR.findall(hlo_text):
        op_name = re.search(r'op_name="([^"]*)"', meta)
        frame = re.search(r"stack_frame_id=(\d+)", meta)
        src = where(int(frame.group(1))) if frame else "?"
        out[name] = (src, "transpose(" in (op_name.group(1) if op_name else ""))
    return out


def profile_ops(
    call: Callable[[], Any], hlo_text: str, *, iters: int = 5, log_dir: str | None = None
) -> dict[str, Any]:
    """Per-op device time of `iters` calls under `jax.profiler.trace`, summed by HLO op and by
    the Python source file that emitted it (forward / backward apart).

    Reads the Perfetto JSON the profiler writes (no TensorBoard plugin needed). Returns
    `{"total_op_s", "by_source": [{"source", "backward", "s", "share"}], "top_ops": [...]}`
    (times per call). On CPU, XLA runs independent ops on a thread pool, so op times can sum
    to more than the wall time.
    """
    import glob
    import gzip
    import tempfile

    jax.block_until_ready(call())
    log_dir = log_dir or tempfile.mkdtemp(prefix="jax_profile_")
    with jax.profiler.trace(log_dir, create_perfetto_trace=True):
        for _ in range(iters):
            jax.block_until_ready(call())
    (path,) = sorted(glob.glob(os.path.join(log_dir, "**", "perfetto_trace.json.gz"),
                               recursive=True))[-1:]  # fmt: skip
    with gzip.open(path) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    by_op: dict[str, float] = {}
    for e in events:
        op = (e.get("args") or {}).get("hlo_op")
        if e.get("ph") == "X" and op:
            by_op[op] = by_op.get(op, 0.0) + e.get("dur", 0.0) * 1e-6 / iters
    sources = hlo_op_sources(hlo_text)
    by_src: dict[tuple[str, bool], float] = {}
    for op, s in by_op.items():
        key = sources.get(op, ("?", False))
        by_src[key] = by_src.get(key, 0.0) + s
    total = sum(by_op.values()) or 1.0
    return {
        "total_op_s": total,
        "by_source": [
            {"source": k[0], "backward": k[1], "s": v, "share": v / total}
            for k, v in sorted(by_src.items(), key=lambda kv: -kv[1])
        ],
        "top_ops": [
            {"op": op, "source": sources.get(op, ("?", False))[0], "s": s, "share": s / total}
            for op, s in sorted(by_op.items(), key=lambda kv: -kv[1])[:15]
        ],
        "trace_dir": log_dir,
    }
