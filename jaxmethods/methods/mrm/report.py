"""MRM's result table and the aggregation of repeats (mean ± std over re-split runs)."""

from __future__ import annotations

import numpy as np

from jaxmethods.methods.mrm.peers import LABELS

BASE_ROWS = (
    ("MRM (adapted)", "eval/"),
    ("MRM meta-init, no adaptation", "no_adapt/"),
    ("global Bradley-Terry", "baseline/"),
)


def columns(worst_frac: float) -> tuple[tuple[str, str], ...]:
    """(metric name, column header) of the user-level accuracy table."""
    pct = round(worst_frac * 100)
    return (
        ("seen_acc", "seen"),
        ("unseen_acc", "unseen"),
        ("overall_acc", "overall"),
        (f"worst{pct}_acc", f"worst {pct}%"),
    )


def table_rows(peers: tuple[str, ...]) -> list[tuple[str, str]]:
    return [*BASE_ROWS, *((LABELS[p], f"{p}/") for p in peers)]


def format_table(
    metrics: dict, peers: tuple[str, ...], worst_frac: float, *, repeats: int = 1
) -> str:
    """Markdown table of user-level accuracy; with repeats > 1, cells are `mean ± std` read from
    `mean/<key>` and `std/<key>`. Rows without results (e.g. no baseline) are left out."""
    cols = columns(worst_frac)
    head = "| user-level accuracy | " + " | ".join(h for _, h in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for label, prefix in table_rows(peers):
        if repeats > 1:
            if f"mean/{prefix}overall_acc" not in metrics:
                continue
            cells = [
                f"{metrics[f'mean/{prefix}{c}']:.3f} ± {metrics[f'std/{prefix}{c}']:.3f}"
                for c, _ in cols
            ]
        else:
            if f"{prefix}overall_acc" not in metrics:
                continue
            cells = [f"{metrics[prefix + c]:.3f}" for c, _ in cols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if repeats > 1:
        lines.append(f"\nmean ± std over {repeats} repeats (users and conversations re-split)")
    return "\n".join(lines)


def aggregate(runs: list[dict]) -> dict:
    """`rep<r>/<key>` for every run, plus `mean/<key>` and `std/<key>` (population std, as
    NumPy's default) of every numeric key present in all runs."""
    out: dict = {}
    for r, run in enumerate(runs):
        out |= {f"rep{r}/{k}": v for k, v in run.items()}
    keys = [k for k in runs[0] if all(_is_number(run.get(k)) for run in runs)]
    for k in keys:
        values = np.array([run[k] for run in runs], dtype=np.float64)
        out[f"mean/{k}"] = float(np.mean(values))
        out[f"std/{k}"] = float(np.std(values))
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
