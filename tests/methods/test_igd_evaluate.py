"""Exact-match ranks and HR/NDCG against hand-computed values (authors' calc.py semantics)."""

import math

import numpy as np
import pytest

from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.methods.igd.evaluate import (
    clean_prediction,
    decode_beams,
    match_ranks,
    outside_catalog_count,
    ranking_metrics,
)


def test_ranks_and_metrics_by_hand():
    preds = [
        ["Blue Owl", "Red Fox", "Green"],  # target at rank 1
        ["Red Fox", "Blue Owl", "Green"],  # rank 0
        ["Green", "Green", "Red"],  # no match
        ["X", "Y", "Red Fox"],  # rank 2
    ]
    targets = ["Red Fox", "Red Fox\n", "Blue Owl", '"Red Fox"']
    ranks = match_ranks(preds, targets)
    np.testing.assert_array_equal(ranks, [1, 0, -1, 2])
    m = ranking_metrics(ranks, ks=(1, 3, 5, 10, 20))
    assert m["hr@1"] == pytest.approx(1 / 4)
    assert m["hr@3"] == pytest.approx(3 / 4)
    assert m["ndcg@1"] == pytest.approx(1 / 4)
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1 + 1 / math.log2(4)) / 4)
    assert m["hr@20"] == m["hr@10"] and m["ndcg@20"] == m["ndcg@10"]  # only 3 beams
    assert ranking_metrics(np.array([1]), ks=(5,))["ndcg@5"] == pytest.approx(0.6309, abs=1e-4)


def test_duplicate_beams_take_the_last_match_like_calc_py():
    preds = [["A", "B", "A"]]
    assert match_ranks(preds, ["A"])[0] == 2
    assert match_ranks(preds, ["A"], duplicate="first")[0] == 0
    with pytest.raises(ValueError, match="prediction lists"):
        match_ranks(preds, ["A", "B"])


def test_decode_and_clean():
    assert clean_prediction("junk Response: Red Fox\n") == "Red Fox"
    assert clean_prediction(" Red Fox\n") == "Red Fox"
    tok = build_tiny_tokenizer(["Red Fox\n", "Blue Owl\n"], vocab_size=80)
    ids = [tok("Red Fox\n", add_special_tokens=False)["input_ids"] + [tok.eos_token_id],
           tok("Blue Owl\n", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]  # fmt: skip
    width = max(map(len, ids)) + 2
    seqs = np.full((1, 2, width), tok.pad_token_id)
    for r, x in enumerate(ids):
        seqs[0, r, : len(x)] = x
    texts = decode_beams(tok, seqs, np.array([[len(x) for x in ids]]))
    assert texts == [["Red Fox", "Blue Owl"]]
    assert outside_catalog_count([*texts, ["Nope", "Red Fox"]], {"Red Fox", "Blue Owl"}) == 1
