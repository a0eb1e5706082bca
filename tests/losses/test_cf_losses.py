"""CF losses against NumPy references, closed-form gradients and the spec's invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.losses import (
    bpr_drop_loss,
    bpr_loss,
    drop_highest_loss_mask,
    drop_rate_schedule,
    embedding_l2_reg,
    info_nce,
    sampled_bce_loss,
)


def _np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_bpr_matches_numpy_with_mask_and_reductions():
    r = _rng()
    pos, neg = r.normal(size=33).astype(np.float32), r.normal(size=33).astype(np.float32)
    mask = r.random(33) < 0.8
    ref = -_np_log_sigmoid(pos.astype(np.float64) - neg)
    np.testing.assert_allclose(bpr_loss(pos, neg), ref.mean(), rtol=1e-5)
    np.testing.assert_allclose(bpr_loss(pos, neg, mask=mask), ref[mask].mean(), rtol=1e-5)
    np.testing.assert_allclose(
        bpr_loss(pos, neg, mask=mask, reduction="sum"), ref[mask].sum(), rtol=1e-5
    )
    np.testing.assert_allclose(
        bpr_loss(pos, neg, mask=mask, reduction="none"), np.where(mask, ref, 0), rtol=1e-5
    )
    with pytest.raises(ValueError, match="reduction"):
        bpr_loss(pos, neg, reduction="avg")


def test_bpr_equal_scores_is_log2():
    s = jnp.linspace(-3, 3, 7)
    np.testing.assert_allclose(bpr_loss(s, s), np.log(2.0), rtol=1e-6)


def test_bpr_gradient_wrt_user_matches_closed_form():
    # dL/de_u = -σ(-(s_ui - s_uj)) (e_i - e_j): unbounded in the item-embedding norms.
    r = _rng(1)
    e_u, e_i, e_j = (r.normal(size=8).astype(np.float32) for _ in range(3))
    loss = lambda u: bpr_loss(jnp.dot(u, e_i)[None], jnp.dot(u, e_j)[None])
    grad = jax.grad(loss)(e_u)
    x = float(np.dot(e_u, e_i) - np.dot(e_u, e_j))
    closed = -(1.0 / (1.0 + np.exp(x))) * (e_i - e_j)
    np.testing.assert_allclose(grad, closed, rtol=1e-5, atol=1e-6)
    big = jax.grad(lambda u: bpr_loss(jnp.dot(u, 10 * e_i)[None], jnp.dot(u, 10 * e_j)[None]))
    assert np.linalg.norm(big(np.zeros(8, np.float32))) == pytest.approx(
        10 * 0.5 * np.linalg.norm(e_i - e_j), rel=1e-5
    )


def test_sampled_bce_matches_numpy():
    r = _rng(2)
    pos = r.normal(size=10).astype(np.float32)
    neg = r.normal(size=(10, 3)).astype(np.float32)
    mask = np.arange(10) < 7
    bce = lambda z, y: np.logaddexp(0.0, z) - y * z
    rows = np.concatenate([bce(pos[mask], 1.0), bce(neg[mask], 0.0).ravel()])
    np.testing.assert_allclose(sampled_bce_loss(pos, neg, mask=mask), rows.mean(), rtol=1e-5)
    np.testing.assert_allclose(
        sampled_bce_loss(pos, neg[:, 0]),
        np.concatenate([bce(pos, 1.0), bce(neg[:, 0], 0.0)]).mean(),
        rtol=1e-5,
    )


def _np_info_nce(a, b, tau, mask):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    a, b = a[mask], b[mask]
    logits = a @ b.T / tau
    lse = np.log(np.exp(logits).sum(1))
    return lse - np.diag(logits)


def test_info_nce_matches_numpy():
    r = _rng(3)
    a, b = r.normal(size=(12, 5)), r.normal(size=(12, 5))
    mask = r.random(12) < 0.75
    ref = _np_info_nce(a, b, 0.5, mask)
    np.testing.assert_allclose(
        info_nce(a.astype(np.float32), b.astype(np.float32), temperature=0.5, mask=mask),
        ref.mean(),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        info_nce(a.astype(np.float32), b.astype(np.float32), temperature=0.5, reduction="sum"),
        _np_info_nce(a, b, 0.5, np.ones(12, bool)).sum(),
        rtol=1e-5,
    )


def test_info_nce_invariants():
    # Identical views of orthogonal rows at small τ -> 0; independent random views -> ~log B.
    eye = np.eye(16, dtype=np.float32) * 3.0
    assert float(info_nce(eye, eye, temperature=0.05)) < 1e-6
    r = _rng(4)
    batch = 256
    a = r.normal(size=(batch, 64)).astype(np.float32)
    b = r.normal(size=(batch, 64)).astype(np.float32)
    assert float(info_nce(a, b, temperature=1.0)) == pytest.approx(np.log(batch), rel=0.02)


def test_embedding_l2_reg_matches_recbole_embloss():
    r = _rng(5)
    u, i, j = (r.normal(size=(6, 4)).astype(np.float32) for _ in range(3))
    mask = np.array([1, 1, 1, 1, 0, 0], bool)
    norms = sum(np.linalg.norm(x[mask]) for x in (u, i, j))
    np.testing.assert_allclose(embedding_l2_reg(u, i, j, mask=mask), norms / 4, rtol=1e-5)
    sq = sum(np.sum(x**2) for x in (u, i, j))
    np.testing.assert_allclose(embedding_l2_reg(u, i, j, squared=True), sq / 6 / 2, rtol=1e-5)
    grad = jax.grad(lambda x: embedding_l2_reg(x))(jnp.zeros((3, 2)))
    assert np.all(np.isfinite(grad))


def test_drop_schedule_and_mask():
    np.testing.assert_allclose(drop_rate_schedule(0, max_rate=0.2, ramp_steps=10), 0.0)
    np.testing.assert_allclose(drop_rate_schedule(5, max_rate=0.2, ramp_steps=10), 0.1)
    np.testing.assert_allclose(drop_rate_schedule(50, max_rate=0.2, ramp_steps=10), 0.2)
    losses = np.array([0.1, 5.0, 0.3, 2.0, 9.0, 0.2], np.float32)
    keep = drop_highest_loss_mask(losses, 0.34)  # floor(0.34 * 6) = 2 -> drop 9.0 and 5.0
    np.testing.assert_array_equal(keep, [1, 0, 1, 1, 0, 1])
    mask = np.array([1, 1, 1, 1, 0, 0], bool)  # 4 real rows: floor(0.5 * 4) = 2
    keep = drop_highest_loss_mask(losses, 0.5, mask)
    np.testing.assert_array_equal(keep, [1, 0, 1, 0, 0, 0])


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.25, 0.5])
def test_bpr_drop_drops_exactly_floor_eps_b(eps):
    r = _rng(6)
    pos, neg = r.normal(size=40).astype(np.float32), r.normal(size=40).astype(np.float32)
    loss, keep = bpr_drop_loss(pos, neg, drop_rate=eps)
    assert int(np.sum(~np.asarray(keep))) == int(np.floor(eps * 40))
    per = -_np_log_sigmoid(pos.astype(np.float64) - neg)
    kept = np.sort(per)[: 40 - int(np.floor(eps * 40))]
    np.testing.assert_allclose(loss, kept.mean(), rtol=1e-5)
    if eps == 0.0:
        np.testing.assert_allclose(loss, bpr_loss(pos, neg), rtol=1e-6)
