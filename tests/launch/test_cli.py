"""`launch/run.py` as a user meets it: help, one-line errors and exit codes, the workdir lock,
and config changes on resume. A test method (`fake_method.py`) is registered in a wrapper, so the
launcher is exercised without training anything (`fake_method/`, `fake_config.py`)."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RUN = os.path.join(ROOT, "launch", "run.py")
FAKE_CONFIG = os.path.join(HERE, "fake_config.py")
WRAPPER = (
    "import runpy, sys\n"
    f"sys.path.insert(0, {HERE!r})\n"
    "import jaxmethods.methods as m\n"
    "m.METHODS['fake'] = 'fake_method.run:run'\n"
    f"sys.argv = [{RUN!r}, *sys.argv[1:]]\n"
    f"runpy.run_path({RUN!r}, run_name='__main__')\n"
)


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(var, None)
    return env


def launch(*args, fake=True, **kwargs):
    cmd = [sys.executable, "-c", WRAPPER] if fake else [sys.executable, RUN]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=120, **kwargs
    )


def fake(behavior, workdir, *more):
    return launch("--config", f"{FAKE_CONFIG}:{behavior}", "--workdir", str(workdir), *more)


def _error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_help_exits_0_and_lists_every_method_with_its_variants():
    proc = launch("--help", fake=False)
    assert proc.returncode == 0, proc.stderr
    from jaxmethods.methods import METHODS

    for name in METHODS:
        path = os.path.join(ROOT, "configs", f"{name}.py")
        spec = importlib.util.spec_from_file_location(f"help_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        line = next(x for x in proc.stdout.splitlines() if x.strip().startswith(name + " "))
        assert line.split(": ", 1)[1].split(", ") == list(module.VARIANTS), line
    assert "--allow_config_change" in proc.stdout and "--num_processes" in proc.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--config.optim.lrr=1"],
            "error: did you mean --config.optim.lr? --config.optim.lrr: unknown config key 'lrr'",
        ),
        (
            ["--config.optimm.lr=1"],
            "error: did you mean --config.optim.lr? --config.optimm.lr: unknown config key",
        ),
        (["--workdirr=x"], "error: did you mean --workdir? --workdirr: unknown flag"),
        (["--config.optim.lr=abc"], "error: flag --config.optim.lr=abc: could not convert"),
    ],
)
def test_typo_in_a_flag_is_one_line_with_the_suggestion_first(args, expected):
    proc = launch("--config", "configs/mrm.py:tiny", *args, fake=False)
    assert proc.returncode == 2
    assert _error_line(proc).startswith(expected)


def test_bad_variant_and_missing_config_file_exit_2():
    proc = launch("--config", "configs/mrm.py:tinyy", fake=False)
    assert proc.returncode == 2 and "unknown variant 'tinyy'" in _error_line(proc)
    proc = launch("--config", "configs/nope.py", fake=False)
    assert proc.returncode == 2 and "configs/nope.py" in _error_line(proc)


def test_invalid_config_value_exits_2_before_writing_anything(tmp_path):
    wd = tmp_path / "run"
    proc = fake("ok", wd, "--config.epochs=-3")
    assert proc.returncode == 2
    assert _error_line(proc) == (
        "error: ConfigError: config.epochs: must be > 0, got -3 ('epochs' fields are positive)"
    )
    proc = fake("ok", wd, "--config.behavior=nann")
    assert proc.returncode == 2
    assert _error_line(proc).endswith("; did you mean 'nan'?")
    assert not wd.exists()


@pytest.mark.parametrize(
    "behavior, message",
    [
        ("nan", "error: NonFiniteLossError: non-finite loss (nan) at step 3"),
        ("save_fail", "error: SaveFailedError: checkpoint of step 4 was not written"),
        ("empty", "error: ValueError: data/train.jsonl: no training examples"),
    ],
)
def test_untrustworthy_results_exit_1_with_one_line(tmp_path, behavior, message):
    proc = fake(behavior, tmp_path)
    assert proc.returncode == 1
    assert _error_line(proc).startswith(message)
    assert not (tmp_path / "summary.json").exists()
    assert not (tmp_path / ".lock").exists()
    if behavior == "nan":
        verbose = fake(behavior, tmp_path / "v", "--verbose")
        assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_preempted_exits_0_and_a_bug_keeps_its_traceback(tmp_path):
    proc = fake("preempt", tmp_path / "p")
    assert proc.returncode == 0, proc.stderr
    proc = fake("bug", tmp_path / "b")
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "KeyError" in proc.stderr


def _wait_for(path, proc, timeout=60.0):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            pytest.fail(f"the first run ended early: {proc.communicate()}")
        if time.time() > deadline:
            pytest.fail(f"{path} never appeared")
        time.sleep(0.05)


def test_second_run_in_a_workdir_refuses_and_sigterm_releases_the_lock(tmp_path):
    wd = tmp_path / "run"
    cmd = [sys.executable, "-c", WRAPPER, "--config", f"{FAKE_CONFIG}:wait", "--workdir", str(wd)]
    first = subprocess.Popen(
        cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(wd / "started", first)
        second = fake("ok", wd)
        assert second.returncode == 2
        line = _error_line(second)
        assert f"in use by pid {first.pid} on host" in line and "since" in line
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
        assert first.returncode == 128 + signal.SIGTERM
    finally:
        if first.poll() is None:
            first.kill()
    assert not (wd / ".lock").exists()
    third = fake("ok", wd)
    assert third.returncode == 0, third.stderr
    summary = json.loads((wd / "summary.json").read_text())
    assert summary["lock_pid"] == summary["pid"] != first.pid  # held by the run while it ran
    assert not (wd / ".lock").exists()


def test_resume_with_changed_config(tmp_path):
    wd = tmp_path / "run"
    assert fake("ok", wd).returncode == 0
    stored = json.loads((wd / "config.json").read_text())
    assert stored["seed"] == 0 and (wd / "summary.json").exists()
    proc = fake("ok", wd, "--config.seed=2", "--config.optim.lr=1e30")
    assert proc.returncode == 2
    assert "seed: 0 -> 2" in _error_line(proc) and "--allow_config_change" in _error_line(proc)
    assert "optim.lr" not in _error_line(proc)  # not a run-shape key: only warned about
    assert json.loads((wd / "config.json").read_text()) == stored  # untouched
    proc = fake("ok", wd, "--config.optim.lr=1e30", "--config.seed=2", "--allow_config_change")
    assert proc.returncode == 0, proc.stderr
    assert "optim.lr: 0.01 -> 1e+30" in proc.stderr and "seed: 0 -> 2" in proc.stderr
    assert json.loads((wd / "config.json").read_text())["seed"] == 2
    history = [json.loads(x) for x in (wd / "config_history.jsonl").read_text().splitlines()]
    assert len(history) == 1 and history[0]["allowed"] and history[0]["resume"]
    changes = {c["key"]: c["run_shape"] for c in history[0]["changes"]}
    assert changes == {"optim.lr": False, "seed": True}
    assert not [f for f in os.listdir(wd) if ".tmp." in f]
