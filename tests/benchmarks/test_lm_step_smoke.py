"""The shared timing helpers, and (slow, with torch) benchmarks/lm_step.py against PyTorch on a
tiny config. The JAX side alone runs in `make test` as part of the smoke suite
(tests/benchmarks/test_suite.py, `check_lm_step`)."""

import importlib.util
import json
import os
import types

import jax
import jax.numpy as jnp
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(name: str) -> types.ModuleType:
    """Imports benchmarks/<name>.py by path (benchmarks/ is a script folder, not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"benchmarks.{name}", os.path.join(ROOT, "benchmarks", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def timing():
    return _load("timing")


def test_peak_table_and_mfu(timing):
    fake = lambda kind, platform="gpu": types.SimpleNamespace(device_kind=kind, platform=platform)
    assert timing.device_peak_flops(fake("NVIDIA H100 80GB HBM3")) == 989e12
    assert timing.device_peak_flops(fake("NVIDIA H200")) == 989e12
    assert timing.device_peak_flops(fake("NVIDIA A100-SXM4-40GB")) == 312e12
    assert timing.device_peak_flops(fake("TPU v4", "tpu")) == 275e12
    assert timing.device_peak_flops(fake("TPU v5 lite", "tpu")) == 197e12
    assert timing.device_peak_flops(fake("TPU v5p", "tpu")) == 459e12
    assert timing.device_peak_flops(fake("Some future chip")) is None
    assert timing.device_peak_flops(fake("cpu", "cpu")) is None
    assert timing.mfu(1e12, 1.0, [fake("NVIDIA H100")] * 2) == pytest.approx(1e12 / (2 * 989e12))
    assert timing.mfu(1e12, 1.0, jax.devices()) is None  # CPU: no MFU


def test_compile_timing_and_xla_flops(timing):
    a, b = jnp.ones((32, 48)), jnp.ones((48, 16))
    compiled, seconds = timing.compile_jitted(jax.jit(jnp.matmul), a, b)
    assert seconds > 0
    assert timing.xla_flops(compiled) == pytest.approx(2 * 32 * 48 * 16, rel=0.05)
    stats = timing.time_calls(lambda: compiled(a, b), warmup=1, iters=5)
    assert len(stats["samples_s"]) == 5
    assert stats["min_s"] <= stats["median_s"] <= stats["p90_s"]


def test_compiler_options_are_parsed_typed_and_reach_xla(timing):
    parsed = timing.parse_compiler_options(
        ["xla_cpu_enable_fast_math=false", "xla_cpu_prefer_vector_width=256", "a=b"]
    )
    assert parsed == {"xla_cpu_enable_fast_math": False, "xla_cpu_prefer_vector_width": 256,
                      "a": "b"}  # fmt: skip
    with pytest.raises(ValueError, match="name=value"):
        timing.parse_compiler_options(["xla_cpu_enable_fast_math"])
    a = jnp.ones((4, 4))
    with pytest.raises(Exception, match="xla_cpu_no_such_option"):  # XLA saw the options
        timing.compile_jitted(jax.jit(jnp.sin), a, compiler_options={"xla_cpu_no_such_option": 1})


TINY_ARGS = ["--size", "tiny", "--batch", "4", "--seq", "16", "--steps", "2", "--warmup", "1",
             "--gen-batch", "2", "--gen-prompt", "6", "--gen-new", "3", "--gen-iters", "1",
             "--beams", "2"]  # fmt: skip


def _check_jax_part(saved: dict) -> None:
    train = saved["jax"]["train"]
    assert train["step"]["median_s"] > 0 and train["compile_s"] > 0
    assert train["tokens_per_s"] == pytest.approx(4 * 16 / train["step"]["median_s"])
    assert train["flops_source"] == "xla_cost_analysis" and train["flops_per_step_xla"] > 0
    assert train["mfu"] is None  # CPU
    assert saved["env"]["mesh_shape"] == {"data": 4, "fsdp": 1, "tensor": 1}
    for name in ("greedy", "beam"):
        assert saved["jax"]["generate"][name]["tokens_per_s"] > 0


@pytest.mark.slow
def test_lm_step_tiny_against_torch(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "lm_step.json"
    _load("lm_step").main([*TINY_ARGS, "--out", str(out)])
    saved = json.loads(out.read_text())
    _check_jax_part(saved)
    # Same weights (exported with save_pretrained) and batch: the same first loss.
    assert saved["torch"]["first_loss"] == pytest.approx(
        saved["jax"]["train"]["first_loss"], abs=1e-4
    )
    assert set(saved["speedup_vs_torch"]) == {"train_step", "generate_greedy", "generate_beam"}
