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


def _np_recbole_ssl(view1, view2, ids, tau):
    """Per-anchor terms of RecBole's `SGL.calc_ssl_loss` (one node type), transcribed to NumPy:
    e1 = normalize(view1[ids]), e2 = normalize(view2[ids]), all2 = normalize(view2),
    -log( exp(sum(e1 * e2) / tau) / sum(exp(e1 @ all2.T / tau)) )."""

    def normalize(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    e1, e2, all2 = normalize(view1[ids]), normalize(view2[ids]), normalize(view2)
    v1 = np.exp(np.sum(e1 * e2, axis=1) / tau)
    v2 = np.sum(np.exp(e1 @ all2.T / tau), axis=1)
    return -np.log(v1 / v2)


def test_info_nce_matches_recbole_calc_ssl_loss():
    r = _rng(3)
    n_nodes, batch = 30, 12
    view1, view2 = r.normal(size=(n_nodes, 5)), r.normal(size=(n_nodes, 5))
    ids = r.integers(0, n_nodes, batch)  # repeated nodes are anchors each time, as in RecBole
    mask = r.random(batch) < 0.75
    per_anchor = _np_recbole_ssl(view1, view2, ids, 0.5)
    a, c = view1[ids].astype(np.float32), view2.astype(np.float32)
    np.testing.assert_allclose(
        info_nce(a, c, ids, temperature=0.5, reduction="sum"), per_anchor.sum(), rtol=1e-5
    )
    np.testing.assert_allclose(
        info_nce(a, c, ids, temperature=0.5, mask=mask), per_anchor[mask].mean(), rtol=1e-5
    )
    np.testing.assert_allclose(
        info_nce(a, c, ids, temperature=0.5, mask=mask, reduction="none"),
        np.where(mask, per_anchor, 0.0),
        rtol=1e-5,
    )


def test_info_nce_denominator_runs_over_all_nodes_not_the_batch():
    # Identical views of orthogonal rows at small τ -> 0.
    eye = np.eye(16, dtype=np.float32) * 3.0
    assert float(info_nce(eye[:4], eye, jnp.arange(4), temperature=0.05)) < 1e-6
    # Independent random views: ~log N with N the number of candidates, whatever the batch.
    r = _rng(4)
    n_nodes = 512
    a = r.normal(size=(8, 64)).astype(np.float32)
    c = r.normal(size=(n_nodes, 64)).astype(np.float32)
    got = float(info_nce(a, c, jnp.arange(8), temperature=1.0))
    assert got == pytest.approx(np.log(n_nodes), rel=0.02)
    assert got > np.log(8) + 3.0  # an in-batch denominator would give about log 8


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
