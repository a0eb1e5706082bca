"""Open-domain QA questions with gold answer aliases: NQ-open and TriviaQA (unfiltered).

Sources (`load_open_qa`):
- HF datasets: `google-research-datasets/nq_open` (fields `question`, `answer`: list of strings;
  splits train / validation) and `mandarjoshi/trivia_qa`, config `unfiltered.nocontext` (field
  `answer` with `value`, `aliases`, `normalized_aliases`; splits train / validation / test,
  whose test answers are hidden);
- original files: NQ-open JSONL (`NQ-open.{train,dev,efficientqa.test}.jsonl`, one
  `{"question", "answer": [...]}` a line; `answers` is accepted too), TriviaQA JSON
  (`unfiltered-web-{train,dev}.json`: `{"Data": [{"Question", "QuestionId", "Answer":
  {"Value", "Aliases", "NormalizedAliases"}}]}`) and DPR's `*.qa.csv` (question TAB a Python
  list of answers, no header).

A question without any answer is an error naming the file and line (the entry index for
TriviaQA's JSON, which is not line-based), since contains-accuracy would silently count it
wrong.
"""

from __future__ import annotations

import ast
import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from jaxmethods.data.jsonl import jsonl_objects

NQ_OPEN = "google-research-datasets/nq_open"
TRIVIA_QA = "mandarjoshi/trivia_qa"
TRIVIA_QA_CONFIG = "unfiltered.nocontext"
DATASETS = ("nq", "tqa")


@dataclass(frozen=True)
class OpenQAExample:
    """One question: `id`, `question`, gold `answers` (aliases, deduplicated, in order)."""

    id: str
    question: str
    answers: tuple[str, ...]


def _answers(where: str, values: Iterable[Any]) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        if not isinstance(v, str):
            raise ValueError(f"{where}: answers must be strings, got {type(v).__name__}")
        if v.strip() and v not in out:
            out.append(v)
    if not out:
        raise ValueError(f"{where}: the question has no answers")
    return tuple(out)


def _question(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: missing or empty 'question'")
    return value


def read_nq_open_jsonl(path: str | os.PathLike) -> list[OpenQAExample]:
    """NQ-open JSONL (`{"question", "answer": [...]}`; `answers` accepted); ids = line numbers."""
    out = []
    for where, row in jsonl_objects(path):
        answers = row.get("answer", row.get("answers"))
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list):
            raise ValueError(f"{where}: the question has no answers (field 'answer')")
        lineno = where.rsplit(":", 1)[1]
        out.append(OpenQAExample(str(row.get("id", lineno)), _question(where, row.get("question")),
                                 _answers(where, answers)))  # fmt: skip
    return out


def _tqa_aliases(answer: Any) -> list[str]:
    if not isinstance(answer, dict):
        return []
    get = lambda *keys: next((answer[k] for k in keys if k in answer), None)
    value = get("Value", "value")
    aliases = list(get("Aliases", "aliases") or [])
    normalized = list(get("NormalizedAliases", "normalized_aliases") or [])
    return ([value] if isinstance(value, str) else []) + aliases + normalized


def read_triviaqa_json(path: str | os.PathLike) -> list[OpenQAExample]:
    """TriviaQA's original JSON (`{"Data": [...]}`); answers = Value + Aliases +
    NormalizedAliases."""
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("Data"), list):
        raise ValueError(f"{path}: expected a TriviaQA object with a 'Data' list")
    out = []
    for i, row in enumerate(data["Data"]):
        qid = str(row.get("QuestionId", i)) if isinstance(row, dict) else str(i)
        where = f"{path}: Data[{i}] (QuestionId {qid})"
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected an object")
        out.append(OpenQAExample(qid, _question(where, row.get("Question")),
                                 _answers(where, _tqa_aliases(row.get("Answer")))))  # fmt: skip
    return out


def read_dpr_qa_csv(path: str | os.PathLike) -> list[OpenQAExample]:
    """DPR's `*.qa.csv`: `question<TAB>['answer', ...]` per line, no header."""
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, fields in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if not fields:
                continue
            where = f"{path}:{lineno}"
            if len(fields) != 2:
                raise ValueError(
                    f"{where}: expected 'question<TAB>[answers]', got {len(fields)} fields"
                )
            try:
                answers = ast.literal_eval(fields[1])
            except (ValueError, SyntaxError):
                raise ValueError(f"{where}: the answers field is not a Python list") from None
            if not isinstance(answers, list):
                raise ValueError(f"{where}: the question has no answers")
            out.append(OpenQAExample(str(lineno), _question(where, fields[0]),
                                     _answers(where, answers)))  # fmt: skip
    return out


def _from_hf(dataset: str, source: str, split: str) -> list[OpenQAExample]:
    import datasets

    if dataset == "nq":
        rows = datasets.load_dataset(source, split=split)
    else:
        rows = datasets.load_dataset(source, TRIVIA_QA_CONFIG, split=split)
    out = []
    for i, row in enumerate(rows):
        where = f"{source}:{split}: row {i}"
        if dataset == "nq":
            answers = row.get("answer") or []
            qid = str(i)
        else:
            answers = _tqa_aliases(row.get("answer"))
            qid = str(row.get("question_id") or i)
        out.append(OpenQAExample(qid, _question(where, row.get("question")),
                                 _answers(where, answers)))  # fmt: skip
    return out


def load_open_qa(
    dataset: str, source: str = "", split: str = "validation", limit: int = -1
) -> list[OpenQAExample]:
    """Questions of `dataset` ("nq" or "tqa") from a local file (by extension: .jsonl NQ-open,
    .json TriviaQA, .csv / .tsv DPR qa) or an HF dataset id ("" = the default id); the first
    `limit` (-1 = all)."""
    if dataset not in DATASETS:
        raise ValueError(f"load_open_qa: dataset {dataset!r} is not one of {DATASETS}")
    if source and os.path.exists(source):
        ext = str(source).lower()
        if ext.endswith(".jsonl"):
            rows = read_nq_open_jsonl(source)
        elif ext.endswith(".json"):
            rows = read_triviaqa_json(source)
        elif ext.endswith((".csv", ".tsv")):
            rows = read_dpr_qa_csv(source)
        else:
            raise ValueError(f"{source}: unknown question file type (.jsonl, .json, .csv, .tsv)")
    else:
        rows = _from_hf(dataset, source or (NQ_OPEN if dataset == "nq" else TRIVIA_QA), split)
    return rows if limit < 0 else rows[:limit]


def answers_of(rows: Sequence[OpenQAExample]) -> list[list[str]]:
    return [list(r.answers) for r in rows]
