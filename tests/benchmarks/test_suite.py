"""benchmarks/suite.py: headline extraction, failed rows (subprocess and in-process), and the
whole smoke tier as one test: `python benchmarks/suite.py --smoke` in a child process (so its
XLA flags apply), then a check per benchmark of the JSON it wrote."""

import importlib.util
import json
import os
import re
import subprocess
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
        "drc_over_lm": 1.4,
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
        "drc_over_lm": 1.4,
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


IN_PROCESS_FAILURES = {  # main(argv) body -> (exit status, text the tail must hold)
    "exit3": ("print('about to fail'); sys.exit(3)", 3, "about to fail"),
    "exit_message": ("raise SystemExit('bad --size')", 1, "bad --size"),
    "exception": ("raise ValueError('shape (2, 3)')", 1, "ValueError: shape (2, 3)"),
    "timeout": ("time.sleep(30)", 124, "BenchmarkTimeout"),
    "no_json": ("print('wrote nothing')", 0, None),
}


@pytest.mark.parametrize("case", sorted(IN_PROCESS_FAILURES))
def test_an_in_process_failure_is_the_same_row(suite, tmp_path, case):
    body, rc, text = IN_PROCESS_FAILURES[case]
    script = tmp_path / f"{case}.py"
    script.write_text(f"import sys, time\n\ndef main(argv):\n    {body}\n")
    bench = suite.Bench(case, smoke=("--preset", "smoke"), script=str(script))
    row = suite.run_in_process(bench, "smoke", str(tmp_path), 0.5)
    assert row["returncode"] == rc
    assert row["command"].endswith(f"{case}.py --preset smoke --out {tmp_path}/{case}.json")
    assert "headline" not in row  # no JSON: nothing to read, even with exit status 0
    if text is not None:
        assert text in row["error_tail"]
    status = "ok" if rc == 0 else f"failed (rc {rc})"
    assert f"| {case} | {status} |" in suite.markdown([row], "smoke", "cpu")


def test_unknown_benchmark_and_jobs_outside_smoke_are_errors(suite, tmp_path):
    with pytest.raises(SystemExit, match="unknown benchmark"):
        suite.main(["--smoke", "--only", "nope", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--jobs is for the smoke tier"):
        suite.main(["--jobs", "2", "--out", str(tmp_path)])


# --- the whole smoke tier, once ---------------------------------------------------------------
# One test (pytest-xdist would run a module fixture once per worker): the suite as the CLI runs
# it, then every benchmark's JSON checked by its `check_<name>` below.


def run_smoke_suite(out) -> subprocess.CompletedProcess:
    """`python benchmarks/suite.py --smoke --jobs 1 --out <out>` in a child process (one job:
    pytest-xdist's other worker has the other core), on one CPU device as from the command line
    (the tests' fake-device flag is dropped)."""
    flags = re.sub(
        r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", "")
    )
    env = {**os.environ, "XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "suite.py"), "--smoke", "--jobs", "1",
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


def test_whole_smoke_suite(suite, tmp_path):
    proc = run_smoke_suite(tmp_path)
    payload = json.loads((tmp_path / "suite.json").read_text())
    rows = payload["rows"]
    failed = {r["benchmark"]: r.get("error_tail") for r in rows if r["returncode"]}
    assert proc.returncode == 0 and not failed, f"{failed}\n{(proc.stdout + proc.stderr)[-3000:]}"
    assert [r["benchmark"] for r in rows] == [b.name for b in suite.BENCHMARKS]
    assert payload["in_process"] and payload["smoke_xla_flags"] and payload["jobs"] == 1
    table = (tmp_path / "suite.md").read_text()
    errors = {}
    for row in rows:
        name = row["benchmark"]
        assert f"| {name} | ok |" in table and row["headline"], f"{name}: no headline number"
        try:
            CHECKS[name](json.loads((tmp_path / f"{name}.json").read_text()))
        except Exception as e:  # every benchmark is checked; all failures are reported
            errors[name] = f"{type(e).__name__}: {e}"
    assert not errors, errors


def _ratios(median: dict, base: str, ratios: dict) -> None:
    """`ratios` are median[k] / median[base], recomputed here."""
    assert set(ratios) == set(median)
    for k, v in ratios.items():
        assert v == pytest.approx(median[k] / median[base])


def check_lm_step(r):
    train, (b, t) = r["jax"]["train"], (r["config"]["batch"], r["config"]["seq"])
    assert train["step"]["median_s"] > 0 and train["compile_s"] > 0
    assert train["tokens_per_s"] == pytest.approx(b * t / train["step"]["median_s"])
    assert train["flops_source"] == "xla_cost_analysis" and train["flops_per_step_xla"] > 0
    assert train["mfu"] is None  # CPU
    assert r["env"]["mesh_shape"] == {"data": 1, "fsdp": 1, "tensor": 1}
    for name in ("greedy", "beam"):
        assert r["jax"]["generate"][name]["tokens_per_s"] > 0
    assert r["jax"]["generate"]["beam"]["num_beams"] == 2 and r["torch"] is None


def check_dpo_step(r):
    _ratios(r["median_step_s"], "sft", r["ratio_to_sft"])
    tokens = 2 * r["config"]["pairs"] * r["config"]["seq"]
    for k, s in r["median_step_s"].items():
        assert r["tokens_per_s"][k] == pytest.approx(tokens / s)
    assert {"sft", "dpo"} <= set(r["median_step_s"])


def check_baldro_step(r):
    _ratios(r["median_step_s"], "npo", r["ratio_to_npo"])
    assert {"npo", "npo_group"} <= set(r["median_step_s"])
    assert r["group_within_1_5x"] == (r["ratio_to_npo"]["npo_group"] <= 1.5)


def check_igd_step(r):
    step = r["train_step"]
    assert step["igd_over_sft_median"] == pytest.approx(
        step["igd"]["median_s"] / step["sft"]["median_s"]
    )
    assert step["igd_over_sft_flops"] > 1  # the weighting adds work
    assert r["trie"]["items"] == r["params"]["items"]
    for mode in r["decode"].values():
        base = mode["unconstrained"]["min_s"]
        assert mode["igd_over_unconstrained"] == pytest.approx(mode["igd_alpha0.2"]["min_s"] / base)


def check_grpo_step(r):
    ours = r["jaxmethods"]
    assert ours["iteration_s"] > 0 and ours["rollout_s"] > 0 and ours["update_s"] > 0
    assert ours["completion_length"] <= r["config"]["max_new_tokens"]


def check_dep_step(r):
    assert r["dep_over_full"] == pytest.approx(
        r["median_step_s"]["dep"] / r["median_step_s"]["full"]
    )
    assert r["trainable_params"]["dep"] < r["trainable_params"]["full"]


def check_drc_step(r):
    assert r["drc_over_lm"] == pytest.approx(r["median_step_s"]["drc"] / r["median_step_s"]["lm"])
    assert r["sampler_host_s"]["median_s"] > 0


def check_multi_lora(r):
    ratio, median = r["ratio"], r["median_step_s"]
    for kind in ("forward", "train"):
        want = median[f"multi4/{kind}"] / median[f"multi1/{kind}"]
        assert ratio[f"multi4_over_multi1/{kind}"] == pytest.approx(want)
    own = r["adapters_bytes"]["multi4"]["adapter_bytes"]
    growth = r["memory_growth_4_vs_1"]
    assert growth["extra_adapters_own_bytes"] == sum(own.values()) - own["predictor"]
    assert growth["resident_bytes"] == r["resident_bytes"]["multi4"] - r["resident_bytes"]["multi1"]


def check_mrm_meta_step(r):
    [row] = r["results"]
    assert row["speedup_vs_jax_loop"] == pytest.approx(
        row["jax_loop"]["median_s"] / row["vmapped"]["median_s"]
    )
    assert row["vmapped"]["users_per_s"] == pytest.approx(row["tasks"] / row["vmapped"]["median_s"])


def check_cf_epoch(r):
    assert [(x["model"], x["dim"]) for x in r["results"]] == [("bpr", 16), ("lightgcn", 16)]
    for x in r["results"]:
        assert x["jax"]["epoch_median_s"] > 0 and x["jax"]["eval_median_s"] > 0


def check_retrieval(r):
    [row] = r["results"]
    assert row["ours_qps_median"] == pytest.approx(row["queries"] / row["ours"]["median_s"])


def check_fintmm_retrieval(r):
    for row in r["results"]:
        assert row["dense_window_hits_in_window"] is True
        assert all(v is True for k, v in row.items() if k.endswith("_equals_memory"))


def check_encode(r):
    ours = r["ours"]
    assert ours["embeddings_per_s"] == pytest.approx(r["num_texts"] / ours["median_s"])


def check_memory_plan(r):
    assert [(c["mode"], c["devices"], c["seq"]) for c in r["cells"]] == [
        ("ft", 1, 32),
        ("lora", 1, 32),
    ]
    ft, lora = r["cells"]
    assert lora["trainable_params"] < ft["trainable_params"] == ft["total_params"]
    assert ft["peak_bytes_per_device"] > lora["peak_bytes_per_device"] > 0


CHECKS = {name[len("check_") :]: fn for name, fn in globals().items() if name.startswith("check_")}


def test_every_benchmark_has_a_check(suite):
    assert set(CHECKS) == {b.name for b in suite.BENCHMARKS}
