"""Poolings against NumPy transcriptions of their formulas (CLS, masked mean, last token, L2)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxmethods.models.pooling import cls_pool, l2_normalize, last_token_pool, mean_pool, pool

RNG = np.random.RandomState(0)
HIDDEN = RNG.randn(3, 5, 4).astype(np.float32)
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 1, 1, 0]], np.int32)  # right/left pad


def _np_mean(h, m):
    return np.stack([h[b][m[b] > 0].mean(0) for b in range(len(h))])


def _np_last(h, m):
    return np.stack([h[b][np.nonzero(m[b])[0][-1]] for b in range(len(h))])


def _np_l2(x):
    return x / np.maximum(np.sqrt((x.astype(np.float64) ** 2).sum(-1, keepdims=True)), 1e-12)


def test_poolings_match_numpy():
    np.testing.assert_allclose(cls_pool(HIDDEN, MASK), HIDDEN[:, 0], rtol=1e-6)
    np.testing.assert_allclose(mean_pool(HIDDEN, MASK), _np_mean(HIDDEN, MASK), rtol=1e-5)
    np.testing.assert_allclose(last_token_pool(HIDDEN, MASK), _np_last(HIDDEN, MASK), rtol=1e-6)
    np.testing.assert_allclose(mean_pool(HIDDEN, None), HIDDEN.mean(1), rtol=1e-5)


@pytest.mark.parametrize("kind, ref", [("cls", lambda h, m: h[:, 0]), ("mean", _np_mean),
                                       ("last", _np_last)])  # fmt: skip
def test_pool_normalize(kind, ref):
    out = np.asarray(pool(HIDDEN, MASK, kind, normalize=True))
    np.testing.assert_allclose(out, _np_l2(ref(HIDDEN, MASK)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, rtol=1e-5)


def test_edge_cases():
    zeros = np.zeros((1, 4), np.float32)
    np.testing.assert_array_equal(l2_normalize(zeros), zeros)  # no NaN (torch F.normalize)
    empty = np.zeros((1, 5), np.int32)
    np.testing.assert_array_equal(mean_pool(HIDDEN[:1], empty), zeros)
    with pytest.raises(ValueError, match="pooling 'max' is not one of"):
        pool(HIDDEN, MASK, "max")
