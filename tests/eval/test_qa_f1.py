"""SQuAD token F1 and EM against the official SQuAD v1.1 evaluation script's logic, transcribed
independently here (evaluate-v1.1.py: normalize_answer, f1_score, exact_match_score,
metric_max_over_ground_truths), plus hand-computed values."""

import collections
import random
import re
import string

import pytest

from jaxmethods.eval.qa import exact_match, f1_score, qa_scores


# ---- transcription of the official SQuAD v1.1 script ------------------------------------------
def squad_normalize(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def squad_f1(prediction, ground_truth):
    prediction_tokens = squad_normalize(prediction).split()
    ground_truth_tokens = squad_normalize(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def squad_em(prediction, ground_truth):
    return squad_normalize(prediction) == squad_normalize(ground_truth)


def squad_max(metric_fn, prediction, ground_truths):
    return max(metric_fn(prediction, gt) for gt in ground_truths)


# ------------------------------------------------------------------------------------------------
def test_hand_values():
    assert exact_match("The Apple Inc.", ["apple inc"])
    assert f1_score("The Apple Inc.", ["apple inc"]) == 1.0
    # pred {apple, inc, revenue} vs gold {apple, inc}: P = 2/3, R = 1 -> F1 = 0.8
    assert f1_score("Apple Inc revenue", ["apple inc"]) == pytest.approx(0.8)
    # repeated tokens count as a multiset: pred "up up" vs gold "up": P = 1/2, R = 1 -> 2/3
    assert f1_score("up up", "up") == pytest.approx(2 / 3)
    # max over aliases: 0 against the first, 0.5 against "NVIDIA Corp" (P = 1/2, R = 1/2)
    assert f1_score("NVIDIA Corporation", ["AMD", "NVIDIA Corp"]) == pytest.approx(0.5)
    assert f1_score("", ["x"]) == 0.0 and f1_score("x", []) == 0.0
    assert f1_score("the", ["a"]) == 0.0  # both normalise to nothing: SQuAD scores 0
    assert f1_score("12.35", ["1235"]) == 1.0  # punctuation dropped inside numbers, as SQuAD


def test_random_strings_match_the_official_script():
    rng = random.Random(0)
    vocab = ["The", "a", "an", "Apple", "apple,", "Inc.", "inc", "Q1", "2022", "12.5%", "up", "-",
             "down!", "NVIDIA", "theatre", "rock-'n'-roll", "  ", "USD"]  # fmt: skip
    for _ in range(400):
        pred = " ".join(rng.choices(vocab, k=rng.randint(0, 6)))
        golds = [
            " ".join(rng.choices(vocab, k=rng.randint(1, 5))) for _ in range(rng.randint(1, 3))
        ]
        assert f1_score(pred, golds) == pytest.approx(squad_max(squad_f1, pred, golds), abs=1e-12)
        assert exact_match(pred, golds) == squad_max(squad_em, pred, golds)


def test_qa_scores_reports_f1_with_stderr():
    preds, golds = ["Apple Inc revenue", "The Apple Inc.", "MSFT"], [["apple inc"]] * 3
    s = qa_scores(preds, golds)
    # F1 per item [0.8, 1, 0]: mean 0.6, sample sd sqrt((0.04 + 0.16 + 0.36) / 2), se / sqrt(3)
    assert s["f1"] == pytest.approx(0.6)
    assert s["f1_se"] == pytest.approx((0.56 / 2) ** 0.5 / 3**0.5)
    assert s["em"] == pytest.approx(1 / 3)
