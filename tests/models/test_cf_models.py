"""BPR-MF / NeuMF / SGL forward passes, NumPy references, and exactness of zero-padding."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from cf_reference import np_lightgcn, np_recbole_ssl

from jaxmethods.losses import bpr_loss
from jaxmethods.models.cf import (
    bpr_scores,
    build_graph,
    contrastive_loss,
    init_embeddings,
    init_lightgcn,
    init_neumf,
    lightgcn_representations,
    neumf_hidden_width,
    neumf_logits,
    neumf_scorer,
    pair_scores,
    sample_views,
    score_all_items,
)

N_USERS, N_ITEMS = 11, 13
FAST_COMPILE = {"xla_backend_optimization_level": 0}  # compile time dominates these tiny runs


def _np_neumf(p, users, items, dim, hidden=(2, 1)):
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    gmf = p["user_gmf_emb"][users, :dim] * p["item_gmf_emb"][items, :dim]
    x = np.concatenate([p["user_mlp_emb"][users, :dim], p["item_mlp_emb"][items, :dim]], axis=1)
    w0 = np.concatenate([p["mlp0_user"][:dim, : 2 * dim], p["mlp0_item"][:dim, : 2 * dim]])
    h = np.maximum(x @ w0 + p["mlp0_bias"][: 2 * dim], 0)
    h = np.maximum(h @ p["mlp1_kernel"][: 2 * dim, :dim] + p["mlp1_bias"][:dim], 0)
    return gmf @ p["head_gmf"][:dim] + h @ p["head_mlp"][:dim] + p["head_bias"]


def test_neumf_matches_numpy_scorer_and_dropout():
    users = jnp.arange(N_USERS).repeat(N_ITEMS)
    items = jnp.tile(jnp.arange(N_ITEMS), N_USERS)

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def run():
        params = init_neumf(jax.random.PRNGKey(0), n_users=N_USERS, n_items=N_ITEMS, dim=4)
        drop = lambda k: neumf_logits(params, users, items, dropout_rate=0.5, key=k)
        return (
            params,
            neumf_logits(params, users, items),
            neumf_scorer(params)(jnp.arange(N_USERS)),
            neumf_logits(params, users, items, dropout_rate=0.5),  # no key: eval mode
            drop(jax.random.PRNGKey(1)),
            drop(jax.random.PRNGKey(1)),
            drop(jax.random.PRNGKey(2)),
        )

    params, logits, full, no_key, a, b, c = run()
    assert params["mlp0_user"].shape == (4, 8) and params["mlp1_kernel"].shape == (8, 4)
    np.testing.assert_allclose(logits, _np_neumf(params, users, items, 4), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full.reshape(-1), logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(no_key, logits)
    np.testing.assert_array_equal(a, b)  # dropout is a function of the key
    assert not np.allclose(a, c) and not np.allclose(a, logits)


def test_neumf_fixed_mlp_widths_match_numpy_at_a_padded_size():
    """`hidden=(6, 3)` (RecBole-style fixed widths): the MLP does not grow with d, and a d=4
    model zero-padded to 8 computes the NumPy NeuMF of its leading coordinates."""
    users = jnp.arange(N_USERS).repeat(N_ITEMS)
    items = jnp.tile(jnp.arange(N_ITEMS), N_USERS)
    params = jax.jit(
        lambda: init_neumf(
            jax.random.PRNGKey(4), n_users=N_USERS, n_items=N_ITEMS, dim=4, padded_dim=8,
            hidden=(6, 3),
        ),
        compiler_options=FAST_COMPILE,
    )()  # fmt: skip
    assert params["mlp0_user"].shape == (8, 6) and params["mlp1_kernel"].shape == (6, 3)
    assert params["head_mlp"].shape == (3,) and neumf_hidden_width(8, (6, 3)) == 6
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    assert not p["mlp0_user"][4:].any() and not p["user_gmf_emb"][:, 4:].any()
    x = np.concatenate([p["user_mlp_emb"][users, :4], p["item_mlp_emb"][items, :4]], axis=1)
    h = np.maximum(x @ np.concatenate([p["mlp0_user"][:4], p["mlp0_item"][:4]]) + p["mlp0_bias"], 0)
    h = np.maximum(h @ p["mlp1_kernel"] + p["mlp1_bias"], 0)
    gmf = p["user_gmf_emb"][users, :4] * p["item_gmf_emb"][items, :4]
    want = gmf @ p["head_gmf"][:4] + h @ p["head_mlp"] + p["head_bias"]
    got = jax.jit(
        lambda: neumf_scorer(params)(jnp.arange(N_USERS)), compiler_options=FAST_COMPILE
    )()
    np.testing.assert_allclose(np.asarray(got).reshape(-1), want, rtol=1e-5, atol=1e-6)
    # PyTorch's default Linear bound: the first layer uses fan-in 2d = 8, the second 6.
    assert np.abs(p["mlp0_user"]).max() <= 1 / np.sqrt(8) and np.abs(
        p["mlp1_kernel"]
    ).max() <= 1 / np.sqrt(6)
    assert np.abs(p["mlp1_kernel"]).max() > 0.6 / np.sqrt(6)


def _train_steps(loss_fn, params, n=5):
    tx = optax.adam(1e-2)

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def run(params):
        def step(carry, _):
            params, opt = carry
            updates, opt = tx.update(jax.grad(loss_fn)(params), opt, params)
            return (optax.apply_updates(params, updates), opt), None

        return jax.lax.scan(step, (params, tx.init(params)), None, length=n)[0][0]

    return run(params)


@pytest.mark.parametrize("model", ["mf", "lightgcn", pytest.param("neumf", marks=pytest.mark.slow)])
def test_zero_padding_is_exact_under_adam(model):
    rng = np.random.default_rng(0)
    users = jnp.asarray(rng.integers(0, N_USERS, 32))
    pos = jnp.asarray(rng.integers(0, N_ITEMS, 32))
    neg = jnp.asarray(rng.integers(0, N_ITEMS, 32))
    graph = build_graph(np.asarray(users), np.asarray(pos), N_USERS, N_ITEMS)
    dim, padded = 3, 8
    key = jax.random.PRNGKey(5)

    if model == "neumf":
        init = lambda pd: init_neumf(key, n_users=N_USERS, n_items=N_ITEMS, dim=dim, padded_dim=pd)

        def loss(p):
            return bpr_loss(neumf_logits(p, users, pos), neumf_logits(p, users, neg))

        score = lambda p: neumf_scorer(p)(jnp.arange(N_USERS))
    else:
        layers = 2 if model == "lightgcn" else 0
        init = lambda pd: init_lightgcn(
            key, n_users=N_USERS, n_items=N_ITEMS, dim=dim, padded_dim=pd
        )

        def reprs(p):
            return lightgcn_representations(p, graph, layers)

        def loss(p):
            u, i = reprs(p)
            return bpr_loss(pair_scores(u, i, users, pos), pair_scores(u, i, users, neg))

        score = lambda p: score_all_items(*reprs(p), jnp.arange(N_USERS))

    # The padded init holds a size-3 model in its leading coordinates and zeros elsewhere;
    # its corner is the unpadded model the padded one must track exactly.
    big = jax.jit(lambda: init(padded), compiler_options=FAST_COMPILE)()
    shapes = jax.eval_shape(lambda: init(dim))
    corners = {k: tuple(slice(0, n) for n in shapes[k].shape) for k in big}
    small = {k: big[k][corners[k]] for k in big}
    for k in big:
        outside = np.asarray(big[k]).copy()
        outside[corners[k]] = 0
        assert not outside.any(), f"padded init of {k} is not zero outside the true size"
    small, big = _train_steps(loss, small), _train_steps(loss, big)
    score = jax.jit(score, compiler_options=FAST_COMPILE)
    np.testing.assert_allclose(score(big), score(small), rtol=1e-5, atol=1e-6)
    for k in small:
        extra = np.asarray(big[k]).copy()
        extra[corners[k]] = 0
        assert not extra.any(), f"padded coordinates of {k} moved"


def test_mf_init_scales():
    p = jax.jit(
        lambda k: init_embeddings(k, n_users=2000, n_items=10, dim=64),
        compiler_options=FAST_COMPILE,
    )(jax.random.PRNGKey(0))
    np.testing.assert_allclose(np.std(p["user_emb"]), np.sqrt(2 / (2000 + 64)), rtol=0.05)
    with pytest.raises(ValueError, match="init must be"):
        init_embeddings(jax.random.PRNGKey(0), n_users=2, n_items=2, dim=2, init="he")


def test_sgl_contrastive_loss_matches_recbole_formula():
    rng = np.random.default_rng(2)
    users, items = rng.integers(0, N_USERS, 40), rng.integers(0, N_ITEMS, 40)
    graph = build_graph(users, items, N_USERS, N_ITEMS)
    bu, bi = jnp.asarray(users[:8]), jnp.asarray(items[:8])

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def run():
        params = init_lightgcn(jax.random.PRNGKey(0), n_users=N_USERS, n_items=N_ITEMS, dim=6)
        views = sample_views(jax.random.PRNGKey(1), graph, 0.1)
        got = contrastive_loss(params, graph, views, bu, bi, n_layers=3, temperature=0.5)
        return params, views, got

    params, views, got = run()
    views = np.asarray(views)
    assert views.shape == (2, graph.rows.shape[0])
    assert not np.allclose(views[0], views[1])
    # The interactions each view keeps, read off its edges (user -> item edges only).
    rows, cols = np.asarray(graph.rows), np.asarray(graph.cols)
    to_item = rows < N_USERS
    want = 0.0
    subs = []
    for v in views:
        kept = to_item & (v > 0)
        n_inter = len(np.unique(users * N_ITEMS + items))
        assert kept.sum() == int(n_inter * 0.9)  # RecBole keeps int(E * (1 - ratio))
        subs.append(
            np_lightgcn(
                np.asarray(params["user_emb"]),
                np.asarray(params["item_emb"]),
                rows[kept],
                cols[kept] - N_USERS,
                3,
            )
        )
    (u1, i1), (u2, i2) = subs
    want = np_recbole_ssl(u1, u2, np.asarray(bu), 0.5) + np_recbole_ssl(i1, i2, np.asarray(bi), 0.5)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_pair_and_bpr_scores_are_dot_products():
    rng = np.random.default_rng(4)
    u_tab, i_tab = rng.normal(size=(N_USERS, 5)), rng.normal(size=(N_ITEMS, 5))
    users, pos, neg = (rng.integers(0, n, 6) for n in (N_USERS, N_ITEMS, N_ITEMS))
    fn = jax.jit(
        lambda u, i: (*bpr_scores(u, i, users, pos, neg), pair_scores(u, i, users, neg)),
        compiler_options=FAST_COMPILE,
    )
    s_pos, s_neg, s_pair = fn(jnp.asarray(u_tab), jnp.asarray(i_tab))
    np.testing.assert_allclose(s_pos, np.sum(u_tab[users] * i_tab[pos], 1), rtol=1e-5)
    np.testing.assert_allclose(s_neg, np.sum(u_tab[users] * i_tab[neg], 1), rtol=1e-5)
    np.testing.assert_allclose(s_pair, s_neg, rtol=1e-6)
