"""The evaluation table: LLM-only, Standard RAG, Self-Selection without RGP and
Self-Selection-RGP, with contains-accuracy and EM (± standard error), the paired difference of
Self-Selection-RGP against every other row (± its standard error), and the source breakdown."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxmethods.eval.qa import contains_match, exact_match, mean_and_stderr, source_breakdown

ROWS = (
    ("llm_only", "LLM-only", "base", "internal"),
    ("standard_rag", "Standard RAG", "base", "external"),
    ("selfselect", "Self-Selection (no RGP)", "base", "final"),
    ("selfselect_rgp", "Self-Selection-RGP", "rgp", "final"),
)


def evaluate(answers: Sequence[Sequence[str]], outputs: dict[str, list[dict]]) -> dict[str, float]:
    """Flat metrics of the four rows.

    Args:
      answers: [n] gold alias lists of the test questions.
      outputs: {"base": [...], "rgp": [...]} `self_select` outputs (n each, same order).
    """
    metrics: dict[str, float] = {"test/questions": float(len(answers))}
    correct = {}
    for key, _, model, field in ROWS:
        if model not in outputs:
            continue
        preds = [o[field] for o in outputs[model]]
        acc = np.array([contains_match(p, a) for p, a in zip(preds, answers)], np.float64)
        em = np.array([exact_match(p, a) for p, a in zip(preds, answers)], np.float64)
        correct[key] = acc
        metrics[f"{key}/acc"], metrics[f"{key}/acc_se"] = mean_and_stderr(acc)
        metrics[f"{key}/em"], metrics[f"{key}/em_se"] = mean_and_stderr(em)
    for model, outs in outputs.items():
        ok = {f: [contains_match(o[f], a) for o, a in zip(outs, answers)]
              for f in ("internal", "external", "final")}  # fmt: skip
        name = "selfselect" if model == "base" else "selfselect_rgp"
        for k, v in source_breakdown(ok["internal"], ok["external"], ok["final"]).items():
            metrics[f"{name}/breakdown/{k}"] = v
    if "selfselect_rgp" in correct:
        for key in ("llm_only", "standard_rag", "selfselect"):
            if key in correct:
                d = correct["selfselect_rgp"] - correct[key]
                metrics[f"diff/rgp_vs_{key}"], metrics[f"diff/rgp_vs_{key}_se"] = mean_and_stderr(d)
    metrics["empty_retrieval"] = float(
        sum(o["num_passages"] == 0 for o in next(iter(outputs.values()), []))
    )
    return metrics


def table(metrics: dict[str, float]) -> str:
    """The markdown table of the four rows (and the source breakdown of the selection rows)."""
    lines = [
        "| method | accuracy | EM | RGP − this (paired) |",
        "|---|---|---|---|",
    ]
    for key, label, _, _ in ROWS:
        if f"{key}/acc" not in metrics:
            continue
        diff = metrics.get(f"diff/rgp_vs_{key}")
        d = f"{diff:+.3f} ± {metrics[f'diff/rgp_vs_{key}_se']:.3f}" if diff is not None else ""
        lines.append(
            f"| {label} | {metrics[f'{key}/acc']:.3f} ± {metrics[f'{key}/acc_se']:.3f} "
            f"| {metrics[f'{key}/em']:.3f} ± {metrics[f'{key}/em_se']:.3f} | {d} |"
        )
    lines += ["", "| source breakdown | internal only | external only | both | neither "
              "| selection acc (one right) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, label in (("selfselect", "without RGP"), ("selfselect_rgp", "with RGP")):
        b = f"{name}/breakdown/"
        if b + "both" in metrics:
            lines.append(
                f"| {label} | {metrics[b + 'internal_only']:.3f} | {metrics[b + 'external_only']:.3f}"
                f" | {metrics[b + 'both']:.3f} | {metrics[b + 'neither']:.3f} "
                f"| {metrics[b + 'selection_acc']:.3f} (n={int(metrics[b + 'selection_n'])}) |"
            )
    return "\n".join(lines)
