"""The VQ tokenizer's k-means codebook fitting: `kmeans` against NumPy (nearest-centre ids by
brute force, every centre the mean of its points, lower distortion than random picks on
clustered data), and `train_vq`'s k-means initialisation from encoder outputs."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmethods.models.vision.vq import (
    VQConfig,
    build_vq_tokenizer,
    encoder_latents,
    kmeans,
    train_vq,
)


def blobs(k: int = 12, per: int = 40, d: int = 3, seed: int = 0) -> np.ndarray:
    """[k * per, d]: k tight Gaussian clusters (std 0.05) around centres drawn in [-3, 3]^d."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-3, 3, (k, d))
    return (centres[:, None] + rng.normal(0, 0.05, (k, per, d))).reshape(-1, d)


def distortion(x: np.ndarray, centres: np.ndarray) -> float:
    """Mean squared distance of each point to its nearest centre (brute force)."""
    return float(((x[:, None] - centres[None]) ** 2).sum(-1).min(-1).mean())


def test_kmeans_is_a_lloyd_fixed_point_and_beats_random_picks():
    x = blobs()
    centres, ids = kmeans(x, 12, iters=20, rng=np.random.default_rng(0))
    assert centres.shape == (12, 3) and centres.dtype == np.float32 and ids.shape == (len(x),)
    d2 = ((x[:, None] - centres[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(ids, d2.argmin(-1))
    for j in range(12):  # every cluster non-empty and its centre the mean of its points
        assert (ids == j).any(), j
        np.testing.assert_allclose(centres[j], x[ids == j].mean(0), atol=1e-5)
    # the 12 blobs are found: distortion at the within-blob level (3 * 0.05^2 = 0.0075)
    got = distortion(x, centres)
    assert got < 0.01, got
    rng = np.random.default_rng(1)
    picks = [distortion(x, x[rng.choice(len(x), 12, replace=False)]) for _ in range(20)]
    assert got < 0.2 * np.median(picks), (got, picks)


def test_kmeans_with_fewer_points_than_centres():
    x = np.arange(6, dtype=np.float64).reshape(3, 2)
    centres, ids = kmeans(x, 5, iters=3, rng=np.random.default_rng(0))
    assert centres.shape == (5, 2) and ids.shape == (5,)
    assert {tuple(c) for c in centres.tolist()} >= {tuple(p) for p in x.tolist()}
    with pytest.raises(ValueError, match=r"kmeans: points must be \[N, D\]"):
        kmeans(np.zeros((0, 2)), 3, iters=1, rng=np.random.default_rng(0))


def test_train_vq_kmeans_init_fits_the_encoder_outputs():
    """steps=0: only the codebook initialisation runs (the train step is never compiled)."""
    cfg = VQConfig(hidden=8, num_downsamples=3, codebook_size=8, code_dim=4)
    rng = np.random.default_rng(0)
    images = np.clip(rng.normal(0, 0.5, (6, 32, 32, 3)), -1, 1).astype(np.float32)
    fits = {}
    for name, iters in (("random", 0), ("kmeans", 10)):
        model = build_vq_tokenizer(cfg, seed=0)
        train_vq(model, images, steps=0, kmeans_iters=iters, seed=0)
        z = encoder_latents(*nnx.split(model, nnx.Param, ...), jnp.asarray(images))
        z = np.asarray(z, np.float64).reshape(-1, 4)
        fits[name] = (distortion(z, np.asarray(model.codebook[...], np.float64)), z, model)
    (d_km, z, model), (d_rand, _, _) = fits["kmeans"], fits["random"]
    book = np.asarray(model.codebook[...], np.float64)
    ids = ((z[:, None] - book[None]) ** 2).sum(-1).argmin(-1)
    for j in np.unique(ids):  # all 6 images (96 latents) were fitted: a Lloyd fixed point
        np.testing.assert_allclose(book[j], z[ids == j].mean(0), rtol=1e-4, atol=1e-5)
    assert d_km < d_rand, (d_km, d_rand)
    with pytest.raises(ValueError, match="train_vq: kmeans_iters must be >= 0"):
        train_vq(model, images, steps=0, kmeans_iters=-1)
