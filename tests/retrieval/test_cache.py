"""Cached top-k files (DPR/FiD retriever-output JSONL) and the CachedRetriever."""

import json

import numpy as np
import pytest

from jaxmethods.retrieval import (
    BM25Retriever,
    CachedQuestion,
    CachedRetriever,
    DocStore,
    Passage,
    cache_retrieval,
    read_cached_topk,
    write_cached_topk,
)

# A row as DPR's dense_retriever.py writes it (scores as strings, has_answer per ctx).
DPR_ROW = {
    "question": "who got the first nobel prize in physics",
    "answers": ["Wilhelm Conrad Röntgen"],
    "ctxs": [
        {
            "id": "628725",
            "title": "Nobel Prize in Physics",
            "text": "The first ...",
            "score": "80.02",
            "has_answer": True,
        },
        {
            "id": "284495",
            "title": "Röntgen",
            "text": "Röntgen was ...",
            "score": "79.1",
            "has_answer": False,
        },
    ],
}


def test_reads_dpr_rows_and_round_trips(tmp_path):
    path = tmp_path / "nq-test.jsonl"
    path.write_text(json.dumps(DPR_ROW, ensure_ascii=False) + "\n", encoding="utf-8")
    (row,) = read_cached_topk(path)
    assert row.question == DPR_ROW["question"] and row.answers == DPR_ROW["answers"]
    assert row.scores == [80.02, 79.1] and row.id is None
    assert row.passages[0] == Passage(
        "628725", "The first ...", "Nobel Prize in Physics", {"has_answer": True}
    )
    rows = [
        row,
        CachedQuestion("q2?", [Passage("9", "nine")], [1.5], ["x"], id="q2", meta={"split": "dev"}),
    ]
    write_cached_topk(tmp_path / "out.jsonl", rows)
    assert list(read_cached_topk(tmp_path / "out.jsonl")) == rows
    assert json.loads((tmp_path / "out.jsonl").read_text().splitlines()[1])["split"] == "dev"


def test_malformed_rows_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    bad = dict(DPR_ROW, ctxs=[{"id": "1", "score": 2.0}])
    path.write_text(json.dumps(DPR_ROW) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: ctxs\[0\] must be an object"):
        list(read_cached_topk(path))
    path.write_text(json.dumps({"answers": []}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: missing string field 'question'"):
        list(read_cached_topk(path))


def test_cached_retriever_serves_what_was_cached(tmp_path):
    store = DocStore(
        Passage(f"d{i}", t)
        for i, t in enumerate(
            ["red apples grow", "green apples fall", "the sky is blue", "red sky at night"]
        )
    )
    bm25 = BM25Retriever(store, stopwords=None)
    questions = ["red apples", "blue sky"]
    rows = cache_retrieval(
        tmp_path / "c.jsonl", bm25, questions, 3, answers=[["a"], ["b"]], ids=["q1", "q2"]
    )
    assert rows == list(read_cached_topk(tmp_path / "c.jsonl"))
    cached = CachedRetriever(tmp_path / "c.jsonl")
    scores, indices = cached.search(questions[::-1], 5)
    want_s, want_i = bm25.search(questions[::-1], 3)
    got_ids = [[cached.docs[int(i)].id for i in row[:3]] for row in indices]
    assert got_ids == [[store[int(i)].id for i in row] for row in want_i]
    np.testing.assert_allclose(scores[:, :3], want_s, rtol=1e-6)
    assert (indices[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    assert cached.lookup("blue sky").answers == ["b"]
    with pytest.raises(KeyError, match=r"c\.jsonl: no cached retrieval for question 'green\?'"):
        cached.search(["green?"], 2)
    by_id = CachedRetriever(tmp_path / "c.jsonl", key="id")
    np.testing.assert_array_equal(by_id.search(["q1"], 2)[1], cached.search(["red apples"], 2)[1])
