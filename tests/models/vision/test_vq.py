"""The VQ image tokenizer: nearest-code quantisation, straight-through gradients, the loss terms
and the EMA codebook update against NumPy transcriptions, id / image checks, and (slow) that a
few hundred steps on 32x32 synthetic shapes cut the reconstruction error with codebook usage
reported."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmethods.models.vision.vq import (
    VQConfig,
    build_vq_tokenizer,
    codebook_usage,
    ema_codebook_update,
    restart_dead_codes,
    train_vq,
    vq_losses,
)

TINY = VQConfig(hidden=8, codebook_size=16, code_dim=4)


def synthetic_shapes(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """[n, size, size, 3] in [-1, 1]: a circle, square or triangle of a random colour, position
    and scale on a random plain background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        bg, fg = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3)
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        r = rng.uniform(size * 0.15, size * 0.3)
        kind = rng.integers(3)
        if kind == 0:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        elif kind == 1:
            mask = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r)
        else:
            mask = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < (yy - cy + r) / 2)
        out[i] = np.where(mask[..., None], fg, bg)
    return out


@pytest.fixture(scope="module")
def model():
    return build_vq_tokenizer(TINY)


@pytest.fixture(scope="module")
def images():
    return jnp.asarray(synthetic_shapes(2))


def test_forward_ids_losses_and_straight_through_gradient(model, images):
    """One compiled program: forward, the loss terms, their gradients, encode and decode."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    @jax.jit
    def go(params, rest, x):
        def loss(p):
            out = nnx.merge(graphdef, p, rest)(x)
            return vq_losses(x, out, beta=0.25, ema=False)["recon"], out

        grads, out = jax.grad(loss, has_aux=True)(params)
        m = nnx.merge(graphdef, params, rest)
        ids = m.encode(x)
        return dict(
            out=out, grads=grads, ids=ids, decoded=m.decode(ids),
            losses=vq_losses(x, out, beta=0.25, ema=False),
            ema_losses=vq_losses(x, out, beta=0.25, ema=True),
        )  # fmt: skip

    run = go(params, rest, images)
    # encode / decode
    ids = run["ids"]
    assert ids.shape == (2, 8, 8) and ids.dtype == jnp.int32
    assert int(ids.min()) >= 0 and int(ids.max()) < TINY.codebook_size
    np.testing.assert_array_equal(np.asarray(ids), np.asarray(run["out"]["ids"]))
    assert run["decoded"].shape == (2, 32, 32, 3)
    # quantisation is the nearest code (brute force)
    z, zq, recon = (np.asarray(run["out"][k]) for k in ("z", "zq", "recon"))
    book = np.asarray(model.codebook[...])
    want = np.argmin(((z[..., None, :] - book) ** 2).sum(-1), axis=-1)
    np.testing.assert_array_equal(np.asarray(ids), want)
    np.testing.assert_allclose(zq, book[want], atol=1e-6)
    # the reconstruction reaches the encoder only through the straight-through estimator
    grads = run["grads"]
    assert float(jnp.abs(grads["enc_in"]["kernel"][...]).sum()) > 0
    assert float(jnp.abs(grads["codebook"][...]).sum()) == 0.0  # recon has no codebook grad
    # loss terms against NumPy
    x = np.asarray(images)
    losses = run["losses"]
    sq = ((z - zq) ** 2).sum(-1).mean()
    np.testing.assert_allclose(float(losses["recon"]), ((recon - x) ** 2).mean(), rtol=1e-5)
    np.testing.assert_allclose(float(losses["commitment"]), sq, rtol=1e-5)
    np.testing.assert_allclose(float(losses["codebook"]), sq, rtol=1e-5)
    np.testing.assert_allclose(float(losses["total"]), ((recon - x) ** 2).mean() + 1.25 * sq,
                               rtol=1e-5)  # fmt: skip
    assert float(run["ema_losses"]["codebook"]) == 0.0


def test_bad_ids_and_images_are_refused(model):
    bad = np.zeros((2, 8, 8), np.int32)
    bad[1, 3, 4] = TINY.codebook_size
    with pytest.raises(ValueError, match=r"sample 1 .*\[0, 16\).*\[16\]"):
        model.decode(bad)
    with pytest.raises(ValueError, match=r"\[B, 32, 32, 3\].*\(2, 32, 32, 4\)"):
        model.encode(jnp.zeros((2, 32, 32, 4)))


def test_ema_update_matches_numpy():
    rng = np.random.default_rng(2)
    k, d, n, g, eps = 6, 3, 40, 0.9, 1e-5
    count, sums = rng.uniform(0, 3, k), rng.normal(size=(k, d))
    z, ids = rng.normal(size=(n, d)), rng.integers(0, k - 1, n)  # code k-1 unused
    want_count, want_sums = count.copy() * g, sums.copy() * g
    for zi, i in zip(z, ids):
        want_count[i] += 1 - g
        want_sums[i] += (1 - g) * zi
    total = want_count.sum()
    want_book = want_sums / ((want_count + eps) / (total + k * eps) * total)[:, None]
    got = ema_codebook_update(jnp.asarray(count), jnp.asarray(sums), jnp.asarray(z),
                              jnp.asarray(ids), decay=g, eps=eps)  # fmt: skip
    for a, b in zip(got, (want_count, want_sums, want_book)):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-6)


def test_codebook_usage():
    usage = codebook_usage(np.array([0, 0, 1, 1, 2, 2, 3, 3]), 8)
    assert usage["used_fraction"] == 0.5
    np.testing.assert_allclose(usage["perplexity"], 4.0)


def test_host_init(model):
    book = np.asarray(model.codebook[...])
    assert 0 < np.abs(book).max() <= 1 / TINY.codebook_size
    kernel = np.asarray(model.enc_down[0].kernel[...])  # [4, 4, 8, 8]: std 1 / sqrt(128)
    assert abs(kernel.std() * np.sqrt(128) - 1) < 0.2
    np.testing.assert_allclose(np.asarray(model.code_usage[...]), 1 / TINY.codebook_size)


def test_config_errors():
    with pytest.raises(ValueError, match="image_size"):
        VQConfig(image_size=30)
    with pytest.raises(ValueError, match="ema_decay"):
        VQConfig(ema=True, ema_decay=1.0)


@pytest.mark.slow
def test_training_on_shapes_cuts_reconstruction_error():
    images = synthetic_shapes(512)
    held_out = jnp.asarray(synthetic_shapes(128, seed=9))
    model = build_vq_tokenizer(VQConfig(hidden=16, codebook_size=64, code_dim=8))
    graphdef = nnx.graphdef(model)

    @jax.jit
    def held_out_error(state):  # encode -> ids -> decode, mean squared error
        m = nnx.merge(graphdef, state)
        return jnp.mean(
            (m.decode_latents(m.quantize(m.encode_latents(held_out))[0]) - held_out) ** 2
        )

    before = float(held_out_error(nnx.state(model)))
    history = train_vq(model, images, steps=300, batch_size=16, lr=2e-3, log_every=50).history
    after = float(held_out_error(nnx.state(model)))
    assert after < 0.5 * before, (before, after, history)
    assert history[-1]["recon"] < history[0]["recon"]
    usage = history[-1]
    assert 0.25 < usage["used_fraction"] <= 1 and 2 < usage["perplexity"] <= 64, usage


def test_restart_dead_codes_matches_numpy():
    rng = np.random.default_rng(3)
    k, d, n, g, thr = 5, 2, 12, 0.9, 0.5
    book, usage = rng.normal(size=(k, d)), np.array([0.3, 0.3, 0.3, 0.09, 0.01])
    z, ids = rng.normal(size=(n, d)), np.array([0, 1, 2] * 4)
    key = jax.random.key(0)
    got_book, got_usage, dead = restart_dead_codes(
        jnp.asarray(book), jnp.asarray(usage), jnp.asarray(z), jnp.asarray(ids), key,
        decay=g, threshold=thr,
    )  # fmt: skip
    share = np.bincount(ids, minlength=k) / n
    want_usage = g * usage + (1 - g) * share  # [.3033, .3033, .3033, .081, .009]
    want_dead = want_usage < thr / k  # codes 3 and 4
    np.testing.assert_array_equal(np.asarray(dead), want_dead)
    np.testing.assert_allclose(np.asarray(got_usage), np.where(want_dead, 1 / k, want_usage))
    np.testing.assert_allclose(np.asarray(got_book)[~want_dead], book[~want_dead], rtol=1e-6)
    for row in np.asarray(got_book)[want_dead]:  # restarted on rows of z
        assert np.isclose(z, row, atol=1e-6).all(axis=1).any()
