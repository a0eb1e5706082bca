"""Matrix factorisation scored by a dot product (BPR-MF, Rendle et al. 2009).

Parameters are a plain dict `{"user_emb": [U, D], "item_emb": [I, D]}` (see
`jaxmethods/models/cf/__init__.py` for why the CF models are pure pytrees).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmethods.models.cf.init import Size, xavier_normal, xavier_uniform

INITS = {"xavier_normal": xavier_normal, "xavier_uniform": xavier_uniform}


def init_embeddings(
    key: jax.Array,
    *,
    n_users: int,
    n_items: int,
    dim: Size,
    padded_dim: int | None = None,
    init: str = "xavier_normal",
) -> dict[str, jax.Array]:
    """User and item tables of size `dim` (int or traced), zero-padded to `padded_dim` columns.

    init: "xavier_normal" (RecBole BPR) or "xavier_uniform" (RecBole LightGCN / SGL).
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {sorted(INITS)}, got {init!r}")
    padded_dim = int(dim) if padded_dim is None else padded_dim
    ku, ki = jax.random.split(key)
    fn = INITS[init]
    return {
        "user_emb": fn(ku, n_users, dim, padded_dim),
        "item_emb": fn(ki, n_items, dim, padded_dim),
    }


def pair_scores(
    user_repr: jax.Array, item_repr: jax.Array, users: jax.Array, items: jax.Array
) -> jax.Array:
    """s(u, i) = e_u · e_i for [B] user and item ids -> [B].

    Written as a batched dot (`einsum`), not `sum(e_u * e_i, -1)`: XLA:CPU runs the latter's
    multiply-reduce as a slow fusion (a BPR epoch 2.3x slower, docs/performance.md).
    """
    return jnp.einsum("bd,bd->b", user_repr[users], item_repr[items])


def bpr_scores(
    user_repr: jax.Array, item_repr: jax.Array, users: jax.Array, pos: jax.Array, neg: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(s(u, pos), s(u, neg)), each [B], for [B] users, positives and negatives: one gather
    of the users' rows and one of the [B, 2] items (so one scatter each in the backward)."""
    scores = jnp.einsum("bd,bkd->bk", user_repr[users], item_repr[jnp.stack([pos, neg], axis=1)])
    return scores[:, 0], scores[:, 1]


def score_all_items(user_repr: jax.Array, item_repr: jax.Array, users: jax.Array) -> jax.Array:
    """[C] user ids -> [C, I] scores against every item (full-sort ranking)."""
    return user_repr[users] @ item_repr.T
