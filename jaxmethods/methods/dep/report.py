"""DEP's results tables: one row per arm (non-personalized, history-only, DEP), mean +- standard
error of the per-sample scores, corpus sacreBLEU; and the paired gaps between arms (per-sample
differences on the same test samples, mean +- standard error)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from jaxmethods.eval.qa import mean_and_stderr

ARM_LABELS = {
    "none": "non-personalized (no soft tokens)",
    "history": "history-only soft tokens",
    "dep": "DEP (history + difference)",
}


def results_table(results: Mapping[str, Mapping[str, float]], meteor_name: str) -> str:
    """Markdown table of `results[arm]` = `generation_metrics(...)` (+ "epoch" optionally)."""
    has_bs = any("bertscore_f1" in r for r in results.values())
    head = ["model", "ROUGE-1", "ROUGE-L", meteor_name, "sacreBLEU"] + (["BERTScore"] * has_bs)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, r in results.items():
        cells = [ARM_LABELS.get(arm, arm)]
        cells += [f"{r[k]:.4f} ± {r[k + '_se']:.4f}" for k in ("rouge1", "rougeL", "meteor")]
        cells.append(f"{r['sacrebleu']:.2f}")
        if has_bs:
            cells.append(f"{r['bertscore_f1']:.4f} ± {r['bertscore_f1_se']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


PAIRS = (("history", "none"), ("dep", "history"), ("dep", "none"))
GAP_METRICS = ("rougeL", "meteor")


def paired_gaps(
    per_sample: Mapping[str, Mapping[str, np.ndarray]],
    pairs: Sequence[tuple[str, str]] = PAIRS,
    metrics: Sequence[str] = GAP_METRICS,
) -> dict[str, float]:
    """Paired differences of per-sample scores on the same test samples (same prompts, same
    sampling seeds): {"<a>-<b>/<metric>": mean of a - b, "<a>-<b>/<metric>_se": its standard
    error}; `per_sample[arm][metric]` is [N]. Pairs with an arm missing are left out."""
    out: dict[str, float] = {}
    for a, b in pairs:
        if a not in per_sample or b not in per_sample:
            continue
        for m in metrics:
            diff = np.asarray(per_sample[a][m], np.float64) - np.asarray(per_sample[b][m])
            out[f"{a}-{b}/{m}"], out[f"{a}-{b}/{m}_se"] = mean_and_stderr(diff)
    return out


def gaps_table(gaps: Mapping[str, float], meteor_name: str) -> str:
    """Markdown table of `paired_gaps`: one row per pair, mean gap +- its standard error."""
    names = {"rougeL": "ROUGE-L", "meteor": meteor_name}
    pairs = list(dict.fromkeys(k.split("/")[0] for k in gaps))
    metrics = list(dict.fromkeys(k.split("/")[1] for k in gaps if not k.endswith("_se")))
    head = ["paired gap (same test samples)"] + [names.get(m, m) for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in pairs:
        a, b = p.split("-")
        cells = [f"{ARM_LABELS.get(a, a).split(' (')[0]} - {ARM_LABELS.get(b, b).split(' (')[0]}"]
        cells += [f"{gaps[f'{p}/{m}']:+.4f} ± {gaps[f'{p}/{m}_se']:.4f}" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
