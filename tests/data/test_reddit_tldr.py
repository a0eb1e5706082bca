"""Reddit TL;DR comparisons loader on tiny files in the HF `comparisons` schema."""

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from jaxmethods.data import reddit_tldr
from jaxmethods.data.preferences import corpus_from_user_pairs
from jaxmethods.data.reddit_tldr import load_reddit_pairs
from jaxmethods.data.user_splits import apply_pair_split

FIXTURE = Path(__file__).parent / "reddit"


def _rows(split):
    return [json.loads(line) for line in (FIXTURE / f"{split}.jsonl").read_text().splitlines()]


def test_users_in_both_splits_and_pairs():
    pairs, stats = load_reddit_pairs(FIXTURE)
    # w4 only labels train rows and w5 only validation rows: both are left out.
    assert Counter(p.user_id for p in pairs) == {"w1": 5 + 3, "w2": 3 + 2, "w3": 6 + 1}
    assert stats.rows == {"train": 18, "validation": 9}
    assert stats.workers == {"train": 4, "validation": 4}
    assert (stats.common_workers, stats.pairs, stats.missing_post) == (3, 20, 1)
    w1 = [p for p in pairs if p.user_id == "w1"]
    assert [p.source_split for p in w1] == ["train"] * 5 + ["validation"] * 3
    assert [p.conversation_id for p in w1] == [f"conv_{k}" for k in range(8)]
    for p, row in zip(w1[:5], [r for r in _rows("train") if r["worker"] == "w1"]):
        assert p.prompt == [{"role": "user", "content": row["info"]["post"]}]
        assert p.chosen == row["summaries"][row["choice"]]["text"]
        assert p.rejected == row["summaries"][1 - row["choice"]]["text"]
    assert w1[5].chosen == " w1 validation 0 summary B"  # choice = 1
    assert w1[7].prompt[0]["content"] == "None"  # null post, rendered as the authors' template does


def test_missing_post_modes():
    article = load_reddit_pairs(FIXTURE, missing_post="article")[0]
    assert [p for p in article if p.user_id == "w1"][7].prompt[0]["content"] == "article w1 9"
    skipped, stats = load_reddit_pairs(FIXTURE, missing_post="skip")
    assert len(skipped) == 19 and stats.missing_post == 1
    with pytest.raises(ValueError, match="missing_post must be one of"):
        load_reddit_pairs(FIXTURE, missing_post="drop")


def test_json_array_and_explicit_files(tmp_path):
    (tmp_path / "tr.json").write_text(json.dumps(_rows("train")))
    shutil.copy(FIXTURE / "validation.jsonl", tmp_path / "va.jsonl")
    pairs, _ = load_reddit_pairs(
        {"train": tmp_path / "tr.json", "validation": tmp_path / "va.jsonl"}
    )
    assert pairs == load_reddit_pairs(FIXTURE)[0]


@pytest.mark.parametrize(
    "lineno, edit, message",
    [
        (3, lambda s: s[:20], r"train.jsonl:3: malformed JSON"),
        (
            4,
            lambda s: json.dumps({**json.loads(s), "choice": 2}),
            r"train.jsonl:4: field 'choice' must be 0 or 1",
        ),
        (
            5,
            lambda s: json.dumps({k: v for k, v in json.loads(s).items() if k != "worker"}),
            r"train.jsonl:5: missing field 'worker'",
        ),
        (
            6,
            lambda s: json.dumps({**json.loads(s), "summaries": [{"text": "a"}]}),
            r"train.jsonl:6: field 'summaries' must be a list of 2",
        ),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, lineno, edit, message):
    shutil.copy(FIXTURE / "validation.jsonl", tmp_path / "validation.jsonl")
    lines = (FIXTURE / "train.jsonl").read_text().splitlines()
    lines[lineno - 1] = edit(lines[lineno - 1])
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        load_reddit_pairs(tmp_path)


def test_missing_split_file(tmp_path):
    shutil.copy(FIXTURE / "train.jsonl", tmp_path / "train.jsonl")
    with pytest.raises(FileNotFoundError, match=r"no validation\.jsonl"):
        load_reddit_pairs(tmp_path)


def test_hf_id_uses_load_dataset_comparisons(monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, *, split, revision=None):
        calls.append((path, name, split, revision))
        return _rows(split)

    import datasets

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    pairs, _ = load_reddit_pairs(reddit_tldr.HF_DATASET_ID)
    assert pairs == load_reddit_pairs(FIXTURE)[0]
    assert calls == [
        ("openai/summarize_from_feedback", "comparisons", "train", None),
        ("openai/summarize_from_feedback", "comparisons", "validation", None),
    ]


def test_reddit_protocol_truncates_seen_and_unseen_train_pairs():
    pairs, _ = load_reddit_pairs(FIXTURE)
    records = [
        {
            "user_id": p.user_id,
            "conversation_id": p.conversation_id,
            "split": p.source_split,
            "chosen_idx": 2 * i,
            "rejected_idx": 2 * i + 1,
        }
        for i, p in enumerate(pairs)
    ]
    corpus = apply_pair_split(
        corpus_from_user_pairs(np.zeros((2 * len(pairs), 4), np.float32), records),
        seed=42,
        seen_train_limit=2,
        unseen_train_limit=1,
    )
    seen, unseen = corpus.seen_unseen()
    # sorted + Random(42).shuffle gives [w2, w1, w3]; the first half (1 user) is seen.
    assert [corpus.users[u] for u in seen] == ["w2"]
    assert [corpus.users[u] for u in unseen] == ["w1", "w3"]
    n_train = {
        u: int(((corpus.pair_user == corpus.users.index(u)) & (corpus.pair_split == 0)).sum())
        for u in corpus.users
    }
    n_test = {
        u: int(((corpus.pair_user == corpus.users.index(u)) & (corpus.pair_split == 1)).sum())
        for u in corpus.users
    }
    assert n_train == {"w2": 2, "w1": 1, "w3": 1}  # 3, 5 and 6 train pairs, truncated
    assert n_test == {"w2": 2, "w1": 3, "w3": 1}
