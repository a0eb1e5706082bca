"""Metric logging and results: `metrics.jsonl` (always), optional TensorBoard / wandb sinks, and
the one `summary.json` layout of every method. Only process 0 writes; every file that a reader
may see half-written is written atomically (temporary file, then `os.replace`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

log = logging.getLogger(__name__)

METRIC_SINKS = ("tensorboard", "wandb")
SUMMARY_RESERVED = ("tables", "artifacts")


class MetricsLogError(ValueError):
    """A `metrics.jsonl` line in the middle of the file is not valid JSON."""


def to_python(x: Any) -> Any:
    """Arrays and numpy scalars -> plain Python numbers/lists (NaN kept as float('nan'))."""
    if isinstance(x, dict):
        return {str(k): to_python(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_python(v) for v in x]
    if isinstance(x, (jax.Array, np.ndarray, np.generic)):
        arr = np.asarray(x)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    return x


def is_writer() -> bool:
    """Whether this process writes outputs (process 0 of a multi-process run)."""
    return jax.process_index() == 0


def write_text_atomic(path: str, text: str) -> str:
    """Writes `text` to `path` through a temporary file and `os.replace` (never half-written)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_json_atomic(path: str, obj: Any, *, indent: int | None = 2) -> str:
    return write_text_atomic(
        path, json.dumps(to_python(obj), indent=indent, sort_keys=True, allow_nan=True) + "\n"
    )


def read_jsonl(path: str) -> list[dict]:
    """Rows of a JSONL file. A torn final line (a process killed mid-write) is dropped with a
    warning; a bad line elsewhere raises `MetricsLogError` naming the file and line."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = f.readlines()
    rows = []
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == last:
                log.warning("%s:%d: dropping a torn last line (%s)", path, i + 1, e)
                continue
            raise MetricsLogError(f"{path}:{i + 1}: not valid JSON ({e}): {line[:80]!r}") from e
    return rows


class MetricWriter:
    """Appends `{"step": s, **metrics}` lines to `<workdir>/metrics.jsonl` (process 0 only), and
    mirrors scalars to the optional sinks named in `sinks` ("tensorboard", "wandb")."""

    def __init__(
        self,
        workdir: str,
        filename: str = "metrics.jsonl",
        *,
        sinks: Sequence[str] = (),
        run_name: str = "",
    ):
        self.workdir = workdir
        self.path = os.path.join(workdir, filename)
        self._enabled = is_writer()
        self._sinks: list[Any] = []
        unknown = sorted(set(sinks) - set(METRIC_SINKS))
        if unknown:
            raise ValueError(f"metric sinks {unknown} are unknown; choose from {METRIC_SINKS}")
        if self._enabled:
            os.makedirs(workdir, exist_ok=True)
            self._sinks = [_open_sink(s, workdir, run_name) for s in sinks]

    def write(self, step: int, metrics: dict) -> None:
        if not self._enabled:
            return
        row = {"step": int(step), **to_python(metrics)}
        with open(self.path, "a") as f:
            f.write(json.dumps(row, allow_nan=True) + "\n")
        scalars = {k: v for k, v in row.items() if k != "step" and _is_number(v)}
        for sink in self._sinks:
            sink.write(int(step), scalars)

    def read(self) -> list[dict]:
        return read_jsonl(self.path)

    def truncate_after(self, step: int) -> None:
        """Drops rows logged after `step` (and a torn last line), so a resumed run never logs a
        step twice."""
        if not self._enabled or not os.path.exists(self.path):
            return
        rows = [r for r in self.read() if int(r.get("step", 0)) <= step]
        write_text_atomic(self.path, "".join(json.dumps(r, allow_nan=True) + "\n" for r in rows))

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()
        self._sinks = []


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _TensorBoardSink:
    def __init__(self, workdir: str):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "metric sink 'tensorboard' needs tensorboardX: pip install 'jaxmethods[tensorboard]'"
            ) from e
        self._w = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, scalars: dict) -> None:
        for k, v in scalars.items():
            self._w.add_scalar(k, v, step)

    def close(self) -> None:
        self._w.close()


class _WandbSink:
    def __init__(self, workdir: str, run_name: str):
        try:
            import wandb
        except ImportError as e:
            raise ImportError(
                "metric sink 'wandb' needs wandb: pip install 'jaxmethods[wandb]'"
            ) from e
        self._run = wandb.init(dir=workdir, name=run_name or None, resume="allow")

    def write(self, step: int, scalars: dict) -> None:
        self._run.log(scalars, step=step)

    def close(self) -> None:
        self._run.finish()


def _open_sink(name: str, workdir: str, run_name: str) -> Any:
    return _TensorBoardSink(workdir) if name == "tensorboard" else _WandbSink(workdir, run_name)


def flatten_metrics(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a/b": 1}`; arrays become Python numbers or lists."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten_metrics(v, key))
        else:
            out[key] = to_python(v)
    return out


def make_summary(
    metrics: Mapping[str, Any],
    *,
    tables: Mapping[str, str] | None = None,
    artifacts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The `summary.json` layout of every method.

    A flat mapping from metric name to number (e.g. `test/ndcg@20`, `eval/unseen_acc`,
    `forget01/npo_dv/forget_quality`; nested mappings are joined with "/"), plus `tables`
    (name -> markdown) and `artifacts` (name -> path of a plot, checkpoint or CSV).
    Values that are not numbers (strings, lists) are kept, but never under the reserved keys.
    """
    flat = flatten_metrics(metrics)
    clash = [k for k in flat if k in SUMMARY_RESERVED]
    if clash:
        raise ValueError(f"summary metric names {clash} are reserved")
    return {**flat, "tables": dict(tables or {}), "artifacts": dict(artifacts or {})}


def write_summary(workdir: str, summary: dict, filename: str = "summary.json") -> str:
    """Writes `summary` (process 0 only, atomically); returns its path."""
    path = os.path.join(workdir, filename)
    if is_writer():
        write_json_atomic(path, summary)
    return path
