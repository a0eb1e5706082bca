"""Semantic-preserving augmentations: colour ops keep the pixel partition (the shape), the
identity config is the identity, grayscale / permutation / texture do what they say."""

from __future__ import annotations

import numpy as np
import pytest

from jaxmethods.methods.drc.augment import AugmentConfig, augment
from jaxmethods.methods.drc.synthetic import Items, WorldConfig, render

OFF = dict(p_permute=0.0, p_invert=0.0, p_jitter=0.0, p_grayscale=0.0, p_texture=0.0)
IMGS = render(
    WorldConfig(noise=0.0),
    Items(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3]), np.array([0, 2, 4, 6])),
)


def _partition(img):
    """Pixel -> id of its colour: the image's segmentation."""
    _, inv = np.unique(np.round(img.reshape(-1, 3), 4), axis=0, return_inverse=True)
    return inv.ravel()


def test_identity_config():
    out = augment(IMGS, AugmentConfig(**OFF), np.random.default_rng(0))
    np.testing.assert_allclose(out, IMGS, atol=1e-6)


def test_colour_ops_keep_the_shape():
    cfg = AugmentConfig(**{**OFF, "p_permute": 1.0, "p_invert": 0.5, "p_jitter": 1.0})
    out = augment(IMGS, cfg, np.random.default_rng(1))
    assert out.shape == IMGS.shape and out.min() >= -1 and out.max() <= 1
    assert np.abs(out - IMGS).max() > 0.1
    for a, b in zip(IMGS, out):
        pa, pb = _partition(a), _partition(b)
        # every colour region maps to one colour (a function of the original pixel colour)
        for k in np.unique(pa):
            assert len(np.unique(pb[pa == k])) == 1


def test_grayscale_permutation_texture():
    gray = augment(IMGS, AugmentConfig(**{**OFF, "p_grayscale": 1.0}), np.random.default_rng(0))
    np.testing.assert_allclose(gray[..., 0], gray[..., 2], atol=1e-6)
    perm = augment(IMGS, AugmentConfig(**{**OFF, "p_permute": 1.0}), np.random.default_rng(0))
    np.testing.assert_allclose(np.sort(perm, -1), np.sort(IMGS, -1), atol=1e-6)
    tex = augment(IMGS, AugmentConfig(**{**OFF, "p_texture": 1.0}), np.random.default_rng(0))
    ratio = (tex + 1) / (IMGS + 1 + 1e-9)
    assert np.any(ratio < 0.85) and np.all(ratio < 1.0 + 1e-5)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"augment: images must be \[N, H, W, 3\]"):
        augment(IMGS[0], AugmentConfig(), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"AugmentConfig\.p_invert"):
        AugmentConfig(p_invert=1.5)
