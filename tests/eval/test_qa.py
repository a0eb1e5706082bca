"""Open-QA metrics on hand-made examples: SQuAD/DPR normalisation, contains-accuracy, EM, the
standard error and the Self-Selection source breakdown (expected values written out by hand)."""

import math

import pytest

from jaxmethods.eval.qa import (
    contains_match,
    exact_match,
    mean_and_stderr,
    normalize_answer,
    qa_scores,
    source_breakdown,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Eiffel Tower", "eiffel tower"),  # case + article
        ("  Paris,   France. ", "paris france"),  # punctuation + whitespace
        ("an apple a day", "apple day"),  # every article
        ("Theatre of the Absurd", "theatre of absurd"),  # "the" inside, not in "theatre"
        ("U.S.A.", "usa"),
        ("rock-'n'-roll!", "rocknroll"),
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_contains_match_aliases_case_punctuation_and_word_boundaries():
    assert contains_match("I think it is PARIS, France.", ["paris"])
    assert contains_match("It's the Big Apple", ["New York City", "big apple"])  # 2nd alias
    assert contains_match("answer: J.R.R. Tolkien", ["JRR Tolkien"])
    assert not contains_match("a comparison", ["paris"])  # inside a word
    assert not contains_match("London", ["Paris", "France"])
    assert not contains_match("anything", ["", "  ", "the"])  # empty after normalisation


def test_exact_match():
    assert exact_match("The Beatles!", ["beatles"])
    assert not exact_match("the beatles band", ["beatles"])
    assert exact_match("1969", ["July 1969", "1969"])


def test_mean_and_stderr_by_hand():
    # [1, 0, 1, 1]: mean 0.75, sample sd sqrt((3 * 0.0625 + 0.5625) / 3) = 0.5, se 0.5 / 2.
    m, se = mean_and_stderr([1, 0, 1, 1])
    assert m == pytest.approx(0.75) and se == pytest.approx(0.25)
    assert mean_and_stderr([1.0]) == (1.0, 0.0)
    assert all(math.isnan(x) for x in mean_and_stderr([]))
    s = qa_scores(["Paris", "the paris", "Rome"], [["paris"], ["Paris"], ["Milan"]])
    assert s["acc"] == pytest.approx(2 / 3) and s["em"] == pytest.approx(2 / 3)


def test_source_breakdown_by_hand():
    internal = [1, 1, 0, 0, 1, 0]
    external = [1, 0, 1, 0, 0, 1]
    final = [1, 1, 0, 0, 0, 1]  # exactly-one-right rows: 1, 2, 4, 5 -> right at 1 and 5
    b = source_breakdown(internal, external, final)
    assert b["both"] == pytest.approx(1 / 6) and b["neither"] == pytest.approx(1 / 6)
    assert b["internal_only"] == pytest.approx(2 / 6) and b["external_only"] == pytest.approx(2 / 6)
    assert b["oracle"] == pytest.approx(5 / 6)
    assert b["selection_acc"] == pytest.approx(0.5) and b["selection_n"] == 4
    assert math.isnan(source_breakdown([1], [1], [1])["selection_acc"])
    with pytest.raises(ValueError, match="shapes"):
        source_breakdown([1, 0], [1], [1])
