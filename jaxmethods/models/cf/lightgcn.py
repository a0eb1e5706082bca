"""LightGCN (He et al. 2020): MF tables smoothed by K layers of normalised graph propagation.

Final representations E = 1/(K+1) Σ_k Â^k E^(0); scores are dot products of them. K = 0 is
plain MF. Parameters are the same `{"user_emb", "item_emb"}` dict as BPR-MF (xavier-uniform init
as in RecBole).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmethods.models.cf.bpr_mf import init_embeddings
from jaxmethods.models.cf.graph import BipartiteGraph, propagate
from jaxmethods.models.cf.init import Size


def init_lightgcn(
    key: jax.Array, *, n_users: int, n_items: int, dim: Size, padded_dim: int | None = None
) -> dict[str, jax.Array]:
    return init_embeddings(
        key, n_users=n_users, n_items=n_items, dim=dim, padded_dim=padded_dim, init="xavier_uniform"
    )


def lightgcn_representations(
    params: dict[str, jax.Array],
    graph: BipartiteGraph,
    n_layers: int,
    weights: jax.Array | None = None,
    *,
    edge_chunk: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """-> (users [U, D], items [I, D]) after propagation over Â (or a view's `weights`)."""
    ego = jnp.concatenate([params["user_emb"], params["item_emb"]], axis=0)
    out = propagate(graph, ego, n_layers, weights, edge_chunk=edge_chunk)
    return out[: graph.n_users], out[graph.n_users :]
