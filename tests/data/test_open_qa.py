"""NQ-open / TriviaQA readers on small files in the original formats (tests/data/selfselect/),
the HF field mapping (datasets.load_dataset replaced by in-memory rows), and bad input: a
question without answers names the file and line."""

import json
import os
import sys
import types

import pytest

from jaxmethods.data import open_qa
from jaxmethods.data.open_qa import (
    load_open_qa,
    read_dpr_qa_csv,
    read_nq_open_jsonl,
    read_triviaqa_json,
)

HERE = os.path.join(os.path.dirname(__file__), "selfselect")


def test_nq_open_jsonl():
    rows = read_nq_open_jsonl(os.path.join(HERE, "NQ-open.sample.jsonl"))
    assert [r.question for r in rows] == [
        "who wrote the lord of the rings", "where is the eiffel tower",
        "when did apollo 11 land on the moon",
    ]  # fmt: skip
    assert rows[0].answers == ("J. R. R. Tolkien", "Tolkien") and rows[2].id == "4"


def test_triviaqa_json_merges_value_aliases_and_normalized_aliases():
    rows = read_triviaqa_json(os.path.join(HERE, "unfiltered-web-dev.sample.json"))
    assert rows[0].id == "tc_1"
    assert rows[0].answers == ("Sinclair Lewis", "Harry Sinclair Lewis", "sinclair lewis",
                               "harry sinclair lewis")  # fmt: skip
    assert rows[1].answers == ("Cosmic", "cosmic")


def test_dpr_qa_csv_and_dispatch_by_extension():
    path = os.path.join(HERE, "nq-test.sample.qa.csv")
    rows = read_dpr_qa_csv(path)
    assert rows[1].answers == ("581 (second edition)", "581")
    assert load_open_qa("nq", path, limit=1) == rows[:1]
    assert len(load_open_qa("tqa", os.path.join(HERE, "unfiltered-web-dev.sample.json"))) == 2


def test_questions_without_answers_name_file_and_line(tmp_path):
    nq = tmp_path / "nq.jsonl"
    nq.write_text(json.dumps({"question": "q1", "answer": ["a"]}) + "\n"
                  + json.dumps({"question": "q2", "answer": []}) + "\n")  # fmt: skip
    with pytest.raises(ValueError, match=r"nq\.jsonl:2: the question has no answers"):
        read_nq_open_jsonl(nq)
    nq.write_text(json.dumps({"question": "q1"}) + "\n")
    with pytest.raises(ValueError, match=r"nq\.jsonl:1: the question has no answers"):
        read_nq_open_jsonl(nq)
    tqa = tmp_path / "tqa.json"
    tqa.write_text(json.dumps({"Data": [{"Question": "q", "QuestionId": "x9", "Answer": {}}]}))
    with pytest.raises(ValueError, match=r"tqa\.json: Data\[0\] \(QuestionId x9\).*no answers"):
        read_triviaqa_json(tqa)
    csv = tmp_path / "qa.csv"
    csv.write_text("q1\t['a']\nq2\t[]\n")
    with pytest.raises(ValueError, match=r"qa\.csv:2: the question has no answers"):
        read_dpr_qa_csv(csv)
    csv.write_text("q1\tnot a list\n")
    with pytest.raises(ValueError, match=r"qa\.csv:1: the answers field"):
        read_dpr_qa_csv(csv)


def test_hf_rows_are_mapped(monkeypatch):
    calls = []

    def fake_load(name, config=None, split=None):
        calls.append((name, config, split))
        if name == open_qa.NQ_OPEN:
            return [{"question": "q", "answer": ["a", "b"]}]
        return [
            {
                "question": "t",
                "question_id": "tq1",
                "answer": {"value": "V", "aliases": ["V", "v2"], "normalized_aliases": ["v"]},
            }
        ]

    # A stand-in `datasets` module: offline, and no multi-second import.
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=fake_load))
    assert load_open_qa("nq", split="validation")[0].answers == ("a", "b")
    t = load_open_qa("tqa", split="validation")[0]
    assert t.id == "tq1" and t.answers == ("V", "v2", "v")
    assert calls == [(open_qa.NQ_OPEN, None, "validation"),
                     (open_qa.TRIVIA_QA, "unfiltered.nocontext", "validation")]  # fmt: skip
    with pytest.raises(ValueError, match="dataset 'squad'"):
        load_open_qa("squad")
