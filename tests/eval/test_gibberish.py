"""forget_Q_A_gibberish on a tiny random DistilBertForSequenceClassification fixture.

Reference: logits that transformers computed for the fixture's texts exactly as open-unlearning's
`classifier_prob` does (tests/hf/make_encoder_fixtures.py) -> NumPy softmax -> column 0 -> mean.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from jaxmethods.eval import tofu_eval
from jaxmethods.eval.gibberish import (
    ClassifierProbSettings,
    TextClassifier,
    classifier_prob,
    gibberish_score,
    load_text_classifier,
)

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "data", "hf", "distilbert_cls")


def _reference():
    with np.load(os.path.join(FIXTURE, "reference.npz")) as f:
        texts, logits = [str(t) for t in f["texts"]], f["text_logits"].astype(np.float64)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return texts, e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def classifier() -> TextClassifier:
    clf = load_text_classifier(FIXTURE)
    assert clf is not None and clf.max_length == 32
    return clf


def test_classifier_prob_matches_open_unlearning_reference(classifier):
    texts, probs = _reference()
    out = classifier_prob(classifier, texts)  # open-unlearning's settings: 32 rows, 32 tokens
    np.testing.assert_allclose(out["values"], probs[:, 0], atol=1e-5)
    assert out["agg_value"] == pytest.approx(probs[:, 0].mean(), abs=1e-5)
    # another class id picks another column
    other = classifier_prob(classifier, texts, ClassifierProbSettings(class_id=2))
    np.testing.assert_allclose(other["values"], probs[:, 2], atol=1e-5)


def test_unavailable_classifier_is_skipped_with_one_log_line(caplog, tmp_path):
    missing = str(tmp_path / "no_such_classifier")
    with caplog.at_level(logging.WARNING, logger="jaxmethods.eval.gibberish"):
        assert gibberish_score(["some text"], missing) is None
        assert gibberish_score(["again"], missing) is None  # cached: no second line
    lines = [r for r in caplog.records if "is not available" in r.getMessage()]
    assert len(lines) == 1 and "no_such_classifier" in lines[0].getMessage()
    assert gibberish_score(["x"], None) is None


def test_evaluate_tofu_scores_the_forget_generations(classifier, monkeypatch):
    """evaluate_tofu scores the forget split's greedy answers (likelihoods and generations are
    stubbed with fixed values so only the metric plumbing runs)."""
    texts, probs = _reference()
    forget = [{"question": f"f{i}", "answer": "a", "paraphrased_answer": "p",
               "perturbed_answer": ["x", "y"]} for i in range(len(texts))]  # fmt: skip
    other = [dict(r, question=f"o{i}") for i, r in enumerate(forget[:2])]
    splits = {"forget01_perturbed": forget, "forget01": forget, "retain_perturbed": other,
              "real_authors_perturbed": other, "world_facts_perturbed": other}  # fmt: skip
    by_question = {f"f{i}": t for i, t in enumerate(texts)}
    monkeypatch.setattr(
        tofu_eval, "greedy_answers", lambda m, t, qs, s: [by_question.get(q, "zz zz") for q in qs]
    )
    monkeypatch.setattr(tofu_eval, "_avg_nll", lambda m, t, qs, ans, s: np.ones(len(qs)))
    out = tofu_eval.evaluate_tofu(None, None, splits, forget_config="forget01",
                                  gibberish=classifier)  # fmt: skip
    assert out["forget_Q_A_gibberish"] == pytest.approx(probs[:, 0].mean(), abs=1e-5)
    skipped = tofu_eval.evaluate_tofu(None, None, splits, forget_config="forget01")
    assert skipped["forget_Q_A_gibberish"] is None


def test_live_against_transformers_classifier(classifier):
    """The open-unlearning procedure run by transformers itself on the fixture (torch only)."""
    pytest.importorskip("torch")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts, _ = _reference()
    model = AutoModelForSequenceClassification.from_pretrained(FIXTURE).eval()
    tok = AutoTokenizer.from_pretrained(FIXTURE)
    inputs = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=32)
    with torch.no_grad():
        probs = torch.softmax(model(**inputs).logits, -1)[:, 0].numpy()
    out = classifier_prob(classifier, texts)
    np.testing.assert_allclose(out["values"], probs, atol=1e-5)
