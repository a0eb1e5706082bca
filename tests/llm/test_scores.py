"""Judge-score parsing: valid scores in range, None for anything else, never an exception."""

import pytest

from jaxmethods.llm import parse_score, parse_scores


@pytest.mark.parametrize(
    "text, low, high, want",
    [
        ("The reply is warm.\nScore: 4", 1, 5, 4),
        ("**Score:** 3", 1, 5, 3),
        ("I would give this 4/5.", 1, 5, 4),
        ("4 out of 5", 1, 5, 4),
        ("**2**", 1, 5, 2),
        ("Verdict: [[5]]", 1, 5, 5),
        ("3", 1, 5, 3),
        (" 3. ", 1, 5, 3),
        ("Total Score: 85/100", 0, 100, 85),
        ("total score: 85 / 100", 0, 100, 85),
        ("Score: 1 ... on reflection, Final score: 2", 1, 5, 2),  # the last verdict wins
        ("Rating: 4.0", 1, 5, 4),
    ],
)
def test_valid_scores(text, low, high, want):
    got = parse_score(text, low, high, integer=True)
    assert got == want and isinstance(got, int)


@pytest.mark.parametrize(
    "text",
    [
        "Score: 7",  # out of range
        "Score: 0",
        "no score here",
        "",
        "   ",
        None,
        42,
        "3/10",  # a fraction of another scale
        "Score: 3.5",  # not whole
        "Score: " + "9" * 400,  # huge number
    ],
)
def test_invalid_scores_are_none(text):
    assert parse_score(text, 1, 5, integer=True) is None


def test_float_scores_and_first_match():
    assert parse_score("Score: 3.5", 1, 5) == 3.5
    assert parse_score("Score: 1 then Score: 2", 1, 5, which="first") == 1.0
    assert parse_scores(["Score: 2", "none", "5/5"], 1, 5) == [2.0, None, 5.0]
    with pytest.raises(ValueError, match="which"):
        parse_score("Score: 2", 1, 5, which="middle")
