"""Reader for the benchmark's `QA.json` -> `QAItem`s (task codes, modality, time window).

Accepts flat items `{question, answer, task|Type, modality, source[], time, explanation}` and the
generator's `{question, answers: [{answer, explanation: [...], confidence, source: [...]}]}`,
optionally wrapped as `{"questions": [...]}` (see `loaders` for the whole layout).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .json_fields import (
    LoaderError,
    as_list,
    get_field,
    lower_keys,
    need_field,
    norm_key,
    read_records,
)
from .records import TASKS, Chart, Datum, NewsItem, QAItem, TimeSpan, parse_time

# schema.xlsx "Type" words -> the paper's task codes.
TYPE_TO_TASK = {
    "extraction": "IE",
    "calculation": "AC",
    "trend": "TA",
    "logicalreasoning": "LR",
    "sentiment": "SC",
    "event": "ED",
    "counterfactual": "CR",
    "comparison": "CP",
    "sorting": "ST",
    "counting": "CT",
}


def _tasks_of(value: Any, where: str) -> str:
    text = str(value).strip()
    parts = [p for p in re.split(r"[&,/+|\s]+", text) if p]
    codes = []
    for p in parts:
        code = p.upper() if p.upper() in TASKS else TYPE_TO_TASK.get(norm_key(p))
        if code is None:
            raise LoaderError(f"{where}: unknown task/Type {p!r} in {text!r}")
        if code not in codes:
            codes.append(code)
    if not codes:
        raise LoaderError(f"{where}: empty task/Type")
    return "&".join(codes)


_MODALITY_OF_TYPE = {"FinancialTable": "Table", "StockPrice": "Price"}


def _modality_of(sources: tuple[str, ...], lookup: Callable[[str], Any]) -> str:
    kinds = set()
    for s in sources:
        rec = lookup(s)
        if isinstance(rec, Datum):
            kinds.add(_MODALITY_OF_TYPE.get(rec.source_type, rec.source_type))
        elif isinstance(rec, NewsItem):
            kinds.add("News")
        elif isinstance(rec, Chart):
            kinds.add("Chart")
    if len(kinds) == 1:
        return kinds.pop()
    return "Hybrid" if kinds else "Unknown"


def _explanation_text(value: Any) -> str:
    if isinstance(value, list):
        steps = []
        for k, step in enumerate(value, 1):
            if isinstance(step, dict):
                eq = get_field(step, "equation", default="")
                text = str(get_field(step, "explanation", default=""))
                steps.append(f"Step{k}: {text}" + (f" [{eq}]" if eq and eq != '""' else ""))
            else:
                steps.append(f"Step{k}: {step}")
        return "\n".join(steps)
    return "" if value is None else str(value)


def raw_sources(rec: dict[str, Any]) -> tuple[str, ...]:
    """A QA record's source uuids: `source(s)` or `answers[0].source(s)`."""
    raw = get_field(rec, "source", "sources")
    answers = get_field(rec, "answers")
    if raw is None and isinstance(answers, list) and answers and isinstance(answers[0], dict):
        raw = get_field(answers[0], "source", "sources")
    return as_list(raw)


def load_qa(
    path: str | Path,
    by_uuid: dict[str, Any] | None = None,
    aliases: dict[str, tuple[str, ...]] | None = None,
) -> list[QAItem]:
    """QA.json -> [QAItem] (see the module docstring for the accepted layouts).

    `by_uuid` (the corpus records) infers a missing modality/time from the sources; `aliases`
    expands record-level source uuids to datum uuids.
    """
    path = Path(path)
    by_uuid = by_uuid or {}
    aliases = aliases or {}
    out = []
    for i, raw_rec in enumerate(read_records(path)):
        where, rec = f"{path.name}[{i}]", lower_keys(raw_rec)
        question = str(need_field(rec, where, "question", "Question"))
        answers = get_field(rec, "answers")
        inner = answers[0] if isinstance(answers, list) and answers else {}
        if not isinstance(inner, dict):
            inner = {"answer": inner}
        answer = get_field(rec, "answer", "Answer", default=get_field(inner, "answer"))
        if answer is None:
            raise LoaderError(f"{where}: missing field 'answer' (or answers[0].answer)")
        if isinstance(answer, list):
            answer = ", ".join(str(a) for a in answer)
        sources: list[str] = []
        for s in raw_sources(rec):
            sources.extend(aliases.get(s, (s,)))
        task_raw = get_field(rec, "task", "Task", "Type", "task_type", "question_type")
        if task_raw is None:
            raise LoaderError(f"{where}: missing field 'task' (or schema 'Type')")
        task = _tasks_of(task_raw, where)
        modality = get_field(rec, "modality", "Modality", "data_type")
        if modality is None:
            modality = _modality_of(tuple(sources), by_uuid.get)
        modality = str(modality)
        time_raw = get_field(rec, "time", "Time", "window")
        if time_raw is not None:
            time = parse_time(str(time_raw), where=f"{where} field 'time'")
        else:
            spans = [by_uuid[s].time for s in sources if s in by_uuid]
            time = (
                TimeSpan(min(t.start for t in spans), max(t.end for t in spans)) if spans else None
            )
        expl = get_field(rec, "explanation", default=get_field(inner, "explanation"))
        out.append(
            QAItem(
                qid=str(get_field(rec, "qid", "id", "uuid", default=f"q{i}")),
                question=question,
                answer=str(answer),
                task=task,
                modality=modality,
                sources=tuple(sources),
                time=time,
                explanation=_explanation_text(expl),
            )
        )
    return out
