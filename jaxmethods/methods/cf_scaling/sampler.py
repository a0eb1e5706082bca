"""On-device epoch batches: a shuffled pass over the training pairs with uniform negatives.

A negative j for (u, i) is drawn uniformly from all items and redrawn while it is one of u's
training positives (RecBole's uniform sampler excludes them), for at most a fixed number of
rounds; a user whose items fill most of the catalogue may keep a positive as a negative with
probability density^rounds. The redraw loop stops as soon as no negative is a positive, which
returns exactly what running every round would (a round without a hit changes nothing).

Membership is one gather into a bit-packed dense users x items table when that table fits
`DENSE_MEMBERSHIP_MAX_BYTES` (ML-100K: 943 x 1,682 bits, 200 KB), else a binary search in u's
sorted row of the training CSR (nothing of size users x items is built). Both answer the same
question, so the negatives are the same either way.

The shuffle is `exact_permutation`: bit for bit `jax.random.permutation(key, n)` (same random
keys, same stable order), computed with a keys-only sort, which XLA:CPU runs several times
faster than the key-value sort `jax.random.permutation` uses (docs/performance.md).
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry2x32_p

# Largest bit-packed users x items membership table (bytes) built for the negative sampler;
# larger catalogues use the binary search over the CSR (4 bytes per training pair).
DENSE_MEMBERSHIP_MAX_BYTES = 1 << 25
# A redraw round draws its hits in chunks of ceil(B / REDRAW_CHUNK_DIV) positions (8 and 16
# measured alike on ML-100K sizes, 64 slower: one O(B) compaction per chunk).
REDRAW_CHUNK_DIV = 8


@flax.struct.dataclass
class TrainPairs:
    """user, item: [E] int32 training pairs (deduplicated); indptr: [U + 1] int32 and
    items_by_user: [E] int32 the CSR of the same pairs with each user's items sorted;
    bits: [U, ceil(I / 32)] uint32, bit i % 32 of word i // 32 of row u set iff (u, i) is a
    pair, or None when that table is over the size threshold."""

    user: jax.Array
    item: jax.Array
    indptr: jax.Array
    items_by_user: jax.Array
    bits: jax.Array | None
    n_items: int = flax.struct.field(pytree_node=False)
    search_steps: int = flax.struct.field(pytree_node=False)

    @property
    def n_pairs(self) -> int:
        return self.user.shape[0]


def membership_bits(u: np.ndarray, i: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    """[U, ceil(I / 32)] uint32 bit-packed table of the (u, i) pairs (NumPy, on the host)."""
    words = np.zeros((n_users, -(-n_items // 32)), np.uint32)
    np.bitwise_or.at(words, (u, i >> 5), np.left_shift(np.uint32(1), (i & 31).astype(np.uint32)))
    return words


def build_train_pairs(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    dense_max_bytes: int = DENSE_MEMBERSHIP_MAX_BYTES,
) -> TrainPairs:
    """The deduplicated pairs, their CSR, and the bit table when U * ceil(I / 32) * 4 bytes is
    at most `dense_max_bytes` (0: always the binary search)."""
    key = np.unique(np.asarray(users, np.int64) * n_items + np.asarray(items, np.int64))
    u, i = key // n_items, key % n_items  # sorted by user, then item
    counts = np.bincount(u, minlength=n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    dense = n_users * -(-n_items // 32) * 4 <= dense_max_bytes
    return TrainPairs(
        user=jnp.asarray(u, jnp.int32),
        item=jnp.asarray(i, jnp.int32),
        indptr=jnp.asarray(indptr, jnp.int32),
        items_by_user=jnp.asarray(i, jnp.int32),
        bits=jnp.asarray(membership_bits(u, i, n_users, n_items)) if dense else None,
        n_items=n_items,
        search_steps=max(1, math.ceil(math.log2(int(counts.max(initial=0)) + 1)) + 1),
    )


def is_positive(pairs: TrainPairs, users: jax.Array, items: jax.Array) -> jax.Array:
    """[B] bool: whether (users[b], items[b]) is a training pair (one gather into the bit
    table, or a vectorised binary search in the CSR without one)."""
    if pairs.bits is not None:
        items = items.astype(jnp.uint32)
        words = pairs.bits[users, (items >> 5).astype(jnp.int32)]
        return ((words >> (items & 31)) & 1).astype(bool)
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


def _threefry_raw_key(key: jax.Array) -> jax.Array | None:
    """The uint32[2] data of a threefry key, or None for another PRNG (or when JAX's random
    bits are not `jax_threefry_partitionable`, where bit j is not a function of j alone)."""
    if not jax.config.jax_threefry_partitionable:
        return None
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if "threefry" not in str(jax.random.key_impl(key)):
            return None
        return jax.random.key_data(key)
    if jax.config.jax_default_prng_impl != "threefry2x32" or key.shape != (2,):
        return None
    return key


def randint_at(key: jax.Array, index: jax.Array, maxval: int) -> jax.Array | None:
    """`jax.random.randint(key, (n,), 0, maxval, int32)[index]` for any n > max(index),
    computed for the [K] positions `index` only; None when `key` is not a partitionable
    threefry key (the caller then draws the whole array).

    JAX's partitionable threefry makes bit j of a draw a function of (key, j) alone; randint
    takes two such 32-bit draws from `split(key)` and reduces them modulo the span.
    """
    keys = jax.random.split(key)
    data = [_threefry_raw_key(k) for k in keys]
    if data[0] is None:
        return None
    counts = index.astype(jnp.uint32)

    def bits(k):
        b1, b2 = threefry2x32_p.bind(k[0], k[1], jnp.zeros_like(counts), counts)
        return b1 ^ b2

    span = jnp.uint32(maxval)
    mult = jnp.uint32(1 << 16) % span
    mult = (mult * mult) % span  # uint32 arithmetic, wrapping exactly as randint's
    offset = ((bits(data[0]) % span) * mult + bits(data[1]) % span) % span
    return offset.astype(jnp.int32)


def sample_negatives(key: jax.Array, pairs: TrainPairs, users: jax.Array, rounds: int) -> jax.Array:
    """[B] uniform negatives for `users`, redrawn up to `rounds` times when positive.

    Round r redraws every hit from `randint(fold_in(k_rounds, r), [B])`; the loop ends after
    `rounds` rounds or at the first round without a hit (the rounds left would change nothing).
    A round draws only its hits' entries of that array (`randint_at`), a chunk of at most
    B / 8 positions at a time: after the first draw about density x B entries are hits.
    """
    n = users.shape[0]
    k0, k_rounds = jax.random.split(key)
    neg = jax.random.randint(k0, users.shape, 0, pairs.n_items, jnp.int32)
    chunk = max(1, -(-n // REDRAW_CHUNK_DIV))

    def more(carry):
        r, _, hit = carry
        return (r < rounds) & jnp.any(hit)

    def redraw_all(carry):
        r, neg, hit = carry
        fresh = jax.random.randint(jax.random.fold_in(k_rounds, r), users.shape, 0, pairs.n_items)
        neg = jnp.where(hit, fresh.astype(jnp.int32), neg)
        return r + 1, neg, is_positive(pairs, users, neg)

    def redraw_hits(carry):
        r, neg, hit = carry
        key_r = jax.random.fold_in(k_rounds, r)

        def one_chunk(c):
            neg, pending, new_hit = c
            (index,) = jnp.nonzero(pending, size=chunk, fill_value=n)
            safe = jnp.minimum(index, n - 1)
            fresh = randint_at(key_r, safe, pairs.n_items)
            neg = neg.at[index].set(fresh, mode="drop")
            found = is_positive(pairs, users[safe], fresh)
            new_hit = new_hit.at[index].set(found, mode="drop")
            return neg, pending.at[index].set(False, mode="drop"), new_hit

        neg, _, hit = jax.lax.while_loop(
            lambda c: jnp.any(c[1]), one_chunk, (neg, hit, jnp.zeros_like(hit))
        )
        return r + 1, neg, hit

    redraw = redraw_all if _threefry_raw_key(k_rounds) is None else redraw_hits
    _, neg, _ = jax.lax.while_loop(more, redraw, (0, neg, is_positive(pairs, users, neg)))
    return neg


def stable_argsort_u32(keys: jax.Array) -> jax.Array:
    """[n] uint32 -> [n] int32 indices that sort `keys` stably (`jnp.argsort(stable=True)`).

    One keys-only sort, then each key's first position in the sorted keys (binary search);
    equal keys (rare for random 32-bit keys) take the positions of their run in index order,
    one per run per pass of a `while_loop` (as many passes as the longest run).
    """
    n = keys.shape[0]
    idx = jnp.arange(n, dtype=jnp.int32)
    sorted_keys = jax.lax.sort(keys)
    lo = jnp.searchsorted(sorted_keys, keys, side="left").astype(jnp.int32)
    nxt = jnp.minimum(lo + 1, n - 1)
    tied = (lo + 1 < n) & (sorted_keys[nxt] == keys)

    def more(carry):
        return jnp.any(carry[2])

    def assign(carry):
        t, pos, pending = carry
        first = jnp.full((n,), n, jnp.int32).at[lo].min(jnp.where(pending, idx, n))
        pick = pending & (first[lo] == idx)
        return t + 1, jnp.where(pick, lo + t, pos), pending & ~pick

    _, pos, _ = jax.lax.while_loop(more, assign, (jnp.int32(0), lo, tied))
    return jnp.zeros((n,), jnp.int32).at[pos].set(idx, unique_indices=True)


def exact_permutation(key: jax.Array, n: int) -> jax.Array:
    """[n] int32: exactly `jax.random.permutation(key, n)` (JAX's sort-based shuffle: the same
    rounds of random 32-bit keys, each applied as a stable sort), via `stable_argsort_u32`."""
    rounds = math.ceil(3 * math.log(max(1, n)) / math.log(np.iinfo(np.uint32).max))
    x = jnp.arange(n, dtype=jnp.int32)
    for _ in range(rounds):
        key, subkey = jax.random.split(key)
        x = x[stable_argsort_u32(jax.random.bits(subkey, (n,), jnp.uint32))]
    return x


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
    order = exact_permutation(k_perm, pairs.n_pairs)
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
