"""benchmarks/memory_plan.py on the tiny preset: abstract compile, FSDP sharding, LoRA counts."""

import importlib.util
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def plan():
    spec = importlib.util.spec_from_file_location(
        "benchmarks.memory_plan", os.path.join(ROOT, "benchmarks", "memory_plan.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _param_count(cfg) -> int:
    """Llama parameters counted by hand from the architecture (untied head)."""
    h, f, v, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_layers"]
    q = cfg["num_heads"] * cfg["head_dim"]
    kv = cfg["num_kv_heads"] * cfg["head_dim"]
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * f + 2 * h
    return n * per_layer + 2 * v * h + h


def test_full_finetune_cell_counts_fp32_state_and_shards_it(plan):
    cfg = plan.MODELS["tiny"]
    one = plan.plan_cell("tiny", "ft", "none", 1, 32, chunk=0, lora_rank=4)
    two = plan.plan_cell("tiny", "ft", "none", 2, 32, chunk=0, lora_rank=4)
    n = _param_count(cfg)
    assert one["total_params"] == one["trainable_params"] == n
    # The donated state (fp32 params + AdamW mu and nu) is an argument aliased to the output.
    state_bytes = 3 * 4 * n
    arg = one["memory"]["argument_size_in_bytes"]
    assert state_bytes <= arg <= state_bytes + 4096
    assert one["memory"]["alias_size_in_bytes"] >= state_bytes
    assert one["peak_bytes_per_device"] >= arg + one["memory"]["temp_size_in_bytes"] - 4096
    # Over 2 FSDP devices every large matrix is split: the per-device state is about half.
    assert two["memory"]["argument_size_in_bytes"] < 0.75 * arg


def test_lora_cell_trains_only_the_factors(plan):
    cfg = plan.MODELS["tiny"]
    cell = plan.plan_cell("tiny", "lora", "full", 1, 32, chunk=16, lora_rank=4)
    h, f, q = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_heads"] * cfg["head_dim"]
    kv = cfg["num_kv_heads"] * cfg["head_dim"]
    r = 4
    per_layer = r * ((h + q) + 2 * (h + kv) + (q + h) + 2 * (h + f) + (f + h))
    assert cell["trainable_params"] == cfg["num_layers"] * per_layer
    assert cell["total_params"] == _param_count(cfg) + cell["trainable_params"]
    assert cell["fits"] == {"H100 (80 GB)": True, "H200 (141 GB)": True}
    md = plan.markdown([{k: v for k, v in cell.items() if k != "_compiled"}])
    assert md.count("\n") == 3 and "| tiny | lora | full | 1 | 32 |" in md
    assert np.isfinite(cell["compile_s"])
