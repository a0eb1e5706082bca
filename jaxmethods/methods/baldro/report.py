"""Results of a BalDRO run: per-phase rows and curves read back from each phase's
`metrics.jsonl` (so a resumed run reports the same as an uninterrupted one), the markdown table,
the curve plot and the flat summary (`{split}/{loss}_{variant}/{metric}`)."""

from __future__ import annotations

import os
from typing import Any

from jaxmethods.train.metrics import read_jsonl

EVAL_PREFIX = "eval/"
TOFU_COLUMNS = ("forget_quality", "model_utility", "forget_Truth_Ratio")
MUSE_COLUMNS = ("forget_verbmem_ROUGE", "forget_knowmem_ROUGE", "retain_knowmem_ROUGE", "privleak")
SPREAD_COLUMNS = ("forget_nll_mean", "forget_nll_std", "forget_nll_p10_p90")
CURVE_METRICS = (
    "forget_quality",
    "model_utility",
    "privleak",
    "forget_verbmem_ROUGE",
    "forget_nll_mean",
)
VARIANT_LABELS = {
    "plain": "",
    "group": " + BalDRO-G",
    "dv": " + BalDRO-DV",
    "dv_softmax": " + BalDRO-DV(+)",
}


def phase_log(workdir: str) -> tuple[list[dict], dict[str, Any]]:
    """`(evaluation rows sorted by step, the last training row)` of one phase's metrics.jsonl.

    Evaluation rows have the `eval/` prefix stripped and keep their "step".
    """
    rows = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    evals, train = {}, {}
    for r in rows:
        ev = {k[len(EVAL_PREFIX) :]: v for k, v in r.items() if k.startswith(EVAL_PREFIX)}
        if ev:
            evals[r["step"]] = {"step": r["step"], **ev}
        elif "loss" in r:
            train = r
    return [evals[s] for s in sorted(evals)], train


def markdown_table(rows: dict[str, dict[str, Any]], loss: str, benchmark: str) -> str:
    """One line per model: the benchmark's headline numbers and the forget-NLL spread."""
    cols = (MUSE_COLUMNS if benchmark == "muse" else TOFU_COLUMNS) + SPREAD_COLUMNS
    lines = ["| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in rows.items():
        label = "target (before)" if name == "target" else loss.upper() + VARIANT_LABELS[name]
        cells = ["n/a" if row.get(c) is None else f"{row[c]:.4g}" for c in cols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, list[dict]], loss: str, path: str) -> str | None:
    """Per-epoch curves of each variant (forget quality on a log axis); None if nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in CURVE_METRICS if any(m in r for rs in curves.values() for r in rs)]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for variant, rs in curves.items():
            pts = [(r["epoch"], r[metric]) for r in rs if r.get(metric) is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", ms=3, label=loss.upper() + VARIANT_LABELS[variant])
        if metric == "forget_quality":
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
