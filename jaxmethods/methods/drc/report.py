"""DRC's results: per-row judge scores, the metrics table with standard errors, and the paired
collapse-rate difference DRC - Pigeon (same episodes, same seeds)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxmethods.methods.drc.judges import Judges, episode_scores, mean_se, paired_difference

SCORES = ("style_ok", "semantic_ok", "collapse", "style_collapse", "semantic_collapse")
NAMES = {
    "style_ok": "style acc",
    "semantic_ok": "semantic acc",
    "collapse": "collapse rate",
    "style_collapse": "style from ref",
    "semantic_collapse": "semantics from history",
}


def score_images(judges: Judges, images: np.ndarray, labels: dict) -> dict[str, np.ndarray]:
    """Per-episode 0/1 scores [E] of generated images [E, S, S, 3] (`judges.episode_scores`);
    labels: user_style, ref_style, ref_shape [E], hist_shapes [E, 5]."""
    return episode_scores(judges.style.predict(images), judges.shape.predict(images), **labels)


def summarize(
    scores: dict[str, dict[str, np.ndarray]], rows: Sequence[str]
) -> tuple[dict[str, float], dict[str, str]]:
    """(flat metrics `<row>/<score>` and `<row>/<score>_se`, {"drc": markdown table}). The
    table lists the `target` row (the ground truth through the VQ: the judges' ceiling) and
    `rows`; when both pigeon and drc ran, `collapse/drc_minus_pigeon` (+ `_se`) is the paired
    difference of their per-episode collapse indicators."""
    metrics: dict[str, float] = {}
    head = "| row | " + " | ".join(NAMES[s] for s in SCORES) + " |"
    lines = [head, "|" + "---|" * (len(SCORES) + 1)]
    for row in ("target", *rows):
        if row not in scores:
            continue
        cells = []
        for s in SCORES:
            m, se = mean_se(scores[row][s])
            metrics[f"{row}/{s}"], metrics[f"{row}/{s}_se"] = m, se
            cells.append(f"{m:.3f} ± {se:.3f}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    if "pigeon" in scores and "drc" in scores:
        d, se = paired_difference(scores["drc"]["collapse"], scores["pigeon"]["collapse"])
        metrics["collapse/drc_minus_pigeon"], metrics["collapse/drc_minus_pigeon_se"] = d, se
        lines.append("")
        lines.append(f"collapse rate DRC - Pigeon (paired): {d:+.3f} ± {se:.3f}")
    n = len(next(iter(scores.values()))["collapse"]) if scores else 0
    lines.append(f"({n} test episodes; ± = standard error)")
    return metrics, {"drc": "\n".join(lines)}
