"""SGL (Wu et al. 2021) with edge dropout: LightGCN plus a contrastive loss between two views.

Each epoch draws two edge-dropout subgraphs (each keeps int(E·(1-ratio)) interactions and is
re-normalised); the batch's users and positive items are embedded in both views and pulled
together with InfoNCE whose negatives are every user (every item) of the second view, as SGL's
eq. 10 and RecBole's `calc_ssl_loss`: a [B, U] and a [B, I] similarity block per step.
"""

from __future__ import annotations

import jax

from jaxmethods.losses.cf import info_nce
from jaxmethods.models.cf.graph import BipartiteGraph, edge_dropout_weights
from jaxmethods.models.cf.lightgcn import lightgcn_representations


def sample_views(key: jax.Array, graph: BipartiteGraph, ratio: float) -> jax.Array:
    """Two edge-dropout views -> [2, 2E] edge weights (drawn once per epoch)."""
    k1, k2 = jax.random.split(key)
    return jax.numpy.stack(
        [edge_dropout_weights(k1, graph, ratio), edge_dropout_weights(k2, graph, ratio)]
    )


def contrastive_loss(
    params: dict[str, jax.Array],
    graph: BipartiteGraph,
    views: jax.Array,
    users: jax.Array,
    items: jax.Array,
    *,
    n_layers: int,
    temperature: float,
    mask: jax.Array | None = None,
    reduction: str = "sum",
    edge_chunk: int = 0,
) -> jax.Array:
    """InfoNCE_user + InfoNCE_item between the two views (SGL eq. 10, summed as in RecBole).

    L = Σ_b ℓ(u_b; U) + Σ_b ℓ(i_b; I), where ℓ(n; N) = -log softmax over the candidates N of
    view 2 of z1_n · z2_c / τ at c = n (z the L2-normalised view embeddings).

    Args:
      views: [2, 2E] from `sample_views`.
      users, items: [B] the batch users and their positive items.
    """
    u1, i1 = lightgcn_representations(params, graph, n_layers, views[0], edge_chunk=edge_chunk)
    u2, i2 = lightgcn_representations(params, graph, n_layers, views[1], edge_chunk=edge_chunk)
    kw = {"temperature": temperature, "mask": mask, "reduction": reduction}
    return info_nce(u1[users], u2, users, **kw) + info_nce(i1[items], i2, items, **kw)
