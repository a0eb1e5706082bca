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


def compile_jitted(fn: Any, *args: Any) -> tuple[Any, float]:
    """AOT-compiles a jitted function for `args`: (executable, seconds spent lowering+compiling).

    The executable is called with the same `args` (no static arguments).
    """
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start


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
