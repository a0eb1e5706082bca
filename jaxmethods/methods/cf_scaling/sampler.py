"""On-device epoch batches: a shuffled pass over the training pairs with uniform negatives.

A negative j for (u, i) is drawn uniformly from all items and redrawn while it is one of u's
training positives (RecBole's uniform sampler excludes them), for a fixed number of rounds so
shapes stay static; a user whose items fill most of the catalogue may keep a positive as a
negative with probability density^rounds. Membership is a binary search in u's sorted row of
the training CSR, so nothing of size users x items is ever built.
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class TrainPairs:
    """user, item: [E] int32 training pairs (deduplicated); indptr: [U + 1] int32 and
    items_by_user: [E] int32 the CSR of the same pairs with each user's items sorted."""

    user: jax.Array
    item: jax.Array
    indptr: jax.Array
    items_by_user: jax.Array
    n_items: int = flax.struct.field(pytree_node=False)
    search_steps: int = flax.struct.field(pytree_node=False)

    @property
    def n_pairs(self) -> int:
        return self.user.shape[0]


def build_train_pairs(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int
) -> TrainPairs:
    key = np.unique(np.asarray(users, np.int64) * n_items + np.asarray(items, np.int64))
    u, i = key // n_items, key % n_items  # sorted by user, then item
    counts = np.bincount(u, minlength=n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return TrainPairs(
        user=jnp.asarray(u, jnp.int32),
        item=jnp.asarray(i, jnp.int32),
        indptr=jnp.asarray(indptr, jnp.int32),
        items_by_user=jnp.asarray(i, jnp.int32),
        n_items=n_items,
        search_steps=max(1, math.ceil(math.log2(int(counts.max()) + 1)) + 1),
    )


def is_positive(pairs: TrainPairs, users: jax.Array, items: jax.Array) -> jax.Array:
    """[B] bool: whether (users[b], items[b]) is a training pair (vectorised binary search)."""
    start, end = pairs.indptr[users], pairs.indptr[users + 1]
    last = pairs.items_by_user.shape[0] - 1

    def body(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) // 2
        go_right = pairs.items_by_user[jnp.minimum(mid, last)] < items
        active = lo < hi
        return jnp.where(active & go_right, mid + 1, lo), jnp.where(active & ~go_right, mid, hi)

    lo, _ = jax.lax.fori_loop(0, pairs.search_steps, body, (start, end))
    return (lo < end) & (pairs.items_by_user[jnp.minimum(lo, last)] == items)


def sample_negatives(key: jax.Array, pairs: TrainPairs, users: jax.Array, rounds: int) -> jax.Array:
    """[B] uniform negatives for `users`, redrawn up to `rounds` times when positive."""
    k0, k_rounds = jax.random.split(key)
    neg = jax.random.randint(k0, users.shape, 0, pairs.n_items, jnp.int32)

    def redraw(r, neg):
        fresh = jax.random.randint(jax.random.fold_in(k_rounds, r), users.shape, 0, pairs.n_items)
        return jnp.where(is_positive(pairs, users, neg), fresh.astype(jnp.int32), neg)

    return jax.lax.fori_loop(0, rounds, redraw, neg)


def n_batches(pairs: TrainPairs, batch_size: int) -> int:
    return -(-pairs.n_pairs // batch_size)


def epoch_batches(
    key: jax.Array,
    pairs: TrainPairs,
    *,
    batch_size: int,
    neg_rounds: int,
    first_step: jax.Array,
) -> dict[str, jax.Array]:
    """One epoch as [n_batches, B] arrays: user, pos, neg, mask (the last batch is padded),
    step ([n_batches] global step numbers starting at `first_step`)."""
    nb = n_batches(pairs, batch_size)
    total = nb * batch_size
    k_perm, k_neg = jax.random.split(key)
    order = jax.random.permutation(k_perm, pairs.n_pairs)
    order = jnp.concatenate([order, jnp.zeros(total - pairs.n_pairs, order.dtype)])
    users, pos = pairs.user[order], pairs.item[order]
    neg = sample_negatives(k_neg, pairs, users, neg_rounds)
    mask = jnp.arange(total) < pairs.n_pairs
    shape = (nb, batch_size)
    return {
        "user": users.reshape(shape),
        "pos": pos.reshape(shape),
        "neg": neg.reshape(shape),
        "mask": mask.reshape(shape),
        "step": first_step + jnp.arange(nb, dtype=jnp.int32),
    }
