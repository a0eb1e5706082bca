"""FinTMMBench metrics: per-item scores on hand-made predictions, per-task / per-modality tables
against NumPy means and standard errors, the judge parser, the judge through a FunctionClient,
and the bar chart PNG."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxmethods.llm import FunctionClient
from jaxmethods.methods.fintmm.metrics import (
    breakdown,
    format_table,
    llm_judge,
    modality_bar_chart,
    overall,
    parse_judgement,
    score_items,
)
from jaxmethods.methods.fintmm.records import QAItem


def _item(qid, answer, task, modality):
    return QAItem(qid, f"question {qid}?", answer, task, modality, (), None)


ITEMS = [
    _item("a", "182.01", "IE", "Price"),
    _item("b", "Apple Inc", "IE&AC", "Table"),
    _item("c", "increasing", "TA", "Chart"),
    _item("d", "Positive", "SC", "News"),
    _item("e", "AAPL, NVDA, AMZN", "ST", "Price"),
    _item("f", "0.93", "AC", "Hybrid"),
]
PREDS = [
    "182.01",  # EM 1, F1 1, Acc 1
    "The answer is Apple Inc.",  # EM 0, F1 2*(2/4*1)/(2/4+1) = 2/3, Acc 1
    "decreasing",  # 0, 0, 0
    "positive",  # 1, 1, 1 (case)
    "AAPL, AMZN, NVDA",  # EM 0 (order), F1 1 (same bag of tokens), Acc 0
    "0.94",  # 0, 0, 0
]
EXPECTED = {
    "em": [1, 0, 0, 1, 0, 0],
    "f1": [1, 2 / 3, 0, 1, 1, 0],
    "acc": [1, 1, 0, 1, 0, 0],
}


def _mean_se(x):
    x = np.asarray(x, float)
    return x.mean(), (x.std(ddof=1) / math.sqrt(x.size) if x.size > 1 else 0.0)


def test_score_items_by_hand():
    rows = score_items(ITEMS, PREDS, judgements=[True, True, False, None, True, False])
    for m, want in EXPECTED.items():
        assert [r[m] for r in rows] == pytest.approx(want), m
    assert [r["judge"] for r in rows] == [1, 1, 0, 0, 1, 0]  # None (unparsed) scores 0
    tot = overall(rows)
    assert tot["n"] == 6
    for m in ("em", "f1", "acc", "judge"):
        mean, se = _mean_se([r[m] for r in rows])
        assert (tot[m], tot[f"{m}_se"]) == pytest.approx((mean, se))
    with pytest.raises(ValueError, match="6 items but 5 predictions"):
        score_items(ITEMS, PREDS[:5])


def test_breakdown_by_task_and_modality_against_numpy():
    rows = score_items(ITEMS, PREDS)
    by_task = breakdown(rows, "task")
    assert list(by_task) == ["IE", "AC", "TA", "SC", "ST"]  # benchmark order
    members = {"IE": [0, 1], "AC": [1, 5], "TA": [2], "SC": [3], "ST": [4]}  # "IE&AC" in both
    for task, idx in members.items():
        assert by_task[task]["n"] == len(idx)
        for m in ("em", "f1", "acc"):
            mean, se = _mean_se([EXPECTED[m][i] for i in idx])
            assert (by_task[task][m], by_task[task][f"{m}_se"]) == pytest.approx((mean, se))
        assert "judge" not in by_task[task]
    by_mod = breakdown(rows, "modality")
    assert list(by_mod) == ["Table", "News", "Price", "Chart", "Hybrid"]
    mean, se = _mean_se([EXPECTED["f1"][0], EXPECTED["f1"][4]])
    assert (by_mod["Price"]["f1"], by_mod["Price"]["f1_se"]) == pytest.approx((mean, se))
    text = format_table(by_mod, title="modality")
    assert text.splitlines()[0].split()[:4] == ["modality", "EM", "F1", "ACC"]
    assert "Price" in text and "50.0 ±" in text  # Price EM = mean(1, 0)
    with pytest.raises(ValueError, match="by='day'"):
        breakdown(rows, "day")


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("True", True),
        ("**true**.", True),
        ("Yes, the prediction matches.", True),
        ("Correct", True),
        ("false", False),
        ("Incorrect: 0.94 vs 0.93", False),
        ("The answer is not correct.", False),
        ('{"correct": false}', False),
        ('```json\n{"verdict": "true"}\n```', True),
        ("I cannot tell.", None),
        ("", None),
    ],
)
def test_parse_judgement(text, verdict):
    assert parse_judgement(text) is verdict


def test_llm_judge_through_function_client(tmp_path):
    seen = []

    def judge(request):
        prompt = request.messages[-1]["content"]
        seen.append(prompt)
        gold = prompt.split("Gold answer: ")[1].split("\n")[0]
        pred = prompt.split("Predicted answer: ")[1].split("\n")[0]
        if pred == "0.94":
            return "Hmm, hard to say."
        return "**True**" if gold.lower() in pred.lower() else "False."

    qs, golds = [it.question for it in ITEMS], [it.answer for it in ITEMS]
    client = FunctionClient(judge, model="rule-judge", cache_dir=str(tmp_path))
    verdicts = llm_judge(client, qs, golds, PREDS)
    assert verdicts == [True, True, False, True, False, None]
    assert "Question: question b?" in seen[1] and "Gold answer: Apple Inc" in seen[1]
    assert "Predicted answer: The answer is Apple Inc." in seen[1]
    n_calls = len(seen)
    cached = FunctionClient(judge, model="rule-judge", cache_dir=str(tmp_path))
    assert llm_judge(cached, qs, golds, PREDS) == verdicts and len(seen) == n_calls  # JSONL cache
    with pytest.raises(ValueError, match="6 questions, 6 golds, 5 predictions"):
        llm_judge(client, qs, golds, PREDS[:5])


def test_modality_bar_chart_png(tmp_path):
    import matplotlib.image

    mods = [it.modality for it in ITEMS]
    scores = {"TMMHybridRAG": EXPECTED["acc"], "BM25": [0, 0, 1, 0, float("nan"), 0]}
    path = modality_bar_chart(mods, scores, tmp_path / "plots" / "acc.png")
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] == 360 and img.shape[1] > 500
    assert np.unique(img.reshape(-1, img.shape[-1]), axis=0).shape[0] > 10  # something drawn
    with pytest.raises(ValueError, match="'BM25' has 2 scores for 6 questions"):
        modality_bar_chart(mods, {"BM25": [0, 1]}, tmp_path / "x.png")
