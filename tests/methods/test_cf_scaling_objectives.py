"""Each model's training loss is the documented composition of the pure losses (RecBole terms)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cf_reference import np_lightgcn, np_recbole_ssl

from jaxmethods.losses import bpr_drop_loss, bpr_loss, sampled_bce_loss
from jaxmethods.methods.cf_scaling.config import CFScalingConfig
from jaxmethods.methods.cf_scaling.objectives import get_model_def
from jaxmethods.models.cf import build_graph, neumf_logits

N_USERS, N_ITEMS, B, SPE = 12, 10, 16, 5


@functools.cache
def _data():
    rng = np.random.default_rng(0)
    key = np.unique(rng.integers(0, N_USERS * N_ITEMS, 50))
    graph = build_graph(key // N_ITEMS, key % N_ITEMS, N_USERS, N_ITEMS)
    batch = {
        "user": jnp.asarray(rng.integers(0, N_USERS, B), jnp.int32),
        "pos": jnp.asarray(rng.integers(0, N_ITEMS, B), jnp.int32),
        "neg": jnp.asarray(rng.integers(0, N_ITEMS, B), jnp.int32),
        "mask": jnp.asarray(np.arange(B) < B - 3),
        "step": jnp.int32(0),
    }
    return graph, batch


@pytest.fixture(scope="module")
def setup():
    return _data()


FAST_COMPILE = {"xla_backend_optimization_level": 0}  # compile time dominates these checks


@functools.cache
def _compiled(name):
    """(params, ctx, loss_fn, scores) of one model, compiled once per model."""
    mdef = get_model_def(name, CFScalingConfig().model_hparams(name), steps_per_epoch=SPE)
    graph = _data()[0]

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def build():
        params = mdef.init(jax.random.PRNGKey(1), N_USERS, N_ITEMS, 3, 4)
        ctx = {"graph": graph, "views": mdef.epoch_views(jax.random.PRNGKey(2), graph)}
        return params, ctx, mdef.scorer(params, graph)(jnp.arange(N_USERS))

    params, ctx, scores = build()
    assert scores.shape == (N_USERS, N_ITEMS)
    loss_fn = jax.jit(mdef.loss, compiler_options=FAST_COMPILE)
    return params, ctx, loss_fn, scores


def _run(name, batch, step=0):
    params, ctx, loss_fn, scores = _compiled(name)
    loss, metrics = loss_fn(params, ctx, dict(batch, step=jnp.int32(step)), jax.random.PRNGKey(3))
    return params, ctx, loss, metrics, scores


def test_lightgcn_and_sgl_losses_match_recbole_formulas(setup):
    """RecBole's LightGCN.calculate_loss (mean BPR + 1e-5 EmbLoss) and SGL.calculate_loss
    (summed BPR + 1e-5 EmbLoss + 0.05 (ssl_user + ssl_item)), in NumPy on the unmasked rows."""
    graph, batch = setup
    keep = np.asarray(batch["mask"])
    u, p, n = (np.asarray(batch[k])[keep] for k in ("user", "pos", "neg"))
    rows, cols = np.asarray(graph.rows), np.asarray(graph.cols)
    to_item = rows < N_USERS
    for name, layers in (("lightgcn", 2), ("sgl", 3)):
        params, ctx, loss, _, scores = _run(name, batch)
        eu, ei = np.asarray(params["user_emb"], np.float64), np.asarray(params["item_emb"])
        ur, ir = np_lightgcn(eu, ei, rows[to_item], cols[to_item] - N_USERS, layers)
        per = np.logaddexp(0.0, -(np.sum(ur[u] * ir[p], 1) - np.sum(ur[u] * ir[n], 1)))
        emb = sum(np.linalg.norm(x) for x in (eu[u], ei[p], ei[n])) / len(u)
        if name == "lightgcn":
            want = per.mean() + 1e-5 * emb
        else:
            subs = []
            for v in np.asarray(ctx["views"]):
                kept = to_item & (v > 0)
                subs.append(np_lightgcn(eu, ei, rows[kept], cols[kept] - N_USERS, layers))
            (u1, i1), (u2, i2) = subs
            ssl = np_recbole_ssl(u1, u2, u, 0.5) + np_recbole_ssl(i1, i2, p, 0.5)
            want = per.sum() + 1e-5 * emb + 0.05 * ssl
        np.testing.assert_allclose(scores, ur @ ir.T, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(loss, want, rtol=1e-5)


def test_bpr_drop_ramps_to_its_maximum(setup):
    _, batch = setup
    u, p, n, m = batch["user"], batch["pos"], batch["neg"], batch["mask"]
    params, _, loss0, _, _ = _run("bpr_drop", batch, step=0)
    pos = np.sum(np.asarray(params["user_emb"])[u] * np.asarray(params["item_emb"])[p], axis=1)
    neg = np.sum(np.asarray(params["user_emb"])[u] * np.asarray(params["item_emb"])[n], axis=1)
    np.testing.assert_allclose(loss0, bpr_loss(pos, neg, mask=m), rtol=1e-6)  # ε(0) = 0
    ramp = 10 * SPE  # drop_ramp_epochs = 10
    _, _, _, metrics_half, _ = _run("bpr_drop", batch, step=ramp // 2)
    np.testing.assert_allclose(metrics_half["drop_rate"], 0.1, rtol=1e-6)
    _, _, loss_max, metrics_max, _ = _run("bpr_drop", batch, step=3 * ramp)
    np.testing.assert_allclose(metrics_max["drop_rate"], 0.2, rtol=1e-6)
    want, keep = bpr_drop_loss(pos, neg, drop_rate=0.2, mask=m)
    assert int(np.sum(np.asarray(m) & ~np.asarray(keep))) == int(0.2 * (B - 3))
    np.testing.assert_allclose(loss_max, want, rtol=1e-6)
    assert float(loss_max) < float(loss0)


def test_neumf_loss_is_pointwise_bce_with_dropout(setup):
    _, batch = setup
    params, _, loss, _, scores = _run("neumf", batch)

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def reference(params):
        k_pos, k_neg = jax.random.split(jax.random.PRNGKey(3))
        pos = neumf_logits(params, batch["user"], batch["pos"], dropout_rate=0.1, key=k_pos)
        neg = neumf_logits(params, batch["user"], batch["neg"], dropout_rate=0.1, key=k_neg)
        return sampled_bce_loss(pos, neg, mask=batch["mask"]), neumf_logits(
            params, batch["user"], batch["pos"]
        )

    want, eval_logits = reference(params)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(
        scores[batch["user"], batch["pos"]], eval_logits, rtol=1e-5, atol=1e-6
    )
