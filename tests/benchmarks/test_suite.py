"""benchmarks/suite.py: headline extraction, a failing benchmark's row, and the smoke tier."""

import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location(
        "benchmarks.suite", os.path.join(ROOT, "benchmarks", "suite.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_headline_keeps_ratios_throughput_and_memory_only(suite):
    result = {
        "benchmark": "x",
        "env": {"tokens_per_s": 1.0},  # environment blocks are skipped
        "ratio_to_sft": {"dpo": 1.2, "sft": 1.0},
        "tokens_per_s": {"dpo": 10.0},
        "median_step_s": {"dpo": 0.5},
        "compile_s": 3.0,
        "ok": True,
        "results": [
            {"model": "bpr", "dim": 64, "jax": {"epoch_median_s": 0.2, "epoch_compile_s": 1}},
            {"model": "sgl", "dim": 64, "jax": {"epoch_median_s": 0.4}},
        ],
    }
    assert suite.headline(result) == {
        "ratio_to_sft/dpo": 1.2,
        "ratio_to_sft/sft": 1.0,
        "tokens_per_s/dpo": 10.0,
        "results[bpr-64]/jax/epoch_median_s": 0.2,
        "results[sgl-64]/jax/epoch_median_s": 0.4,
    }


def test_a_failing_benchmark_is_a_row_and_a_nonzero_exit(suite, tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("import sys\nprint('about to fail')\nsys.exit(3)\n")
    row = suite.run_one(
        suite.Bench("broken", smoke=(), script=str(script)), "smoke", str(tmp_path), 60.0
    )
    assert row["returncode"] == 3 and "about to fail" in row["error_tail"]
    table = suite.markdown([row], "smoke", "cpu")
    assert "| broken | failed (rc 3) |" in table


def test_smoke_runs_a_real_benchmark_end_to_end(suite, tmp_path):
    rc = suite.main(["--smoke", "--only", "retrieval", "--out", str(tmp_path)])
    assert rc == 0
    payload = json.loads((tmp_path / "suite.json").read_text())
    [row] = payload["rows"]
    assert row["benchmark"] == "retrieval" and row["returncode"] == 0
    [(name, qps)] = row["headline"].items()
    assert name.endswith("ours_qps_median") and qps > 0
    assert "| retrieval | ok |" in (tmp_path / "suite.md").read_text()


@pytest.mark.slow
def test_whole_smoke_suite(suite, tmp_path):
    assert suite.main(["--smoke", "--out", str(tmp_path)]) == 0
