"""PreferenceCorpus: validation, save/load round trip, and clear errors on malformed files."""

import dataclasses
import json

import ml_dtypes
import numpy as np
import pytest

from jaxmethods.data.preferences import (
    PreferenceCorpus,
    corpus_from_user_pairs,
    load_corpus,
    save_corpus,
)


def _corpus(with_meta=True, n_rows=10, dim=3):
    rng = np.random.default_rng(0)
    return PreferenceCorpus(
        embeddings=rng.normal(size=(n_rows, dim)).astype(np.float32),
        users=["b", "a"],
        pair_user=np.array([0, 0, 1, 1, 0]),
        pair_conv=np.array([0, 0, 1, 2, 3]),
        pair_split=np.array([0, 1, 0, 1, 0]),
        chosen=np.array([0, 2, 4, 6, 8]),
        rejected=np.array([1, 3, 5, 7, 9]),
        meta=[
            {"conversation_id": f"c{i}", "prompt": [{"role": "user", "content": "hé"}]}
            for i in range(5)
        ]
        if with_meta
        else None,
        user_seen=np.array([True, False]),
    )


def _assert_same(a, b):
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    for f in ("pair_user", "pair_conv", "pair_split", "chosen", "rejected"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        assert getattr(a, f).dtype == getattr(b, f).dtype
    assert a.users == b.users and a.meta == b.meta
    np.testing.assert_array_equal(a.user_seen, b.user_seen)


def test_dtypes_and_accessors():
    c = _corpus()
    assert c.embeddings.dtype == np.float32 and c.pair_split.dtype == np.int8
    assert c.chosen.dtype == c.pair_user.dtype == np.int32
    assert (c.num_users, c.num_pairs, c.dim) == (2, 5, 3)
    assert [p.tolist() for p in c.user_pairs()] == [[0, 1, 4], [2, 3]]
    sub = c.select_pairs(np.array([False, True, False, True, True]))
    np.testing.assert_array_equal(sub.chosen, [2, 6, 8])
    assert [m["conversation_id"] for m in sub.meta] == ["c1", "c3", "c4"]
    seen, unseen = c.seen_unseen()
    assert seen.tolist() == [0] and unseen.tolist() == [1]


def test_bf16_embeddings_are_converted():
    emb = np.arange(12, dtype=np.float32).reshape(4, 3).astype(ml_dtypes.bfloat16)
    c = PreferenceCorpus(emb, ["u"], [0], [0], [0], [0], [1])
    assert c.embeddings.dtype == np.float32
    np.testing.assert_array_equal(c.embeddings, np.arange(12, dtype=np.float32).reshape(4, 3))


def test_seen_unseen_without_assignment_uses_authors_rule():
    c = dataclasses.replace(_corpus(), user_seen=None)
    seen, unseen = c.seen_unseen(42)
    assert sorted(seen.tolist() + unseen.tolist()) == [0, 1] and len(seen) == 1


@pytest.mark.parametrize(
    "change, message",
    [
        (
            dict(chosen=np.array([0, 2, 4, 6, 10])),
            r"chosen: pair 4 has index 10, out of range for 10",
        ),
        (dict(rejected=np.array([-1, 3, 5, 7, 9])), r"rejected: pair 0 has index -1"),
        (
            dict(pair_user=np.array([0, 0, 1, 2, 0])),
            r"pair_user: pair 3 has index 2, out of range for 2 users",
        ),
        (dict(pair_split=np.array([0, 1, 2, 1, 0])), r"pair_split: .* pair 2 has 2"),
        (dict(pair_conv=np.array([0, 0, 1])), r"pair_conv: expected shape \[5\]"),
        (dict(embeddings=np.zeros(10, np.float32)), r"embeddings: expected \[N, D\]"),
        (dict(users=["a", "a"]), r"duplicate user ids \['a'\]"),
        (dict(meta=[{}]), r"meta: expected 5 entries"),
        (dict(user_seen=np.array([True])), r"user_seen: expected shape \[2\]"),
    ],
)
def test_validate_names_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(_corpus(), **change)


def test_validate_rejects_nan_and_non_integer_indices():
    emb = np.zeros((10, 3), np.float32)
    emb[7, 1] = np.nan
    with pytest.raises(ValueError, match="row 7 has NaN"):
        dataclasses.replace(_corpus(), embeddings=emb)
    with pytest.raises(TypeError, match="chosen: integer array expected"):
        dataclasses.replace(_corpus(), chosen=np.array([0.0, 2, 4, 6, 8]))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_save_load_round_trip(tmp_path, dtype):
    c = _corpus()
    if dtype == "bfloat16":  # values representable in bf16 round-trip exactly
        c = dataclasses.replace(c, embeddings=c.embeddings.astype(ml_dtypes.bfloat16))
    save_corpus(c, tmp_path / "corpus", embedding_dtype=dtype)
    assert (tmp_path / "corpus" / "embeddings.npy").is_file()
    lines = (tmp_path / "corpus" / "pairs.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and json.loads(lines[2])["user"] == "a"
    _assert_same(c, load_corpus(tmp_path / "corpus"))
    if dtype == "float32":
        _assert_same(c, load_corpus(tmp_path / "corpus", mmap=True))


def test_load_without_header_or_meta(tmp_path):
    c = dataclasses.replace(_corpus(with_meta=False), user_seen=None)
    save_corpus(c, tmp_path)
    (tmp_path / "corpus.json").unlink()
    loaded = load_corpus(tmp_path)
    assert loaded.users == ["b", "a"] and loaded.meta is None and loaded.user_seen is None
    _assert_same(c, loaded)


def _write_pairs(tmp_path, lines):
    save_corpus(_corpus(), tmp_path)
    path = tmp_path / "pairs.jsonl"
    original = path.read_text(encoding="utf-8").splitlines()
    for lineno, text in lines.items():
        original[lineno - 1] = text
    path.write_text("\n".join(original) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"user": "a", "conversation": 1', r"pairs.jsonl:3: malformed JSON"),
        (
            '{"user": "a", "conversation": 1, "split": 0, "rejected": 5}',
            r"pairs.jsonl:3: missing field 'chosen'",
        ),
        (
            '{"user": "a", "conversation": 1, "split": 0, "chosen": 4, "rejected": 99}',
            r"pairs.jsonl:3: rejected row 99 is out of range for .*embeddings.npy with 10 rows",
        ),
        (
            '{"user": "a", "conversation": 1, "split": 3, "chosen": 4, "rejected": 5}',
            r"pairs.jsonl:3: split must be 0",
        ),
        (
            '{"user": "zz", "conversation": 1, "split": 0, "chosen": 4, "rejected": 5}',
            r"pairs.jsonl:3: user 'zz' is not listed",
        ),
        (
            '{"user": "a", "conversation": "x", "split": 0, "chosen": 4, "rejected": 5}',
            r"pairs.jsonl:3: field 'conversation' must be an integer",
        ),
        ("[1, 2]", r"pairs.jsonl:3: expected a JSON object"),
    ],
)
def test_malformed_pairs_name_file_and_line(tmp_path, line, message):
    _write_pairs(tmp_path, {3: line})
    with pytest.raises(ValueError, match=message):
        load_corpus(tmp_path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"embeddings\.npy does not exist"):
        load_corpus(tmp_path)


def test_corpus_from_user_pairs_keeps_record_order():
    recs = [
        {
            "user_id": "u2",
            "conversation_id": "x",
            "chosen_idx": 0,
            "rejected_idx": 1,
            "split": "train",
        },
        {
            "user_id": "u1",
            "conversation_id": "x",
            "chosen_idx": 2,
            "rejected_idx": 3,
            "split": "val",
        },
        {"user_id": "u2", "conversation_id": "y", "chosen_idx": 4, "rejected_idx": 5},
    ]
    c = corpus_from_user_pairs(np.zeros((6, 2), np.float32), recs)
    assert c.users == ["u2", "u1"]
    np.testing.assert_array_equal(c.pair_conv, [0, 1, 2])  # same id, different users: distinct
    np.testing.assert_array_equal(c.pair_split, [0, 1, 0])
    assert c.meta[1]["split"] == "val"
    with pytest.raises(ValueError, match="record 0 is missing field 'rejected_idx'"):
        corpus_from_user_pairs(
            np.zeros((6, 2), np.float32), [{"user_id": "u", "conversation_id": 1, "chosen_idx": 0}]
        )
