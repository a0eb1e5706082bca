"""Sweep outputs: results.csv (one row per model, size and seed), curves, shapes and the plot."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from jaxmethods.methods.cf_scaling.curves import classify_curve
from jaxmethods.train.metrics import write_text_atomic

LEAD_COLUMNS = ("model", "dim", "seed", "test/ndcg@20", "test/recall@20", "valid/ndcg@20")


def write_results_csv(path: str, rows: Sequence[dict]) -> None:
    """One row per (model, dim, seed), written atomically."""
    columns = list(LEAD_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=columns, restval="")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: (r["model"], r["dim"], r["seed"])):
        writer.writerow(row)
    write_text_atomic(path, buf.getvalue())


def read_results_json(path: str) -> list[dict]:
    """The result rows a finished group wrote (`groups/<name>/result.json`)."""
    with open(path) as f:
        try:
            rows = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e}); delete it to retrain the group") from e
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: expected a list of result rows; delete it to retrain the group")
    return rows


def read_results_csv(path: str) -> list[dict]:
    def parse(v: str):
        for cast in (int, float):
            try:
                return cast(v)
            except ValueError:
                pass
        return v

    with open(path, newline="") as f:
        return [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def curves(rows: Sequence[dict], metric: str = "test/ndcg@20") -> dict[str, dict]:
    """model -> {"dims", "mean", "std", "min", "max", "n"}: lists over dims, across seeds
    (std is the population standard deviation, 0 for one seed)."""
    by = defaultdict(lambda: defaultdict(list))
    for row in rows:
        value = row.get(metric, "")
        if isinstance(value, (int, float)) and math.isfinite(value):
            by[row["model"]][int(row["dim"])].append(float(value))
    out = {}
    for model, per_dim in by.items():
        dims = sorted(per_dim)
        vals = [np.asarray(per_dim[d]) for d in dims]
        out[model] = {
            "dims": dims,
            "mean": [float(v.mean()) for v in vals],
            "std": [float(v.std()) for v in vals],
            "n": [len(v) for v in vals],
            "min": [float(v.min()) for v in vals],
            "max": [float(v.max()) for v in vals],
        }
    return out


def classify_all(curve_map: dict[str, dict], *, rel_tol: float, drop_frac: float) -> dict[str, str]:
    return {
        m: classify_curve(c["dims"], c["mean"], rel_tol=rel_tol, drop_frac=drop_frac)
        for m, c in curve_map.items()
    }


def plot_curves(
    path: str,
    curve_map: dict[str, dict],
    shapes: dict[str, str],
    *,
    title: str = "",
    baseline: float | None = None,
) -> None:
    """NDCG@20 against log2(d), one line per model (mean over seeds, a mean ± std band when
    there are several), and the popularity baseline as a dashed line; PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.8), dpi=110)
    for model, c in sorted(curve_map.items()):
        x = np.log2(c["dims"])
        ax.plot(x, c["mean"], marker="o", ms=3.5, label=f"{model} ({shapes.get(model, '?')})")
        if max(c.get("n", [1])) > 1:
            mean, std = np.asarray(c["mean"]), np.asarray(c["std"])
            ax.fill_between(x, mean - std, mean + std, alpha=0.15)
    if baseline is not None:
        ax.axhline(baseline, color="gray", ls="--", lw=1, label=f"popularity ({baseline:.3f})")
    ax.set_xlabel("log2(embedding dimension)")
    ax.set_ylabel("test NDCG@20")
    all_dims = sorted({d for c in curve_map.values() for d in c["dims"]})
    ax.set_xticks(np.log2(all_dims))
    ax.set_xticklabels([str(int(v)) for v in np.log2(all_dims)])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def markdown_table(curve_map: dict[str, dict], shapes: dict[str, str]) -> str:
    """Models as rows, sizes as columns (mean test NDCG@20, ± std over seeds when there are
    several), and the shape label."""
    dims = sorted({d for c in curve_map.values() for d in c["dims"]})
    head = "| model | " + " | ".join(f"d={d}" for d in dims) + " | shape |"
    sep = "|---" * (len(dims) + 2) + "|"
    lines = [head, sep]
    for model, c in sorted(curve_map.items()):
        n = dict(zip(c["dims"], c.get("n", [1] * len(c["dims"]))))
        vals = dict(zip(c["dims"], zip(c["mean"], c.get("std", [0.0] * len(c["dims"])))))
        cells = [
            ("" if d not in vals else f"{vals[d][0]:.4f}")
            + (f" ± {vals[d][1]:.4f}" if d in vals and n[d] > 1 else "")
            for d in dims
        ]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {shapes.get(model, '')} |")
    return "\n".join(lines)
