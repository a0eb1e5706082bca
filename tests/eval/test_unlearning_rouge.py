"""ROUGE against `rouge_score.rouge_scorer.RougeScorer` itself, NLTK's Porter stemmer, and an
independent transcription of the tokeniser and the LCS / unigram-overlap formulas."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from nltk.stem.porter import PorterStemmer
from rouge_score.rouge_scorer import RougeScorer

from jaxmethods.eval.rouge import rouge1, rouge_l, rouge_l_batch, rouge_tokenize

# (reference, generation) pairs: inflections the NLTK_EXTENSIONS stemmer treats differently from
# Porter's ORIGINAL_ALGORITHM (days, dying, ties, news), punctuation, digits, non-ASCII, empties.
PAIRS = [
    ("The cat sat on the mat", "the cat is on the mat"),
    ("He spent three days dying of news", "he spends 3 day, died; the news"),
    ("Ties were cut. News travels fast!", "The tie was cut and new travel is fast"),
    ("a b c d", "a c"),
    ("a a b", "a c a a"),
    ("Café naïve résumé", "caf na ve"),
    ("It's 2024-ish: generalizations, connections", "its 2024 generalization connected"),
    ("", "anything"),
    ("x y", ""),
    ("x y", "z"),
]

# NLTK_EXTENSIONS (rouge-score's stemmer) vs ORIGINAL_ALGORITHM (issue #11.2's table).
STEMS = {"days": ("day", "dai"), "dying": ("die", "dy"), "ties": ("tie", "ti"),
         "news": ("news", "new")}  # fmt: skip


@pytest.mark.parametrize("word", sorted(STEMS))
def test_stems_are_rouge_scores_not_the_original_porter(word):
    nltk_ext, original = STEMS[word]
    assert rouge_tokenize(word, use_stemmer=True) == [nltk_ext]
    assert PorterStemmer(PorterStemmer.ORIGINAL_ALGORITHM).stem(word) == original
    assert PorterStemmer(PorterStemmer.NLTK_EXTENSIONS).stem(word) == nltk_ext


def _tokens(text: str, stem: bool) -> list[str]:
    """rouge_score's tokenizer rules, written out: lower, non-[a-z0-9] -> space, stem > 3 chars."""
    tokens = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    if stem:
        stemmer = PorterStemmer()
        tokens = [stemmer.stem(t) if len(t) > 3 else t for t in tokens]
    return [t for t in tokens if re.fullmatch(r"[a-z0-9]+", t)]


def _lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


def _prf(hits: int, n_target: int, n_pred: int) -> tuple[float, float, float]:
    if n_target == 0 or n_pred == 0 or hits == 0:
        return 0.0, 0.0, 0.0
    p, r = hits / n_pred, hits / n_target
    return p, r, 2 * p * r / (p + r)


@pytest.mark.parametrize("use_stemmer", [False, True])
@pytest.mark.parametrize("target, prediction", PAIRS)
def test_scores_equal_rouge_scorer_and_the_formula(target, prediction, use_stemmer):
    ref = RougeScorer(["rouge1", "rougeL"], use_stemmer=use_stemmer).score(target, prediction)
    got_l = rouge_l(target, prediction, use_stemmer=use_stemmer)
    got_1 = rouge1(target, prediction, use_stemmer=use_stemmer)
    for got, want in ((got_l, ref["rougeL"]), (got_1, ref["rouge1"])):
        assert (got.precision, got.recall, got.fmeasure) == pytest.approx(tuple(want), abs=1e-12)

    t, p = _tokens(target, use_stemmer), _tokens(prediction, use_stemmer)
    assert rouge_tokenize(target, use_stemmer=use_stemmer) == t
    assert tuple(got_l) == pytest.approx(_prf(_lcs(t, p), len(t), len(p)), abs=1e-12)
    overlap = sum((Counter(t) & Counter(p)).values())
    assert tuple(got_1) == pytest.approx(_prf(overlap, len(t), len(p)), abs=1e-12)


def test_stemming_changes_the_score_on_the_issue_words():
    target, prediction = "three days of news and ties", "three day of news and tie"
    plain = rouge_l(target, prediction).recall
    stemmed = rouge_l(target, prediction, use_stemmer=True).recall
    assert plain == pytest.approx(4 / 6) and stemmed == pytest.approx(1.0)


def test_batch_is_elementwise_and_checks_lengths():
    targets, preds = [t for t, _ in PAIRS], [p for _, p in PAIRS]
    scorer = RougeScorer(["rougeL"], use_stemmer=True)
    want = [scorer.score(t, p)["rougeL"].recall for t, p in PAIRS]
    got = [s.recall for s in rouge_l_batch(targets, preds, use_stemmer=True)]
    assert got == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match="2 targets but 1"):
        rouge_l_batch(["a", "b"], ["a"])
