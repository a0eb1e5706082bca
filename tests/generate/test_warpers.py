"""Temperature / top-k / top-p warpers against a NumPy reference of HF's warpers."""

import numpy as np

from jaxmethods.generate.warpers import apply_top_k, apply_top_p, warp_logits


def _np_top_p(logits: np.ndarray, top_p: float) -> np.ndarray:
    """HF TopPLogitsWarper: sort ascending, drop tokens whose cumulative mass <= 1 - top_p."""
    out = logits.copy()
    for row in range(logits.shape[0]):
        order = np.argsort(logits[row], kind="stable")
        p = np.exp(logits[row, order] - logits[row].max())
        cum = np.cumsum(p / p.sum())
        remove = cum <= 1 - top_p
        remove[-1] = False  # min_tokens_to_keep = 1
        out[row, order[remove]] = -np.inf
    return out


def test_top_p_matches_hf_reference():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 17)).astype(np.float32) * 2
    for top_p in (0.05, 0.3, 0.75, 0.95):
        got = np.asarray(apply_top_p(logits, top_p))
        want = _np_top_p(logits.astype(np.float64), top_p)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        np.testing.assert_array_equal(got[~np.isinf(got)], logits[~np.isinf(want)])


def test_top_k_keeps_k_largest():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(8, 11)).astype(np.float32)
    got = np.asarray(apply_top_k(logits, 3))
    kth = np.sort(logits, -1)[:, -3:-2]
    np.testing.assert_array_equal(np.isfinite(got), logits >= kth)
    np.testing.assert_array_equal(apply_top_k(logits, 0), logits)


def test_warp_order_is_temperature_then_top_k_then_top_p():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(4, 9)).astype(np.float32)
    got = np.asarray(warp_logits(logits, temperature=0.5, top_k=4, top_p=0.8))
    want = _np_top_p(np.asarray(apply_top_k(logits / 0.5, 4), np.float64), 0.8)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=1e-6)
