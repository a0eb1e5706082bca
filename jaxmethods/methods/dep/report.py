"""DEP's results table: one row per arm (non-personalized, history-only, DEP), mean +- standard
error of the per-sample scores, corpus sacreBLEU."""

from __future__ import annotations

from collections.abc import Mapping

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
