"""Metric logging: one JSON object per line in `metrics.jsonl`, and a final `summary.json`."""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np


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


class MetricWriter:
    """Appends `{"step": s, **metrics}` lines to `<workdir>/metrics.jsonl` (process 0 only)."""

    def __init__(self, workdir: str, filename: str = "metrics.jsonl"):
        self.path = os.path.join(workdir, filename)
        self._enabled = jax.process_index() == 0
        if self._enabled:
            os.makedirs(workdir, exist_ok=True)

    def write(self, step: int, metrics: dict) -> None:
        if not self._enabled:
            return
        row = {"step": int(step), **to_python(metrics)}
        with open(self.path, "a") as f:
            f.write(json.dumps(row, allow_nan=True) + "\n")

    def read(self) -> list[dict]:
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            return [json.loads(line) for line in f if line.strip()]


def write_summary(workdir: str, summary: dict, filename: str = "summary.json") -> str:
    path = os.path.join(workdir, filename)
    if jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        with open(path, "w") as f:
            json.dump(to_python(summary), f, indent=2, sort_keys=True, allow_nan=True)
    return path
