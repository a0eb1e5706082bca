"""MAE / RMSE after merging predictions with the ground truth on (user_id, item_id) (the GRPO
fork's `caculate_mae_rmse.py`), the mean baselines, and the result tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

KEYS = ["user_id", "item_id"]


def merge_predictions(pred: pd.DataFrame, truth: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Inner join of `pred` (user_id, item_id, pred) with `truth` (user_id, item_id, ratings).

    Duplicate keys keep their last prediction / first truth row (counted). Returns the merged
    frame and {"unmatched_truth", "unmatched_pred", "duplicate_pred"} counts."""
    dup = int(pred.duplicated(KEYS, keep="last").sum())
    pred = pred.drop_duplicates(KEYS, keep="last")
    truth = truth.drop_duplicates(KEYS, keep="first")
    m = pred[[*KEYS, "pred"]].merge(truth[[*KEYS, "ratings"]], on=KEYS, how="inner")
    counts = {"unmatched_truth": len(truth) - len(m), "unmatched_pred": len(pred) - len(m),
              "duplicate_pred": dup}  # fmt: skip
    return m, counts


def error_metrics(pred: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """{"mae", "rmse", "mae_se" (standard error of the mean absolute error), "n", counts}."""
    m, counts = merge_predictions(pred, truth)
    err = m["pred"].to_numpy(np.float64) - m["ratings"].to_numpy(np.float64)
    n = len(err)
    ae = np.abs(err)
    out = {"n": float(n), **{k: float(v) for k, v in counts.items()}}
    if n == 0:
        return out | {"mae": math.nan, "rmse": math.nan, "mae_se": math.nan}
    se = float(ae.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return out | {"mae": float(ae.mean()), "rmse": float(np.sqrt((err**2).mean())), "mae_se": se}


def paired_mae_gap(a: pd.DataFrame, b: pd.DataFrame, truth: pd.DataFrame) -> tuple[float, float]:
    """(MAE(b) - MAE(a), its paired standard error) over the rows both predict."""
    ma, _ = merge_predictions(a, truth)
    mb, _ = merge_predictions(b, truth)
    m = ma.merge(mb[[*KEYS, "pred"]], on=KEYS, suffixes=("_a", "_b"))
    d = np.abs(m["pred_b"] - m["ratings"]) - np.abs(m["pred_a"] - m["ratings"])
    d = d.to_numpy(np.float64)
    if len(d) < 2:
        return float(d.mean()) if len(d) else math.nan, math.nan
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def mean_baselines(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Global item mean and global user mean of the train ratings (the global mean for unknown
    items / users)."""
    g = float(train["ratings"].mean())
    out = {}
    for name, col in (("item_mean", "item_id"), ("user_mean", "user_id")):
        means = train.groupby(col)["ratings"].mean()
        p = test[col].map(means).fillna(g).to_numpy(np.float64)
        out[name] = pd.DataFrame({"user_id": test["user_id"].to_numpy(),
                                  "item_id": test["item_id"].to_numpy(), "pred": p})  # fmt: skip
    return out


LABELS = {
    "reason4rec": "Reason4Rec (summarize -> reason -> predict)",
    "direct": "direct Predictor (no reasoning)",
    "item_mean": "global item mean",
    "user_mean": "global user mean",
}


def results_table(metrics: dict[str, float], methods) -> str:
    lines = ["| method | MAE | ± s.e. | RMSE | rows |", "|---|---|---|---|---|"]
    for m in methods:
        if f"test/{m}/mae" not in metrics:
            continue
        lines.append(
            f"| {LABELS.get(m, m)} | {metrics[f'test/{m}/mae']:.4f} | "
            f"{metrics[f'test/{m}/mae_se']:.4f} | {metrics[f'test/{m}/rmse']:.4f} | "
            f"{int(metrics[f'test/{m}/n'])} |"
        )
    return "\n".join(lines)


def cost_table(metrics: dict[str, float]) -> str:
    lines = ["| step | prompt tokens / row | generated tokens / row | seconds / row |",
             "|---|---|---|---|"]  # fmt: skip
    for step in ("summarize", "reason", "predict", "direct"):
        if f"cost/{step}/rows" not in metrics:
            continue
        n = max(metrics[f"cost/{step}/rows"], 1.0)
        lines.append(
            f"| {step} | {metrics[f'cost/{step}/prompt_tokens'] / n:.1f} | "
            f"{metrics[f'cost/{step}/new_tokens'] / n:.1f} | "
            f"{metrics[f'cost/{step}/seconds'] / n:.4f} |"
        )
    return "\n".join(lines)
