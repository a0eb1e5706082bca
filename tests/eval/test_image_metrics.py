"""SSIM / MS-SSIM against `pytorch_msssim` (the library Pigeon calls; values committed by
tests/hf/make_vision_fixtures.py), FID against closed forms and an eigenvalue computation."""

from __future__ import annotations

import os

import numpy as np
import pytest

from jaxmethods.eval.image_metrics import (
    fid_from_features,
    frechet_distance,
    lpips_unavailable,
    ms_ssim,
    ssim,
)

REF = os.path.join(os.path.dirname(__file__), "..", "data", "hf", "vision", "ssim_reference.npz")


def ssim_pairs(tag: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8-valued float32 image pairs [n, H, W, 3] (seeded, regenerated identically here and
    by tests/hf/make_vision_fixtures.py): "small" 3 pairs of 37x45, "large" 2 pairs of 169x165
    (> 160 px for MS-SSIM; odd sides exercise the padded pooling). Each x is smooth (a double
    cumulative sum of noise); y is a noisy copy, except the last pair's y, a lightly noised
    negative (reversed structure: SSIM below 0, MS-SSIM clamped to 0)."""
    n, h, w = (3, 37, 45) if tag == "small" else (2, 169, 165)
    rng = np.random.RandomState(5 if tag == "small" else 6)
    base = np.cumsum(np.cumsum(rng.uniform(0, 255, size=(n, h, w, 3)), axis=1), axis=2)
    lo = base.min(axis=(1, 2, 3), keepdims=True)
    hi = base.max(axis=(1, 2, 3), keepdims=True)
    x = np.round(255 * (base - lo) / (hi - lo))
    y = np.clip(x + rng.normal(0, 20, size=x.shape), 0, 255).round()
    y[-1] = np.clip(255 - x[-1] + rng.normal(0, 5, size=x[-1].shape), 0, 255).round()
    return x.astype(np.float32), y.astype(np.float32)


@pytest.fixture(scope="module")
def ref():
    with np.load(REF) as f:
        return {k: f[k] for k in f.files}


def test_ssim_matches_pytorch_msssim(ref):
    got = np.asarray(ssim(*ssim_pairs("small")))
    np.testing.assert_allclose(got, ref["small_ssim"], atol=1e-5)
    assert ref["small_ssim"][0] > 0.2 and ref["small_ssim"][2] < 0  # noisy copy vs negative


def test_ms_ssim_matches_pytorch_msssim(ref):
    got = np.asarray(ms_ssim(*ssim_pairs("large")))
    np.testing.assert_allclose(got, ref["large_ms_ssim"], atol=1e-5)
    assert ref["large_ms_ssim"][0] > 0.5 and ref["large_ms_ssim"][1] == 0.0


def test_ssim_bounds_and_errors():
    x = ssim_pairs("small")[0]
    np.testing.assert_allclose(np.asarray(ssim(x, x)), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="too small"):
        ms_ssim(x, x)
    with pytest.raises(ValueError, match="one shape"):
        ssim(x, x[:, :-1])


def test_frechet_distance_closed_forms():
    rng = np.random.RandomState(0)
    mu1, mu2 = rng.randn(5), rng.randn(5)
    a = rng.randn(5, 5)
    cov = a @ a.T + np.eye(5)
    # equal covariances: only the mean term remains
    np.testing.assert_allclose(frechet_distance(mu1, cov, mu2, cov), np.sum((mu1 - mu2) ** 2),
                               rtol=1e-7, atol=1e-8)  # fmt: skip
    # diagonal covariances: sum (sqrt a - sqrt b)^2
    d1, d2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
    np.testing.assert_allclose(frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2)), want,
                               rtol=1e-7)  # fmt: skip
    # general: Tr sqrtm(S1 S2) = sum of sqrt of the (real, >= 0) eigenvalues of S1 S2
    b = rng.randn(5, 5)
    cov2 = b @ b.T + 0.5 * np.eye(5)
    eig = np.linalg.eigvals(cov @ cov2).real
    want = np.sum((mu1 - mu2) ** 2) + np.trace(cov) + np.trace(cov2) - 2 * np.sqrt(eig).sum()
    np.testing.assert_allclose(frechet_distance(mu1, cov, mu2, cov2), want, rtol=1e-7)


def test_fid_from_gaussian_samples():
    rng = np.random.RandomState(1)
    a = rng.randn(20000, 3)
    b = rng.randn(20000, 3) * 2.0 + np.array([1.0, 0.0, -1.0])
    # N(0, I) vs N(m, 4 I): |m|^2 + 3 (1 - 2)^2 = 2 + 3
    assert abs(fid_from_features(a, b) - 5.0) < 0.15
    assert fid_from_features(a, a) < 1e-6


def test_lpips_skip_line():
    assert "LPIPS skipped" in lpips_unavailable()
