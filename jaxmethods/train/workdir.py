"""One run per workdir, and no silent config change on resume.

- `RunLock`: `<workdir>/.lock` (JSON: pid, host, start time) taken by the launcher. A second run
  in the same workdir refuses, naming the holder; a lock left by a dead process on this host is
  taken over with a warning; the lock is released on every exit path that runs Python code
  (normal end, exceptions, SIGTERM through `SystemExit`).
- `check_config_change` / `write_config`: on resume, the new config is diffed against the stored
  `config.json`. A change to a run-shape key (`is_run_shape`) refuses unless explicitly allowed;
  other changes warn. Every change is appended to `config_history.jsonl`, and `config.json` is
  replaced atomically.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import socket
import uuid
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
CONFIG_NAME = "config.json"
HISTORY_NAME = "config_history.jsonl"
# Files or folders whose presence means a previous run produced outputs here (a resume).
RUN_OUTPUTS = ("checkpoints", "metrics.jsonl", "summary.json")

# A key is run-shape when one of the words of its dotted path (split at "." and "_") is one of
# these: changing it on resume makes the checkpoint, the data order or the step count mean
# something else. Keys under `eval.` / `decode.`, frequency keys (`*every*`) and inputs read
# only for scoring (`*decoded*`, e.g. DRC's `data.decoded_dir` of externally decoded images)
# never are.
RUN_SHAPE_WORDS = frozenset(
    {"method", "model", "backbone", "lora", "data", "seed", "mesh", "batch", "accum"}
    | {"epochs", "steps", "variants", "unlearn"}
)
NEVER_RUN_SHAPE_SECTIONS = ("eval", "decode")
NEVER_RUN_SHAPE_WORDS = frozenset({"every", "decoded"})


class WorkdirLockedError(RuntimeError):
    """Another live run holds the workdir's lock."""


class ConfigChangeError(ValueError):
    """A resumed run changes run-shape keys of the stored config."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot, Linux), to tell a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = _process_start(pid)
    return started is None or now is None or now == started


def atomic_write(path: str, text: str) -> None:
    """Writes `text` to a temporary file next to `path`, then `os.replace`s it."""
    tmp = f"{path}.tmp.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@dataclass
class RunLock:
    """The workdir's lock file; use as a context manager or call `acquire` / `release`."""

    workdir: str

    def __post_init__(self):
        self.path = os.path.join(self.workdir, LOCK_NAME)
        self.token = uuid.uuid4().hex
        self.held = False

    def _record(self) -> dict:
        pid = os.getpid()
        return {
            "pid": pid,
            "host": socket.gethostname(),
            "since": _now(),
            "pid_start": _process_start(pid),
            "token": self.token,
        }

    def _create(self) -> bool:
        """Creates the lock with its full content in one step; False when it already exists."""
        tmp = f"{self.path}.{self.token}"
        with open(tmp, "w") as f:
            json.dump(self._record(), f)
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: exclusive create, then write
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as f:
                json.dump(self._record(), f)
            return True
        finally:
            os.remove(tmp)

    def read(self) -> dict | None:
        """The holder's record, `{}` for an unreadable lock file, None when there is none."""
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def acquire(self) -> RunLock:
        os.makedirs(self.workdir, exist_ok=True)
        for _ in range(3):
            if self._create():
                self.held = True
                return self
            holder = self.read()
            if holder is None:
                continue  # released between our attempt and the read
            if not self._stale(holder):
                raise WorkdirLockedError(
                    f"{self.workdir} is in use by pid {holder.get('pid', '?')} on host "
                    f"{holder.get('host', '?')} since {holder.get('since', '?')} ({self.path}); "
                    "wait for that run, use another --workdir, or delete the lock file if that "
                    "run is gone"
                )
            log.warning(
                "taking over the stale lock of %s: pid %s on host %s (since %s) is not running",
                self.workdir,
                holder.get("pid"),
                holder.get("host"),
                holder.get("since"),
            )
            stale = f"{self.path}.stale.{self.token}"
            try:
                os.rename(self.path, stale)  # only one of several racing runs wins this
                os.remove(stale)
            except FileNotFoundError:
                pass
        raise WorkdirLockedError(f"{self.path}: could not take the lock (contended)")

    def _stale(self, holder: dict) -> bool:
        if not holder:
            return False  # unreadable: never guess, the message tells how to clear it
        if holder.get("host") != socket.gethostname():
            return False  # cannot check a process on another host
        pid = holder.get("pid")
        return isinstance(pid, int) and not _alive(pid, holder.get("pid_start"))

    def release(self) -> None:
        """Removes the lock if it is still ours (idempotent)."""
        if not self.held:
            return
        self.held = False
        holder = self.read()
        if holder and holder.get("token") == self.token:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> `{"a.b.c": leaf}`; lists and other leaves are kept whole."""
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


_WORD = re.compile(r"[A-Za-z0-9]+")


def is_run_shape(key: str) -> bool:
    """Whether changing `key` (a dotted config path) on resume changes what the run is.

    True when a word of the path (split at `.` and `_`) is in `RUN_SHAPE_WORDS`, e.g.
    `model.hidden_size`, `data.path`, `seed`, `optim.micro_batch_size`, `optim.grad_accum`,
    `epochs`, `mesh.data`; False under `eval.`/`decode.` and for `*every*` keys, e.g.
    `eval.every_epochs`, `checkpoint_every`, `data.decoded_dir`, and for the rest, e.g.
    `optim.lr`, `progress`.
    """
    parts = key.split(".")
    if parts[0] in NEVER_RUN_SHAPE_SECTIONS:
        return False
    words = {w.lower() for w in _WORD.findall(key)}
    if words & NEVER_RUN_SHAPE_WORDS:
        return False
    return bool(words & RUN_SHAPE_WORDS)


_ABSENT = "<absent>"


def diff_configs(old: dict, new: dict) -> list[dict]:
    """`[{"key", "old", "new", "run_shape"}]` for every dotted key whose value differs."""
    a, b = flatten(old), flatten(new)
    changes = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, _ABSENT), b.get(key, _ABSENT)
        if va != vb:
            changes.append({"key": key, "old": va, "new": vb, "run_shape": is_run_shape(key)})
    return changes


def has_run_outputs(workdir: str) -> bool:
    """Whether a previous run left checkpoints, metrics or a summary in `workdir`."""
    for name in RUN_OUTPUTS:
        path = os.path.join(workdir, name)
        if os.path.isfile(path) or (os.path.isdir(path) and os.listdir(path)):
            return True
    return False


def _fmt(change: dict) -> str:
    return f"{change['key']}: {change['old']!r} -> {change['new']!r}"


def check_config_change(workdir: str, new: dict, *, allow_change: bool = False) -> list[dict]:
    """Diffs `new` against `<workdir>/config.json` when resuming; returns the changes.

    Raises `ConfigChangeError` listing the run-shape changes when the workdir holds outputs of a
    previous run and `allow_change` is False. Other changes are logged as warnings. Every change
    is appended to `config_history.jsonl` (time, whether allowed, the changes).
    """
    path = os.path.join(workdir, CONFIG_NAME)
    if not os.path.exists(path):
        return []
    try:
        with open(path) as f:
            old = json.load(f)
    except ValueError as e:
        raise ConfigChangeError(
            f"{path}: unreadable stored config ({e}); move it away to start over"
        ) from None
    changes = diff_configs(old, new)
    if not changes:
        return []
    resume = has_run_outputs(workdir)
    shape = [c for c in changes if c["run_shape"]]
    if shape and resume and not allow_change:
        listed = "; ".join(_fmt(c) for c in shape)
        raise ConfigChangeError(
            f"{path}: resuming with changed run-shape config keys ({listed}); pass "
            "--allow_config_change to resume anyway, or use a new --workdir"
        )
    for c in changes:
        log.warning("config changed since the stored %s: %s", path, _fmt(c))
    record = {"time": _now(), "resume": resume, "allowed": bool(allow_change), "changes": changes}
    with open(os.path.join(workdir, HISTORY_NAME), "a") as f:
        f.write(json.dumps(record, default=repr) + "\n")
    return changes


def write_config(workdir: str, config_json: str) -> str:
    """Writes `config.json` atomically; returns its path."""
    path = os.path.join(workdir, CONFIG_NAME)
    atomic_write(path, config_json if config_json.endswith("\n") else config_json + "\n")
    return path
