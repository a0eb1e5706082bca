"""The FinTMMBench result tables: one row per system (BM25, Naive RAG, TMMHybridRAG and its
ablations) with EM, F1, Acc and LLM-judge Acc (percent, ± s.e. over questions), the share of
gold source records retrieved, and breakdowns by task, modality and the question's time
granularity; flat metrics for `summary.json` and the per-modality bar chart.

Metric names (`summary.json`): `<system>/<metric>` and `<system>/<metric>_se` for metric in
em, f1, acc, judge_acc (when a judge is configured), source_recall; `<system>/seconds`;
`<system>/task/<T>/acc`, `<system>/modality/<M>/acc`, `<system>/granularity/<G>/acc` (G in
day, week, month, quarter, year, range, none), `<system>/window/<W>/acc` (W: day,
week_month, quarter_year, range, none: the granularities grouped).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import numpy as np

from jaxmethods.eval.qa import mean_and_stderr
from jaxmethods.methods.fintmm.records import MODALITIES, TASKS, QAItem, TimeSpan

GRANULARITIES = ("day", "week", "month", "quarter", "year", "range", "none")
# The window table's groups: granularity -> group.
WINDOW_GROUPS = {"day": "day", "week": "week/month", "month": "week/month",
                 "quarter": "quarter/year", "year": "quarter/year", "range": "range",
                 "none": "none"}  # fmt: skip
WINDOWS = ("day", "week/month", "quarter/year", "range", "none")
NAMES = {"bm25": "BM25", "naive_rag": "Naive RAG", "tmmhybridrag": "TMMHybridRAG"}


@dataclasses.dataclass
class SystemRun:
    """One system's answers: `predictions` [n], retrieved source uuids per question [n],
    wall seconds of retrieval + generation."""

    name: str
    predictions: list[str]
    sources: list[set[str]]
    seconds: float = 0.0


@dataclasses.dataclass
class Report:
    text: str
    metrics: dict[str, float]
    tables: dict[str, str]
    artifacts: dict[str, str]


def granularity(span: TimeSpan | None) -> str:
    """The time granularity of a question window (by its `TimeSpan.label()` form)."""
    if span is None:
        return "none"
    label = span.label()
    if ".." in label:
        return "range"
    if "-W" in label:
        return "week"
    if "-M" in label:
        return "month"
    if "-Q" in label:
        return "quarter"
    return "year" if len(label) == 4 else "day"


def source_recall(questions: Sequence[QAItem], sources: Sequence[set[str]]) -> np.ndarray:
    """Per question: the share of its gold source uuids among the retrieved ones (nan when the
    question lists none)."""
    if len(sources) != len(questions):
        raise ValueError(f"source_recall: {len(questions)} questions, {len(sources)} source sets")
    return np.array([len(set(q.sources) & got) / len(q.sources) if q.sources else np.nan
                     for q, got in zip(questions, sources)])  # fmt: skip


def _cell(values: np.ndarray) -> str:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return "-"
    m, se = mean_and_stderr(100.0 * values)
    return f"{m:.1f} ± {se:.1f}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _breakdown(
    by: str, keys: Sequence[str], order: Sequence[str], scores: Mapping[str, dict], metrics
) -> str:
    """Acc (%) ± s.e. per group (columns: the groups present, in `order`, then others)."""
    keys = np.asarray(keys)
    groups = [g for g in order if (keys == g).any()]
    groups += sorted(set(keys.tolist()) - set(groups))
    rows = []
    for system, s in scores.items():
        row = [NAMES.get(system, system)]
        for g in groups:
            sel = s["acc"][keys == g]
            row.append(_cell(sel))
            metrics[f"{system}/{by}/{g.replace('/', '_')}/acc"] = float(100.0 * sel.mean())
        rows.append(row)
    head = [f"Acc % by {by}"] + [f"{g} (n={(keys == g).sum()})" for g in groups]
    return _markdown(head, rows)


def build_report(
    questions: Sequence[QAItem],
    runs: Mapping[str, SystemRun],
    *,
    judge=None,
    workdir: str | None = None,
) -> Report:
    """Scores every system's run (`metrics.score_items`: EM, F1, Acc; `metrics.llm_judge` when
    `judge`, an LLM client, is given); `workdir` gets the per-modality bar chart."""
    from jaxmethods.methods.fintmm import metrics as fm

    scores: dict[str, dict[str, np.ndarray]] = {}
    metrics: dict[str, float] = {}
    for name, r in runs.items():
        judgements = None
        if judge is not None:
            judgements = fm.llm_judge(
                judge, [q.question for q in questions], [q.answer for q in questions],
                r.predictions,
            )  # fmt: skip
            metrics[f"{name}/judge_unparsed"] = float(sum(v is None for v in judgements))
        rows = fm.score_items(questions, r.predictions, judgements)
        s = {m: np.array([row[m] for row in rows]) for m in ("em", "f1", "acc")}
        if judgements is not None:
            s["judge_acc"] = np.array([row["judge"] for row in rows])
        s["source_recall"] = source_recall(questions, r.sources)
        scores[name] = s
        for k, v in s.items():
            v = v[~np.isnan(v)]
            if v.size:
                m, se = mean_and_stderr(100.0 * v)
                metrics[f"{name}/{k}"], metrics[f"{name}/{k}_se"] = m, se
        metrics[f"{name}/seconds"] = r.seconds
    cols = ["em", "f1", "acc"] + (["judge_acc"] if judge is not None else []) + ["source_recall"]
    head = ["System", "EM %", "F1", "Acc %"] + (["LLM-judge %"] if judge is not None else [])
    head += ["gold sources retrieved %", "s"]
    rows = [[NAMES.get(n, n)] + [_cell(scores[n][c]) for c in cols] + [f"{runs[n].seconds:.1f}"]
            for n in runs]  # fmt: skip
    main = _markdown(head, rows)
    tables = {"fintmm": main}
    tasks = [q.task for q in questions]
    tables["by_task"] = _breakdown("task", tasks, TASKS, scores, metrics)
    mods = [q.modality for q in questions]
    tables["by_modality"] = _breakdown("modality", mods, MODALITIES, scores, metrics)
    grains = [granularity(q.time) for q in questions]
    tables["by_granularity"] = _breakdown("granularity", grains, GRANULARITIES, scores, metrics)
    spans = [WINDOW_GROUPS[g] for g in grains]
    tables["by_window"] = _breakdown("window", spans, WINDOWS, scores, metrics)
    artifacts: dict[str, str] = {}
    if workdir is not None:
        path = os.path.join(workdir, "acc_by_modality.png")
        acc = {NAMES.get(k, k): v["acc"] for k, v in scores.items()}
        artifacts["acc_by_modality"] = str(fm.modality_bar_chart(mods, acc, path))
    text = "\n\n".join(
        [f"FinTMMBench: {len(questions)} questions (mean ± s.e. over questions)", main,
         tables["by_window"], tables["by_task"], tables["by_modality"],
         tables["by_granularity"]]
    )  # fmt: skip
    return Report(text, metrics, tables, artifacts)
