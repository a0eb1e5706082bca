"""FinTMMBench metrics: per-item EM / F1 / Acc (+ LLM-judge Acc), per-task and per-modality
tables with mean and standard error, and the per-modality bar chart.

- EM and F1: SQuAD v1.1 (`jaxmethods.eval.qa.exact_match`, `f1_score`);
- Acc: the prediction contains the normalised gold answer (`contains_match`), the paper's Acc;
- LLM-judge Acc: a judge model sees question, gold and prediction and answers true/false
  (`llm_judge`, through any `jaxmethods.llm` client; its JSONL cache makes a rerun free).
A compound task ("IE&AC", as the benchmark's schema Types combine) counts under each of its
tasks, as the paper's Table 2 counts items.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxmethods.eval.qa import contains_match, exact_match, f1_score, mean_and_stderr

from .records import MODALITIES, TASKS, QAItem

__all__ = [
    "JUDGE_PROMPT",
    "METRICS",
    "breakdown",
    "format_table",
    "judge_requests",
    "llm_judge",
    "modality_bar_chart",
    "overall",
    "parse_judgement",
    "score_items",
]

METRICS = ("em", "f1", "acc", "judge")


def score_items(
    items: Sequence[QAItem],
    predictions: Sequence[str],
    judgements: Sequence[bool | None] | None = None,
) -> list[dict[str, Any]]:
    """One row per item: {"qid", "task", "modality", "em", "f1", "acc"[, "judge"]} (floats in
    [0, 1]); an unparsed judgement (None) scores 0."""
    if len(items) != len(predictions):
        raise ValueError(f"score_items: {len(items)} items but {len(predictions)} predictions")
    if judgements is not None and len(judgements) != len(items):
        raise ValueError(f"score_items: {len(items)} items but {len(judgements)} judgements")
    rows = []
    for i, (item, pred) in enumerate(zip(items, predictions)):
        gold = [item.answer]
        row = {
            "qid": item.qid,
            "task": item.task,
            "modality": item.modality,
            "em": float(exact_match(pred, gold)),
            "f1": float(f1_score(pred, gold)),
            "acc": float(contains_match(pred, gold)),
        }
        if judgements is not None:
            row["judge"] = float(bool(judgements[i]))
        rows.append(row)
    return rows


def _stats(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {"n": float(len(rows))}
    for m in metrics:
        if rows and m in rows[0]:
            out[m], out[f"{m}_se"] = mean_and_stderr([r[m] for r in rows])
    return out


def overall(
    rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] = METRICS
) -> dict[str, float]:
    """{"n", m, f"{m}_se" for each metric present in the rows} over all rows."""
    return _stats(rows, metrics)


def breakdown(
    rows: Sequence[Mapping[str, Any]], by: str, metrics: Sequence[str] = METRICS
) -> dict[str, dict[str, float]]:
    """{group: {"n", m, f"{m}_se"}} grouped by "task" (a compound task counts in each part) or
    "modality"; groups in the benchmark's order (TASKS / MODALITIES), then any others."""
    if by not in ("task", "modality"):
        raise ValueError(f"breakdown: by={by!r}, expected 'task' or 'modality'")
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        keys = str(r[by]).split("&") if by == "task" else [str(r[by])]
        for k in keys:
            groups.setdefault(k, []).append(r)
    order = list(TASKS if by == "task" else MODALITIES)
    names = [g for g in order if g in groups] + sorted(g for g in groups if g not in order)
    return {g: _stats(groups[g], metrics) for g in names}


def format_table(
    table: Mapping[str, Mapping[str, float]], metrics: Sequence[str] = METRICS, title: str = ""
) -> str:
    """Plain-text table: one line per group, "mean ± se" per metric (x100), and n."""
    cols = [m for m in metrics if any(m in row for row in table.values())]
    width = max([len(title), 8, *(len(g) for g in table)])
    head = f"{title:<{width}}  " + "  ".join(f"{m.upper():>13}" for m in cols) + f"  {'n':>5}"
    lines = [head]
    for g, row in table.items():
        cells = [
            f"{100 * row[m]:6.1f} ± {100 * row[m + '_se']:4.1f}" if m in row else f"{'-':>13}"
            for m in cols
        ]
        lines.append(f"{g:<{width}}  " + "  ".join(cells) + f"  {int(row['n']):>5}")
    return "\n".join(lines)


JUDGE_PROMPT = """You are grading an answer to a financial question against the gold answer.
Question: {question}
Gold answer: {gold}
Predicted answer: {prediction}
Is the predicted answer correct, i.e. does it give the same result as the gold answer (numbers \
may differ only by rounding or formatting)? Reply with one word: true or false."""

_POS = {"true", "yes", "correct", "right"}
_NEG = {"false", "no", "incorrect", "wrong", "not"}


def _json_verdict(text: str) -> bool | None:
    m = re.search(r"\{.*\}", text, re.S)
    if not m:
        return None
    try:
        obj = json.loads(m.group(0))
    except json.JSONDecodeError:
        return None
    values = obj.values() if isinstance(obj, dict) else []
    for v in values:
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.strip().lower() in _POS | _NEG:
            return v.strip().lower() in _POS
    return None


def parse_judgement(text: str) -> bool | None:
    """The judge's verdict. A JSON object's first boolean (or "true"/"false" string) value wins
    ('{"correct": false}' -> False); else the first of true/yes/correct/right (True) or
    false/no/incorrect/wrong/not (False) as a whole word, case-insensitive, through markdown
    ("**True**"); "not correct" is False. None when the text holds no verdict."""
    verdict = _json_verdict(text)
    if verdict is not None:
        return verdict
    for w in re.findall(r"[a-z]+", text.lower()):
        if w in _NEG:
            return False
        if w in _POS:
            return True
    return None


def judge_requests(
    questions: Sequence[str],
    golds: Sequence[str],
    predictions: Sequence[str],
    *,
    max_tokens: int = 8,
) -> list[Any]:
    """One greedy `jaxmethods.llm.Request` per (question, gold, prediction) with JUDGE_PROMPT."""
    from jaxmethods.llm import Request

    if not len(questions) == len(golds) == len(predictions):
        raise ValueError(
            f"judge: {len(questions)} questions, {len(golds)} golds, {len(predictions)} predictions"
        )
    return [
        Request.from_prompt(
            JUDGE_PROMPT.format(question=q, gold=g, prediction=p),
            max_tokens=max_tokens,
            temperature=0.0,
        )
        for q, g, p in zip(questions, golds, predictions)
    ]


def llm_judge(
    client: Any,
    questions: Sequence[str],
    golds: Sequence[str],
    predictions: Sequence[str],
    *,
    max_tokens: int = 8,
) -> list[bool | None]:
    """Judge every prediction with `client.complete` -> verdicts (None: no verdict parsed;
    count them with `sum(v is None for v in verdicts)`).

    `client`: any `jaxmethods.llm.LLMClient` (OpenAI-compatible, local, or `FunctionClient`).
    """
    outs = client.complete(judge_requests(questions, golds, predictions, max_tokens=max_tokens))
    return [parse_judgement(o.text) for o in outs]


def modality_bar_chart(
    modalities: Sequence[str],
    scores: Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    metric: str = "Acc",
    title: str = "",
) -> str:
    """Grouped bars: x = modality, one bar per system, height = mean score (x100) over that
    modality's questions with standard-error bars; NaN scores are left out.

    Args:
      modalities: [n] the modality of each question.
      scores: {system: [n] per-question scores in [0, 1]} (e.g. Acc 0/1).
      path: the PNG to write (Agg canvas, no display); parent folders are created.
    Returns:
      the path written, as a string.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mods_arr = np.asarray([str(m) for m in modalities])
    present = set(mods_arr.tolist())
    mods = [m for m in MODALITIES if m in present] + sorted(present - set(MODALITIES))
    fig = Figure(figsize=(1.4 * max(len(mods), 2) + 2, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(len(scores), 1)
    x = np.arange(len(mods))
    for k, (system, vals) in enumerate(scores.items()):
        v = np.asarray(vals, np.float64)
        if v.shape != mods_arr.shape:
            raise ValueError(
                f"modality_bar_chart: {system!r} has {v.size} scores for {mods_arr.size} questions"
            )
        stats = [mean_and_stderr(v[(mods_arr == m) & ~np.isnan(v)]) for m in mods]
        h, se = (100 * np.array([s[j] for s in stats]) for j in (0, 1))
        offset = (k - (len(scores) - 1) / 2) * width
        ax.bar(x + offset, h, width, yerr=np.nan_to_num(se), capsize=2, label=system)
    counts = [int((mods_arr == m).sum()) for m in mods]
    ax.set_xticks(x, [f"{m}\n(n={c})" for m, c in zip(mods, counts)])
    ax.set_ylabel(f"{metric} (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title or f"{metric} by modality (mean ± s.e.)", fontsize=10)
    if len(scores) > 1:
        ax.legend(fontsize=7, ncols=min(len(scores), 4), loc="upper right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return str(path)
