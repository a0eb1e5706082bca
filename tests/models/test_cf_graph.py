"""LightGCN propagation against a dense NumPy computation; edge-dropout views."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.models.cf import (
    build_graph,
    edge_dropout_weights,
    init_lightgcn,
    lightgcn_representations,
    normalized_weights,
    propagate,
)


def _dense_norm_adj(users, items, n_users, n_items, keep=None):
    n = n_users + n_items
    a = np.zeros((n, n))
    for e, (u, i) in enumerate(zip(users, items)):
        if keep is None or keep[e]:
            a[u, n_users + i] = a[n_users + i, u] = 1.0
    deg = a.sum(1)
    d = np.where(deg > 0, deg, 1.0) ** -0.5
    return d[:, None] * a * d[None, :]


@pytest.fixture(scope="module")
def small_graph():
    rng = np.random.default_rng(0)
    n_users, n_items = 7, 9
    key = np.unique(rng.integers(0, n_users * n_items, 25))
    users, items = key // n_items, key % n_items
    return users, items, n_users, n_items


def _dense_from_edges(graph, weights):
    a = np.zeros((graph.n_nodes, graph.n_nodes))
    np.add.at(a, (np.asarray(graph.rows), np.asarray(graph.cols)), np.asarray(weights))
    return a


def test_normalised_adjacency_matches_dense(small_graph):
    users, items, n_users, n_items = small_graph
    g = build_graph(users, items, n_users, n_items)
    a = _dense_from_edges(g, g.weights)
    ref = _dense_norm_adj(users, items, n_users, n_items)
    np.testing.assert_allclose(a, ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a, a.T, atol=1e-7)  # Â is symmetric
    rows, cols = np.asarray(g.rows), np.asarray(g.cols)
    assert np.all(np.diff(rows) >= 0)
    np.testing.assert_array_equal(
        np.asarray(g.indptr), np.searchsorted(rows, np.arange(g.n_nodes + 1))
    )
    mirror = np.asarray(g.mirror)  # the reversed edge of each edge
    np.testing.assert_array_equal(rows[mirror], cols)
    np.testing.assert_array_equal(cols[mirror], rows)


@pytest.mark.parametrize(("n_layers", "edge_chunk"), [(0, 0), (1, 0), (3, 0), (3, 7)])
def test_propagation_matches_dense_layer_mean(small_graph, n_layers, edge_chunk):
    users, items, n_users, n_items = small_graph
    g = build_graph(users, items, n_users, n_items)
    ego = np.random.default_rng(1).normal(size=(n_users + n_items, 4)).astype(np.float32)
    ref_a = _dense_norm_adj(users, items, n_users, n_items)
    layers = [ego.astype(np.float64)]
    for _ in range(n_layers):
        layers.append(ref_a @ layers[-1])
    ref = np.mean(layers, axis=0)
    fn = jax.jit(lambda g, x: propagate(g, x, n_layers, edge_chunk=edge_chunk))
    out = fn(g, jnp.asarray(ego))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # > 10 s on 2 cores under make test
def test_k0_is_mf(small_graph):
    users, items, n_users, n_items = small_graph
    g = build_graph(users, items, n_users, n_items)
    params = init_lightgcn(jax.random.PRNGKey(0), n_users=n_users, n_items=n_items, dim=3)
    u, i = lightgcn_representations(params, g, 0)
    np.testing.assert_array_equal(u, params["user_emb"])
    np.testing.assert_array_equal(i, params["item_emb"])


def test_duplicates_collapse_and_bad_ids_raise(small_graph):
    users, items, n_users, n_items = small_graph
    g = build_graph(
        np.concatenate([users, users[:3]]), np.concatenate([items, items[:3]]), n_users, n_items
    )
    np.testing.assert_allclose(
        _dense_from_edges(g, g.weights), _dense_norm_adj(users, items, n_users, n_items), atol=1e-7
    )
    with pytest.raises(ValueError, match="out of range"):
        build_graph(np.array([0]), np.array([n_items]), n_users, n_items)


@pytest.mark.slow  # > 10 s on 2 cores under make test
def test_edge_dropout_keeps_exact_count_and_renormalises(small_graph):
    users, items, n_users, n_items = small_graph
    g = build_graph(users, items, n_users, n_items)
    w = edge_dropout_weights(jax.random.PRNGKey(3), g, 0.2)
    kept_edges = np.asarray(w) > 0
    kept_inter = np.unique(np.asarray(g.inter)[kept_edges])
    assert len(kept_inter) == int(len(users) * 0.8)
    keep = np.zeros(len(users), bool)
    keep[kept_inter] = True
    order = np.argsort(users * n_items + items)  # build_graph numbers interactions by sorted key
    keep_in_file_order = np.zeros(len(users), bool)
    keep_in_file_order[order] = keep
    ref = _dense_norm_adj(users, items, n_users, n_items, keep_in_file_order)
    np.testing.assert_allclose(_dense_from_edges(g, w), ref, rtol=1e-6, atol=1e-7)
    full = normalized_weights(g, jnp.ones(len(users), bool))
    np.testing.assert_allclose(full, g.weights, rtol=1e-6)


def test_chunked_propagation_gradient_matches(small_graph):
    users, items, n_users, n_items = small_graph
    g = build_graph(users, items, n_users, n_items)
    ego = jax.random.normal(jax.random.PRNGKey(0), (n_users + n_items, 3))
    target = jax.random.normal(jax.random.PRNGKey(1), ego.shape)

    def loss(x, chunk):
        return jnp.sum(propagate(g, x, 2, edge_chunk=chunk) * target)

    full = jax.jit(jax.grad(lambda x: loss(x, 0)))(ego)
    chunked = jax.jit(jax.grad(lambda x: loss(x, 9)))(ego)
    np.testing.assert_allclose(chunked, full, rtol=1e-5, atol=1e-6)


def test_propagation_gradients_match_a_dense_reference(small_graph):
    """The custom VJP of the BCSR product (mirrored weights) against autodiff through dense
    matmuls, for the embeddings and for non-symmetric edge weights; under `vmap` over two
    replicas with shared weights (one product on [N, 2d]) and with per-replica weights."""
    users, items, n_users, n_items = small_graph
    g = build_graph(users, items, n_users, n_items)
    rng = np.random.default_rng(2)
    ego = jnp.asarray(rng.normal(size=(2, g.n_nodes, 3)), jnp.float32)
    target = jnp.asarray(rng.normal(size=(2, g.n_nodes, 3)), jnp.float32)
    w = jnp.asarray(rng.uniform(0.1, 1.0, size=(2, *g.rows.shape)), jnp.float32)  # Â^T != Â

    def loss(w, x, t):
        return jnp.sum(propagate(g, x, 2, w) * t)

    def dense_loss(w, x, t):
        a = jnp.zeros((g.n_nodes, g.n_nodes)).at[g.rows, g.cols].add(w)
        return jnp.sum((x + a @ x + a @ (a @ x)) / 3 * t)

    def run(w, x, t):
        per_replica = jax.vmap(jax.grad(loss, (0, 1)))(w, x, t)
        shared = jax.vmap(jax.grad(loss, 1), in_axes=(None, 0, 0))(w[0], x, t)
        ref = jax.vmap(jax.grad(dense_loss, (0, 1)))(w, x, t)
        ref_shared = jax.vmap(jax.grad(dense_loss, 1), in_axes=(None, 0, 0))(w[0], x, t)
        return per_replica, shared, ref, ref_shared

    fn = jax.jit(run, compiler_options={"xla_backend_optimization_level": 0})
    (dw, dx), dx_shared, (ref_dw, ref_dx), ref_shared = fn(w, ego, target)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dw, ref_dw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx_shared, ref_shared, rtol=1e-5, atol=1e-6)
