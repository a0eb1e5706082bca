"""TOFU / MUSE unlearning metrics from per-example statistics (NumPy + SciPy, host side).

The model-dependent parts (per-sequence NLLs, token log-probs, greedy generations) are computed
on device by `jaxmethods.eval.likelihood`; these functions turn them into the reported numbers,
following open-unlearning's `evals/metrics` (the evaluation code BalDRO reports with):

* truth ratio TR_i = exp(-mean_j avgNLL(wrong_ij)) / (exp(-avgNLL(correct_i)) + 1e-10), where the
  avg-NLLs of the perturbed (wrong) answers are averaged first (a geometric mean of the
  length-normalised probabilities); forget set: correct = paraphrased answer, aggregated as
  mean(min(TR, 1/(TR + 1e-10))); retain / real authors / world facts: aggregated as
  mean(max(0, 1 - TR)).
* forget quality: the KS two-sample p-value between the forget-set TRs of the unlearned model and
  those of a retain model (read from its TOFU_EVAL.json).
* answer probability: exp(-avgNLL) for the retain set; P(correct) / (P(correct) + sum_j
  P(wrong_j) + 1e-10) for real authors and world facts.
* model utility: the harmonic mean of the nine {retain, real authors, world facts} x {answer
  probability, ROUGE-L recall, truth ratio} numbers.
* privleak: ((1 - AUC_unl) - (1 - AUC_ret)) / (1 - AUC_ret + 1e-10) * 100.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from scipy import stats

EPS = 1e-10

MODEL_UTILITY_KEYS = (
    "retain_Q_A_Prob",
    "retain_Q_A_ROUGE",
    "retain_Truth_Ratio",
    "ra_Q_A_Prob_normalised",
    "ra_Q_A_ROUGE",
    "ra_Truth_Ratio",
    "wf_Q_A_Prob_normalised",
    "wf_Q_A_ROUGE",
    "wf_Truth_Ratio",
)


def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        return x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N] or [N, M], got shape {x.shape}")
    return x


def truth_ratio(correct_avg_nll: np.ndarray, wrong_avg_nll: np.ndarray) -> np.ndarray:
    """Per-question truth ratio TR = P(wrong) / P(correct) with length-normalised probabilities.

    Args:
      correct_avg_nll: [N] per-token mean NLL of the correct (or paraphrased) answer.
      wrong_avg_nll: [N, M] per-token mean NLLs of the M perturbed answers (or [N]).
    Returns:
      [N] exp(-mean_j wrong_avg_nll[:, j]) / (exp(-correct_avg_nll) + 1e-10).
    """
    correct = np.asarray(correct_avg_nll, np.float64)
    wrong = _as_2d(wrong_avg_nll, "wrong_avg_nll")
    if correct.ndim != 1 or wrong.shape[0] != correct.shape[0]:
        raise ValueError(
            f"truth_ratio: correct_avg_nll must be [N] and wrong_avg_nll [N, M]; got "
            f"{correct.shape} and {wrong.shape}"
        )
    return np.exp(-wrong.mean(axis=1)) / (np.exp(-correct) + EPS)


def truth_ratio_closer_to_1(tr: np.ndarray) -> float:
    """Forget-set aggregate mean(min(TR, 1 / (TR + 1e-10))); 1 = wrong and right equally likely."""
    tr = np.asarray(tr, np.float64)
    return float(np.mean(np.minimum(tr, 1.0 / (tr + EPS))))


def truth_ratio_true_better(tr: np.ndarray) -> float:
    """Non-forget aggregate: mean(max(0, 1 - TR)); high when the correct answer is preferred."""
    return float(np.mean(np.maximum(0.0, 1.0 - np.asarray(tr, np.float64))))


def answer_probability(avg_nll: np.ndarray) -> np.ndarray:
    """Length-normalised answer probability exp(-avgNLL): [N] -> [N]."""
    return np.exp(-np.asarray(avg_nll, np.float64))


def normalized_answer_probability(
    correct_avg_nll: np.ndarray, wrong_avg_nll: np.ndarray
) -> np.ndarray:
    """P(correct) / (P(correct) + sum_j P(wrong_j) + 1e-10) per question: [N], [N, M] -> [N]."""
    correct = answer_probability(correct_avg_nll)
    wrong = answer_probability(_as_2d(wrong_avg_nll, "wrong_avg_nll")).sum(axis=1)
    return correct / (correct + wrong + EPS)


def ks_forget_quality(unlearned_tr: np.ndarray, retain_tr: np.ndarray) -> float:
    """Forget quality: p-value of the two-sample KS test between the two models' forget TRs.

    open-unlearning applies `ks_2samp` to the TR values (older code to 1/TR; the p-value is the
    same, the map being monotone). High (-> 1) means indistinguishable from the retain model.
    """
    a = np.asarray(unlearned_tr, np.float64)
    b = np.asarray(retain_tr, np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError(f"ks_forget_quality: empty sample ({a.size} unlearned, {b.size} retain)")
    return float(stats.ks_2samp(a, b).pvalue)


def load_retain_truth_ratios(path: str | Path, key: str = "forget_truth_ratio") -> np.ndarray:
    """Per-question forget TRs of a retain model from an open-unlearning TOFU_EVAL.json.

    The file maps metric names to {"agg_value": ..., "value_by_index": {"0": {"score": tr}, ...}};
    values are returned in index order.
    """
    path = Path(path)
    try:
        logs = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise FileNotFoundError(f"retain-model log {path} does not exist") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if key not in logs:
        raise KeyError(f"{path}: no '{key}' entry (found: {sorted(logs)[:10]})")
    by_index = logs[key].get("value_by_index")
    if not isinstance(by_index, Mapping) or not by_index:
        raise ValueError(f"{path}: '{key}.value_by_index' is missing or empty")
    values = []
    for idx in sorted(by_index, key=int):
        entry = by_index[idx]
        if not isinstance(entry, Mapping) or "score" not in entry:
            raise ValueError(f"{path}: '{key}.value_by_index.{idx}' has no 'score'")
        values.append(float(entry["score"]))
    return np.asarray(values)


def write_truth_ratio_log(
    path: str | Path, tr: np.ndarray, key: str = "forget_truth_ratio"
) -> None:
    """Writes per-question TRs in the TOFU_EVAL.json layout read by `load_retain_truth_ratios`."""
    tr = np.asarray(tr, np.float64)
    payload = {
        key: {
            "agg_value": truth_ratio_closer_to_1(tr),
            "value_by_index": {str(i): {"score": float(v)} for i, v in enumerate(tr)},
        }
    }
    Path(path).write_text(json.dumps(payload, indent=1))


def model_utility(values: Mapping[str, float]) -> float:
    """Harmonic mean of the nine TOFU utility numbers (`MODEL_UTILITY_KEYS`)."""
    missing = [k for k in MODEL_UTILITY_KEYS if k not in values]
    if missing:
        raise KeyError(f"model_utility: missing {missing}")
    nums = np.asarray([values[k] for k in MODEL_UTILITY_KEYS], np.float64)
    if np.any(nums < 0):
        raise ValueError(f"model_utility: negative inputs {dict(zip(MODEL_UTILITY_KEYS, nums))}")
    if np.any(nums == 0):
        return 0.0
    return float(stats.hmean(nums))


def privleak(auc_unlearned: float, auc_retrain: float) -> float:
    """MUSE PrivLeak in percent: ((1 - AUC_unl) - (1 - AUC_ret)) / (1 - AUC_ret + 1e-10) * 100.

    0 when the unlearned model's MIA AUC equals the retrained model's; open-unlearning falls back
    to AUC_ret = 0.5 when no retain-model log is given.
    """
    score, ref = 1.0 - auc_unlearned, 1.0 - auc_retrain
    return float((score - ref) / (ref + EPS) * 100.0)


def extraction_strength(matches: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Extraction strength per sequence, as open-unlearning computes it.

    ES = 1 - k / L, k the first position from which every greedy prediction matches the label
    (the shortest fully-extracted suffix); when no suffix matches, the authors' loop ends with
    k = L - 1 (so ES = 1/L), kept as is. Empty sequences score 0.

    Args:
      matches: [N, T] bool, argmax prediction == label at label position t (left-aligned).
      lengths: [N] number of label positions L per sequence.
    """
    matches = np.asarray(matches, bool)
    lengths = np.asarray(lengths, np.int64)
    out = np.zeros(len(lengths))
    for i, n in enumerate(lengths):
        if n == 0:
            continue
        row = matches[i, :n]
        # suffix_ok[k] = all(row[k:]); search k = 0 .. n-1 in order.
        suffix_ok = np.flip(np.cumprod(np.flip(row))).astype(bool)
        hits = np.flatnonzero(suffix_ok)
        k = int(hits[0]) if hits.size else n - 1
        out[i] = 1.0 - k / n
    return out
