"""ROUGE-1 / ROUGE-L through Google's `rouge-score` package, the scorer TOFU and MUSE report with.

A thin wrapper: `rouge_score.rouge_scorer.RougeScorer` does the tokenising (lower-case, runs of
non-[a-z0-9] characters -> space, NLTK `PorterStemmer()` in its default `NLTK_EXTENSIONS` mode on
tokens longer than 3 characters when `use_stemmer`) and the scoring:
  ROUGE-L: lcs = |LCS(target, prediction)|, P = lcs / |prediction|, R = lcs / |target|,
  F1 = 2 P R / (P + R); ROUGE-1: the same with the clipped unigram overlap instead of lcs.
open-unlearning (BalDRO's evaluation) scores with `RougeScorer(["rouge1", "rougeL"],
use_stemmer=True).score(ground_truth, generation)`, reporting `rougeL_recall` on TOFU and
`rougeL_f1` on MUSE; the TOFU/MUSE evaluators here default to `use_stemmer=True` accordingly.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from rouge_score import rouge_scorer, scoring, tokenizers

# rouge_score's (precision, recall, fmeasure) namedtuple.
RougeScore = scoring.Score


@functools.cache
def _scorer(rouge_type: str, use_stemmer: bool) -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer([rouge_type], use_stemmer=use_stemmer)


@functools.cache
def _tokenizer(use_stemmer: bool) -> tokenizers.DefaultTokenizer:
    return tokenizers.DefaultTokenizer(use_stemmer=use_stemmer)


def rouge_tokenize(text: str, *, use_stemmer: bool = False) -> list[str]:
    """The tokens rouge_score scores `text` by (its `DefaultTokenizer`)."""
    return _tokenizer(bool(use_stemmer)).tokenize(text)


def rouge_l(target: str, prediction: str, *, use_stemmer: bool = False) -> RougeScore:
    """ROUGE-L of `prediction` against the reference `target` (rouge_score's argument order)."""
    return _scorer("rougeL", bool(use_stemmer)).score(target, prediction)["rougeL"]


def rouge1(target: str, prediction: str, *, use_stemmer: bool = False) -> RougeScore:
    """ROUGE-1 (clipped unigram overlap) of `prediction` against the reference `target`."""
    return _scorer("rouge1", bool(use_stemmer)).score(target, prediction)["rouge1"]


def rouge_l_batch(
    targets: Sequence[str], predictions: Sequence[str], *, use_stemmer: bool = False
) -> list[RougeScore]:
    """`rouge_l` for aligned lists of references and predictions: [N] -> [N] scores."""
    if len(targets) != len(predictions):
        raise ValueError(
            f"rouge_l_batch: {len(targets)} targets but {len(predictions)} predictions"
        )
    return [rouge_l(t, p, use_stemmer=use_stemmer) for t, p in zip(targets, predictions)]


__all__ = ["RougeScore", "rouge1", "rouge_l", "rouge_l_batch", "rouge_tokenize"]
