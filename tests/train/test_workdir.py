"""The workdir lock (one run at a time, stale locks taken over) and config changes on resume."""

import json
import os
import socket
import subprocess
import sys

import pytest

from jaxmethods.train.workdir import (
    ConfigChangeError,
    RunLock,
    WorkdirLockedError,
    atomic_write,
    check_config_change,
    diff_configs,
    is_run_shape,
    write_config,
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(workdir, **record):
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, ".lock"), "w") as f:
        json.dump(record, f)


def test_lock_records_holder_and_refuses_a_second_run(tmp_path):
    wd = str(tmp_path / "run")
    with RunLock(wd):
        with open(os.path.join(wd, ".lock")) as f:
            rec = json.load(f)
        assert rec["pid"] == os.getpid() and rec["host"] == socket.gethostname()
        assert rec["since"].endswith("+00:00")
        with pytest.raises(WorkdirLockedError) as e:
            RunLock(wd).acquire()
        msg = str(e.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()} since {rec['since']}" in msg
    assert not os.path.exists(os.path.join(wd, ".lock"))
    RunLock(wd).acquire().release()  # free again


def test_lock_released_on_exception(tmp_path):
    wd = str(tmp_path)
    with pytest.raises(RuntimeError, match="boom"), RunLock(wd):
        raise RuntimeError("boom")
    assert not os.path.exists(os.path.join(wd, ".lock"))


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    wd = str(tmp_path)
    dead = _dead_pid()
    _write_lock(wd, pid=dead, host=socket.gethostname(), since="2020-01-01T00:00:00+00:00")
    with caplog.at_level("WARNING"), RunLock(wd) as lock:
        assert lock.read()["pid"] == os.getpid()
    assert "stale lock" in caplog.text and f"pid {dead}" in caplog.text


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_reused_pid_with_another_start_time_is_stale(tmp_path):
    wd = str(tmp_path)
    # Our own pid is alive, but a different process start time means the pid was reused.
    _write_lock(wd, pid=os.getpid(), host=socket.gethostname(), since="x", pid_start="1")
    if RunLock(wd)._stale({"pid": os.getpid(), "host": socket.gethostname()}):
        pytest.fail("a live pid without a start time must count as alive")
    with RunLock(wd) as lock:
        assert lock.read()["token"] == lock.token


def test_lock_of_another_host_or_unreadable_is_never_taken_over(tmp_path):
    wd = str(tmp_path)
    _write_lock(wd, pid=_dead_pid(), host="some-other-host", since="then")
    with pytest.raises(WorkdirLockedError, match="host some-other-host since then"):
        RunLock(wd).acquire()
    with open(os.path.join(wd, ".lock"), "w") as f:
        f.write("{torn")
    with pytest.raises(WorkdirLockedError, match=r"pid \? on host \?"):
        RunLock(wd).acquire()


def test_release_keeps_a_lock_that_is_no_longer_ours(tmp_path):
    wd = str(tmp_path)
    lock = RunLock(wd).acquire()
    _write_lock(wd, pid=1, host="elsewhere", since="now", token="theirs")
    lock.release()
    assert os.path.exists(os.path.join(wd, ".lock"))


def test_run_shape_rule():
    shape = ["model.hidden_size", "data.path", "seed", "optim.micro_batch_size"]
    shape += ["optim.grad_accum", "epochs", "mesh.data", "method", "variants", "meta.inner.steps"]
    for key in shape:
        assert is_run_shape(key), key
    other = ["optim.lr", "progress", "name", "log_every", "checkpoint_every", "eval.batch_size"]
    other += ["eval.every_epochs", "decode.num_beams", "keep_checkpoints", "data.decoded_dir"]
    for key in other:
        assert not is_run_shape(key), key


def test_diff_configs_flattens_and_reports_added_and_removed_keys():
    old = {"optim": {"lr": 0.01, "b1": 0.9}, "seed": 1, "gone": 3}
    new = {"optim": {"lr": 1e30, "b1": 0.9}, "seed": 2, "added": [1, 2]}
    changes = {c["key"]: c for c in diff_configs(old, new)}
    assert set(changes) == {"optim.lr", "seed", "gone", "added"}
    assert changes["optim.lr"]["old"] == 0.01 and changes["optim.lr"]["new"] == 1e30
    assert not changes["optim.lr"]["run_shape"] and changes["seed"]["run_shape"]
    assert changes["gone"]["new"] == "<absent>" and changes["added"]["old"] == "<absent>"


def _history(wd):
    path = os.path.join(wd, "config_history.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_resume_with_changed_config(tmp_path, caplog):
    wd = str(tmp_path)
    old = {"method": "m", "seed": 1, "optim": {"lr": 0.01}, "model": {"width": 8}}
    write_config(wd, json.dumps(old))
    # Nothing changed: no history.
    assert check_config_change(wd, old) == []
    # Before any output exists, even run-shape changes are only recorded.
    assert len(check_config_change(wd, {**old, "seed": 2})) == 1
    os.makedirs(os.path.join(wd, "checkpoints", "100"))
    # A non-shape change on resume: warns and is recorded.
    with caplog.at_level("WARNING"):
        changes = check_config_change(wd, {**old, "optim": {"lr": 1e30}})
    assert [c["key"] for c in changes] == ["optim.lr"]
    assert "optim.lr: 0.01 -> 1e+30" in caplog.text
    # A run-shape change on resume refuses, naming the key, unless allowed.
    with pytest.raises(ConfigChangeError, match=r"model\.width: 8 -> 16.*--allow_config_change"):
        check_config_change(wd, {**old, "model": {"width": 16}})
    check_config_change(wd, {**old, "model": {"width": 16}}, allow_change=True)
    hist = _history(wd)
    assert [h["changes"][0]["key"] for h in hist] == ["seed", "optim.lr", "model.width"]
    assert [h["resume"] for h in hist] == [False, True, True]
    assert hist[-1]["allowed"] and hist[-1]["changes"][0]["new"] == 16


def test_unreadable_stored_config_names_itself(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigChangeError, match=r"config\.json: unreadable stored config"):
        check_config_change(str(tmp_path), {"a": 1})


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "config.json")
    atomic_write(path, "one")
    atomic_write(path, "two")
    assert (tmp_path / "config.json").read_text() == "two"
    assert os.listdir(tmp_path) == ["config.json"]
    write_config(str(tmp_path), '{"a": 1}')
    assert json.loads((tmp_path / "config.json").read_text()) == {"a": 1}
