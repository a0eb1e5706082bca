"""Two processes on one machine through `jax.distributed` (gloo CPU collectives), launched exactly as
on a cluster: `launch/run.py` with `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES` and
`JAX_PROCESS_ID`, 2 CPU devices each.

For MRM `tiny` and SFT `tiny`: the losses equal those of one process with 4 devices; only process
0 writes `metrics.jsonl` / `summary.json`; the 2-process checkpoint restores in 1 process (the
resumed run continues from the 2-process step and matches a 1-process run resumed the same way).
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # about 2-4 minutes per method on 2 CPU cores (compilation)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(ROOT, "launch", "run.py")
CASES = {
    # tiny MRM runs on a 1-device mesh; spread it over every device, 4 tasks per meta-batch.
    "mrm": ("configs/mrm.py:tiny", ["--config.mesh.data=-1", "--config.meta.tasks_per_batch=4"]),
    "sft": ("configs/sft.py:tiny", ["--config.mesh.data=-1"]),
}
MORE_EPOCHS = {"mrm": "--config.epochs=5", "sft": "--config.epochs=3"}


def _env(devices: int, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env |= {
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
        **extra,
    }
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _args(method: str, workdir, *more: str) -> list[str]:
    config, overrides = CASES[method]
    return [sys.executable, RUN, "--config", config, "--workdir", str(workdir), *overrides, *more]


def run_one(method: str, workdir, *more: str) -> None:
    proc = subprocess.run(
        _args(method, workdir, *more),
        cwd=ROOT,
        env=_env(4),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


# Each process runs the launcher under a tracer that lists the files Python wrote: opened for
# writing, or the destination of os.replace / os.rename / os.link (atomic writes, the lock).
TRACED = """
import atexit, builtins, io, os, runpy, sys
real_open, written = builtins.open, set()
def traced_open(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
        written.add(os.path.abspath(os.fspath(file)))
    return real_open(file, mode, *args, **kwargs)
def traced(fn):
    def wrapper(src, dst, *args, **kwargs):
        written.add(os.path.abspath(os.fspath(dst)))
        return fn(src, dst, *args, **kwargs)
    return wrapper
builtins.open = io.open = traced_open
os.replace, os.rename, os.link = traced(os.replace), traced(os.rename), traced(os.link)
report = sys.argv.pop(1)
atexit.register(lambda: real_open(report, "w").write("\\n".join(sorted(written))))
sys.argv[0] = sys.argv[1]
del sys.argv[1]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_two(method: str, workdir, reports) -> list[str]:
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TRACED, str(reports[i]), *_args(method, workdir)[1:]],
            cwd=ROOT,
            env=_env(
                2,
                JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=600)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"process {i}:\n{log[-4000:]}"
        assert f"process {i} of 2 (2 local / 4 global devices)" in log, log[-2000:]
    return logs


def _written(report, workdir) -> set[str]:
    """Relative paths (outside checkpoints/) of the files a process wrote in `workdir`."""
    paths = [p for p in report.read_text().splitlines() if p]
    root = os.path.abspath(workdir) + os.sep
    inside = [os.path.relpath(p, root) for p in paths if p.startswith(root)]
    return {p for p in inside if not p.startswith("checkpoints")}


def _rows(workdir) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _losses(workdir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in _rows(workdir) if "loss" in r}


def _same_metrics(a: list[dict], b: list[dict], rtol: float = 1e-5) -> None:
    """Rows agree step for step on every metric but timings (`*_per_s`, `*time*`)."""
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        keys = sorted(k for k in ra if not k.endswith("_per_s") and "time" not in k)
        assert keys == sorted(k for k in rb if not k.endswith("_per_s") and "time" not in k)
        np.testing.assert_allclose(
            [ra[k] for k in keys], [rb[k] for k in keys], rtol=rtol, err_msg=f"step {ra['step']}"
        )


@pytest.mark.parametrize("method", sorted(CASES))
def test_two_processes_match_one_and_their_checkpoint_restores_in_one(tmp_path, method):
    one, two = tmp_path / "one", tmp_path / "two"
    reports = [tmp_path / "written0.txt", tmp_path / "written1.txt"]
    run_two(method, two, reports)
    run_one(method, one)

    # Same losses, step for step (float32; the cross-process all-reduce may reorder sums), and
    # the same other metrics (token counts, gradient norms, evaluations).
    l1, l2 = _losses(one), _losses(two)
    assert l1 and sorted(l1) == sorted(l2)
    np.testing.assert_allclose([l2[s] for s in sorted(l2)], [l1[s] for s in sorted(l1)], rtol=1e-6)
    _same_metrics(_rows(two), _rows(one))
    # Process 0 alone writes the run's files; each logged step appears once.
    w0, w1 = _written(reports[0], two), _written(reports[1], two)
    assert {"metrics.jsonl", "summary.json", "config.json", ".lock"} <= w0, w0
    assert not w1, f"process 1 wrote {sorted(w1)}"
    steps = [r["step"] for r in _rows(two) if "loss" in r]
    assert steps == sorted(set(steps))

    # Resume both workdirs in 1 process with more epochs: the 2-process checkpoint restores.
    final = max(r["step"] for r in _rows(two))
    before = [r for r in _rows(two) if r["step"] <= final]
    for wd in (one, two):
        run_one(method, wd, MORE_EPOCHS[method], "--allow_config_change")
    after = _rows(two)
    # Rows up to the restored step (timings included) are kept, not recomputed from step 0.
    assert [r for r in after if r["step"] <= final] == before
    r1, r2 = _losses(one), _losses(two)
    later = sorted(s for s in r2 if s > final)
    assert later and later == sorted(s for s in r1 if s > final)
    np.testing.assert_allclose([r2[s] for s in later], [r1[s] for s in later], rtol=1e-6)


def test_a_refusal_on_process_0_stops_every_process(tmp_path):
    wd = tmp_path / "busy"
    wd.mkdir()
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": "earlier"}
    (wd / ".lock").write_text(json.dumps(holder))
    port = _free_port()
    procs = [
        subprocess.Popen(
            _args("mrm", wd),
            cwd=ROOT,
            env=_env(
                2,
                JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        errs = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [2, 2], errs
    assert f"in use by pid {os.getpid()}" in errs[0]
    assert "process 0 refused to start" in errs[1]
    assert json.loads((wd / ".lock").read_text()) == holder
    assert not (wd / "config.json").exists()
