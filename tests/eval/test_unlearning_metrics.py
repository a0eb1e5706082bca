"""TOFU/MUSE metrics against hand-computed values and NumPy references."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.eval.mia import drop_last_label, mia_auc, min_k_scores, roc_auc
from jaxmethods.eval.unlearning import (
    MODEL_UTILITY_KEYS,
    extraction_strength,
    ks_forget_quality,
    load_retain_truth_ratios,
    model_utility,
    normalized_answer_probability,
    privleak,
    truth_ratio,
    truth_ratio_closer_to_1,
    truth_ratio_true_better,
    write_truth_ratio_log,
)


def test_truth_ratio_hand_values():
    # correct avg NLL 1.0; perturbed avg NLLs 2 and 4 -> mean 3: TR = e^-3 / e^-1 = e^-2
    tr = truth_ratio(np.array([1.0, 2.0]), np.array([[2.0, 4.0], [2.0, 2.0]]))
    np.testing.assert_allclose(tr, [np.exp(-2.0), 1.0], rtol=1e-8)
    # geometric mean of probabilities, not arithmetic: differs from mean(exp(-x))
    assert not np.isclose(tr[0], (np.exp(-2) + np.exp(-4)) / 2 / np.exp(-1))
    assert truth_ratio_closer_to_1(np.array([0.5, 2.0, 1.0])) == pytest.approx(
        np.mean([0.5, 1 / (2 + 1e-10), 1 / (1 + 1e-10)])
    )
    assert truth_ratio_true_better(np.array([0.25, 1.5])) == pytest.approx(0.375)
    with pytest.raises(ValueError, match="wrong_avg_nll"):
        truth_ratio(np.ones(3), np.ones((2, 4)))


def test_normalized_probability():
    p = normalized_answer_probability(np.array([np.log(2.0)]), np.array([[np.log(4.0)] * 2]))
    np.testing.assert_allclose(p, [0.5 / (0.5 + 0.5)], rtol=1e-8)


def np_ks_pvalue_exact(a, b):
    """Two-sided exact KS p-value for small samples (counting lattice paths), SciPy-independent."""
    from math import comb

    a, b = np.sort(a), np.sort(b)
    n, m = len(a), len(b)
    allv = np.concatenate([a, b])
    d = np.max(
        np.abs(np.searchsorted(a, allv, "right") / n - np.searchsorted(b, allv, "right") / m)
    )
    # number of paths from (0,0) to (n,m) staying strictly inside |i/n - j/m| < d
    paths = np.zeros((n + 1, m + 1))
    for i in range(n + 1):
        for j in range(m + 1):
            if abs(i / n - j / m) >= d - 1e-12:
                continue
            paths[i, j] = (
                1.0
                if i == j == 0
                else (paths[i - 1, j] if i else 0) + (paths[i, j - 1] if j else 0)
            )
    return 1.0 - paths[n, m] / comb(n + m, n)


def test_ks_forget_quality_matches_exact_reference():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 7), rng.normal(0.8, 1, 6)
    assert ks_forget_quality(a, b) == pytest.approx(np_ks_pvalue_exact(a, b), rel=1e-6)
    assert ks_forget_quality(a, a) == pytest.approx(1.0)
    # identical-distribution samples vs far-apart samples
    assert ks_forget_quality(np.arange(10.0), np.arange(10.0) + 100) < 1e-4
    with pytest.raises(ValueError, match="empty"):
        ks_forget_quality(np.array([]), b)


def test_retain_log_round_trip_and_errors(tmp_path):
    tr = np.array([0.5, 1.25, 0.8])
    path = tmp_path / "TOFU_EVAL.json"
    write_truth_ratio_log(path, tr)
    np.testing.assert_allclose(load_retain_truth_ratios(path), tr)
    # the original open-unlearning layout, keys out of order
    raw = {
        "forget_truth_ratio": {
            "agg_value": 0.1,
            "value_by_index": {"10": {"score": 3.0}, "2": {"score": 1.0}},
        }
    }
    path.write_text(json.dumps(raw))
    np.testing.assert_allclose(load_retain_truth_ratios(path), [1.0, 3.0])
    with pytest.raises(KeyError, match="forget_truth_ratio"):
        load_retain_truth_ratios(path, key="missing")
    path.write_text('{"forget_truth_ratio": {"value_by_index": {"0": {"value": 1}}}}')
    with pytest.raises(ValueError, match="score"):
        load_retain_truth_ratios(path)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_retain_truth_ratios(tmp_path / "nope.json")


def test_model_utility_is_harmonic_mean_of_nine():
    vals = dict(zip(MODEL_UTILITY_KEYS, [0.9, 0.5, 0.4, 0.6, 0.7, 0.55, 0.8, 0.65, 0.45]))
    want = 9 / sum(1 / v for v in vals.values())
    assert model_utility(vals) == pytest.approx(want, rel=1e-12)
    assert model_utility({**vals, "ra_Q_A_ROUGE": 0.0}) == 0.0
    with pytest.raises(KeyError, match="wf_Truth_Ratio"):
        model_utility({k: v for k, v in vals.items() if k != "wf_Truth_Ratio"})


def test_privleak():
    assert privleak(0.7, 0.7) == pytest.approx(0.0, abs=1e-6)
    assert privleak(0.999, 0.5) == pytest.approx((0.001 - 0.5) / 0.5 * 100, rel=1e-6)


def test_roc_auc_with_ties_matches_pairwise_definition():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=30).astype(float)
    labels = rng.integers(0, 2, size=30)
    pos, neg = scores[labels == 1], scores[labels == 0]
    want = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert roc_auc(scores, labels) == pytest.approx(want)
    assert mia_auc(np.array([0.1, 0.2]), np.array([0.9, 0.8])) == 1.0
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.ones(3), np.ones(3))


def test_min_k_scores_hand_values():
    lp = jnp.asarray([[-1.0, -5.0, -2.0, -4.0, -3.0, 0.0], [-1.0, -2.0, 0.0, 0.0, 0.0, 0.0]])
    mask = jnp.asarray([[True] * 5 + [False], [True, True] + [False] * 4])
    # row 0: n=5, k=0.4 -> 2 lowest: -5, -4 -> score 4.5; row 1: n=2 -> max(1, 0) = 1 -> 2.0
    np.testing.assert_allclose(min_k_scores(lp, mask, 0.4), [4.5, 2.0])
    np.testing.assert_allclose(min_k_scores(lp, jnp.zeros_like(mask), 0.4), [0.0, 0.0])


def test_drop_last_label():
    m = jnp.asarray([[False, True, True, True, False], [True, False, False, False, False]])
    np.testing.assert_array_equal(
        drop_last_label(m), [[False, True, True, False, False], [False] * 5]
    )


def test_extraction_strength_hand_values():
    matches = np.array(
        [
            [1, 0, 1, 1, 0],  # suffix from k=2 matches (L=4) -> 1 - 2/4
            [1, 1, 1, 1, 1],  # all match -> 1
            [1, 1, 1, 0, 0],  # nothing matches at the end: the loop stops at k = L-1 -> 1/L
        ],
        bool,
    )
    np.testing.assert_allclose(extraction_strength(matches, np.array([4, 5, 4])), [0.5, 1.0, 0.25])
    np.testing.assert_allclose(extraction_strength(matches, np.array([0, 0, 0])), 0.0)
