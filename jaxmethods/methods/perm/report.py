"""PERM's report: the reward curve's summary numbers, its PNG plot, and the markdown table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _series(rows: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in rows if key in r and "step" in r]
    if not pts:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*pts)
    return np.asarray(steps), np.asarray(values, np.float64)


def reward_curve_metrics(rows: Sequence[dict], kinds: Sequence[str]) -> dict[str, float]:
    """Mean reward and scores over the first and the last quarter of the logged steps (at least
    one step each), and their difference `reward/rise`."""
    out: dict[str, float] = {}
    for key, name in [("reward/mean", "reward"), *[(f"scores/{k}", f"scores/{k}") for k in kinds]]:
        _, v = _series(rows, key)
        if not len(v):
            continue
        q = max(1, len(v) // 4)
        out[f"{name}/first"], out[f"{name}/last"] = float(v[:q].mean()), float(v[-q:].mean())
    if "reward/first" in out:
        out["reward/rise"] = out["reward/last"] - out["reward/first"]
    for key in ("completion/length", "kl", "throughput/rollout_tokens_per_s",
                "throughput/train_tokens_per_s", "time/judge_s", "time/device_idle_frac"):  # fmt: skip
        _, v = _series(rows, key)
        if len(v):
            out[f"last/{key}"] = float(v[-max(1, len(v) // 4) :].mean())
    return out


def plot_curve(rows: Sequence[dict], kinds: Sequence[str], path: str) -> str:
    """Mean reward (left) and mean judge scores (right) per GRPO step, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps, v = _series(rows, "reward/mean")
    _, sd = _series(rows, "reward/std")
    ax1.plot(steps, v, label="reward/mean")
    if len(sd) == len(v):
        ax1.fill_between(steps, v - sd, v + sd, alpha=0.2, label="± std")
    ax1.set_xlabel("GRPO step")
    ax1.set_ylabel("reward")
    ax1.legend()
    for k in kinds:
        s, y = _series(rows, f"scores/{k}")
        if len(y):
            ax2.plot(s, y / (100.0 if k == "standby" else 5.0), label=k)
    ax2.set_xlabel("GRPO step")
    ax2.set_ylabel("mean score / scale max")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fmt(v: float) -> str:
    return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"


def table(metrics: dict[str, float], kinds: Sequence[str]) -> str:
    """First vs last quarter of GRPO, per score, plus the server-judge pass when it ran."""
    lines = ["| quantity | first quarter | last quarter |", "|---|---|---|"]
    for name in ["reward", *[f"scores/{k}" for k in kinds]]:
        if f"{name}/first" in metrics:
            lines.append(
                f"| {name} | {_fmt(metrics[f'{name}/first'])} | {_fmt(metrics[f'{name}/last'])} |"
            )
    if "server_judge/agreement" in metrics:
        lines += [
            "",
            "| local-server judge (tiny LM fine-tuned on rule verdicts) | value |",
            "|---|---|",
            f"| requests through the server | {metrics['server_judge/requests']:.0f} |",
            f"| parse rate | {metrics['server_judge/parse_rate']:.3f} |",
            f"| agreement with the rule judge | {metrics['server_judge/agreement']:.3f} |",
            f"| agreement of the majority score | {metrics['server_judge/majority_agreement']:.3f} |",
        ]
    return "\n".join(lines)
