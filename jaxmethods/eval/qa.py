"""Open-domain QA metrics: SQuAD/DPR answer normalisation, contains-accuracy, exact match, SQuAD
token F1, and the Self-Selection source breakdown.

`normalize_answer` is the SQuAD v1.1 / DPR rule: lower-case, drop punctuation, drop the articles
"a", "an", "the", collapse whitespace. Contains-accuracy (Self-RAG, Self-Selection) counts an
output as correct when any normalised gold alias occurs in the normalised output (on word
boundaries, so "paris" is not found in "comparison"); EM asks for equality with an alias; F1 is
SQuAD v1.1's bag-of-tokens overlap F1 of the normalised strings, maximised over aliases.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """lower -> remove punctuation -> remove articles -> collapse whitespace (SQuAD's order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def contains_match(prediction: str, answers: Sequence[str]) -> bool:
    """True when a normalised gold alias occurs in the normalised prediction as whole words.

    Aliases that normalise to "" are skipped (an empty alias would match everything).
    """
    pred = f" {normalize_answer(prediction)} "
    for alias in answers:
        norm = normalize_answer(alias)
        if norm and f" {norm} " in pred:
            return True
    return False


def exact_match(prediction: str, answers: Sequence[str]) -> bool:
    """True when the normalised prediction equals a normalised gold alias."""
    pred = normalize_answer(prediction)
    return any(pred == normalize_answer(a) for a in answers)


def _token_f1(prediction: str, truth: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, answers: Sequence[str] | str) -> float:
    """SQuAD v1.1 token F1: max over gold aliases of the F1 of the normalised token multisets.

    An empty prediction or alias scores 0 (SQuAD's rule: no common token -> 0); no aliases -> 0.
    """
    if isinstance(answers, str):
        answers = [answers]
    return max((_token_f1(prediction, a) for a in answers), default=0.0)


def mean_and_stderr(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(mean, standard error of the mean = sample std / sqrt(n)) of [n] values; (nan, nan) if n=0."""
    x = np.asarray(values, np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
    return float(x.mean()), se


def qa_scores(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """{"acc", "acc_se", "em", "em_se", "f1", "f1_se"} over paired [n] predictions and gold
    alias lists."""
    if len(predictions) != len(answers):
        raise ValueError(
            f"qa_scores: {len(predictions)} predictions but {len(answers)} answer lists"
        )
    acc = [float(contains_match(p, a)) for p, a in zip(predictions, answers)]
    em = [float(exact_match(p, a)) for p, a in zip(predictions, answers)]
    f1 = [f1_score(p, a) for p, a in zip(predictions, answers)]
    (m_acc, se_acc), (m_em, se_em) = mean_and_stderr(acc), mean_and_stderr(em)
    m_f1, se_f1 = mean_and_stderr(f1)
    return {"acc": m_acc, "acc_se": se_acc, "em": m_em, "em_se": se_em, "f1": m_f1, "f1_se": se_f1}


def source_breakdown(
    internal_correct: Sequence[bool],
    external_correct: Sequence[bool],
    final_correct: Sequence[bool],
) -> dict[str, float]:
    """Which source holds the answer, and how well the selection picks it.

    Args:
      internal_correct: [n] the closed-book answer is correct.
      external_correct: [n] the RAG answer is correct.
      final_correct: [n] the selected (final) answer is correct.
    Returns:
      fractions of questions `internal_only`, `external_only`, `both`, `neither` (summing to 1);
      `selection_acc`: accuracy of the final answer on the questions where exactly one source is
      right (nan when there are none) and `selection_n`, their number; `oracle`: the fraction
      where at least one source is right (an upper bound of selection).
    """
    i = np.asarray(internal_correct, bool)
    e = np.asarray(external_correct, bool)
    f = np.asarray(final_correct, bool)
    if not (i.shape == e.shape == f.shape) or i.ndim != 1:
        raise ValueError(f"source_breakdown: shapes {i.shape}, {e.shape}, {f.shape} differ")
    n = max(i.size, 1)
    one = i ^ e
    return {
        "internal_only": float(np.sum(i & ~e) / n),
        "external_only": float(np.sum(~i & e) / n),
        "both": float(np.sum(i & e) / n),
        "neither": float(np.sum(~i & ~e) / n),
        "oracle": float(np.sum(i | e) / n),
        "selection_acc": float(f[one].mean()) if one.any() else float("nan"),
        "selection_n": float(one.sum()),
    }
