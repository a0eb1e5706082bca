"""ROUGE-L with `rouge_score`'s tokenisation and LCS semantics (no `rouge_score` dependency).

Tokenisation (rouge_score's default tokenizer): lower-case, every run of characters outside
[a-z0-9] becomes a space, split on whitespace, optionally Porter-stem tokens longer than 3
characters (`use_stemmer`), keep the non-empty [a-z0-9]+ tokens. Non-ASCII letters are therefore
dropped, as in rouge_score.

ROUGE-L between a target (reference) and a prediction:
  lcs = |LCS(target, prediction)|, precision = lcs / |prediction|, recall = lcs / |target|,
  F1 = 2 P R / (P + R); all three are 0 when either side has no token.
open-unlearning (BalDRO's evaluation) scores with `RougeScorer(["rouge1", "rougeL"],
use_stemmer=True).score(ground_truth, generation)`, reporting `rougeL_recall` on TOFU and
`rougeL_f1` on MUSE; the TOFU/MUSE evaluators here default to `use_stemmer=True` accordingly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jaxmethods.eval.porter import porter_stem

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_TOKEN = re.compile(r"^[a-z0-9]+$")


@dataclass(frozen=True)
class RougeScore:
    precision: float
    recall: float
    fmeasure: float


def rouge_tokenize(text: str, *, use_stemmer: bool = False) -> list[str]:
    """rouge_score's tokenizer: lower-case, non-alphanumerics -> space, split, optional stemming."""
    text = _NON_ALNUM.sub(" ", text.lower())
    tokens = text.split()
    if use_stemmer:
        tokens = [porter_stem(t) if len(t) > 3 else t for t in tokens]
    return [t for t in tokens if _TOKEN.match(t)]


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, O(|a| |b|) time)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def _score(lcs: int, n_target: int, n_prediction: int) -> RougeScore:
    if n_target == 0 or n_prediction == 0:
        return RougeScore(0.0, 0.0, 0.0)
    precision, recall = lcs / n_prediction, lcs / n_target
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return RougeScore(precision, recall, f1)


def rouge_l(target: str, prediction: str, *, use_stemmer: bool = False) -> RougeScore:
    """ROUGE-L of `prediction` against the reference `target` (rouge_score's argument order)."""
    t = rouge_tokenize(target, use_stemmer=use_stemmer)
    p = rouge_tokenize(prediction, use_stemmer=use_stemmer)
    return _score(lcs_length(t, p), len(t), len(p))


def rouge1(target: str, prediction: str, *, use_stemmer: bool = False) -> RougeScore:
    """ROUGE-1 (clipped unigram overlap), as rouge_score computes it."""
    t = rouge_tokenize(target, use_stemmer=use_stemmer)
    p = rouge_tokenize(prediction, use_stemmer=use_stemmer)
    counts: dict[str, int] = {}
    for tok in t:
        counts[tok] = counts.get(tok, 0) + 1
    overlap = 0
    for tok in p:
        if counts.get(tok, 0) > 0:
            counts[tok] -= 1
            overlap += 1
    return _score(overlap, len(t), len(p))


def rouge_l_batch(
    targets: list[str], predictions: list[str], *, use_stemmer: bool = False
) -> list[RougeScore]:
    """`rouge_l` for aligned lists of references and predictions."""
    if len(targets) != len(predictions):
        raise ValueError(
            f"rouge_l_batch: {len(targets)} targets but {len(predictions)} predictions"
        )
    return [rouge_l(t, p, use_stemmer=use_stemmer) for t, p in zip(targets, predictions)]
