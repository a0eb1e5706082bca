"""The CF sampler's fast paths against independent references: the bit-packed membership table
and the binary search against a Python set, the shuffle against `jax.random.permutation`, the
subset draws against `jax.random.randint`, and the negatives against whole-array redraws."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.methods.cf_scaling.sampler import (
    build_train_pairs,
    exact_permutation,
    is_positive,
    randint_at,
    sample_negatives,
    stable_argsort_u32,
)

N_USERS, N_ITEMS = 9, 70  # 70 items: three 32-bit words per row, the last one partial
FAST = {"xla_backend_optimization_level": 0}  # compile time dominates these small programs


@pytest.fixture(scope="module")
def pairs_and_set():
    rng = np.random.default_rng(0)
    key = np.unique(rng.integers(0, N_USERS * N_ITEMS, 260))
    users, items = key // N_ITEMS, key % N_ITEMS
    positive = set(zip(users.tolist(), items.tolist()))
    return users, items, positive


def test_membership_paths_match_a_set(pairs_and_set):
    users, items, positive = pairs_and_set
    dense = build_train_pairs(users, items, N_USERS, N_ITEMS)
    search = build_train_pairs(users, items, N_USERS, N_ITEMS, dense_max_bytes=0)
    assert dense.bits is not None and dense.bits.shape == (N_USERS, 3) and search.bits is None
    grid_u, grid_i = np.divmod(np.arange(N_USERS * N_ITEMS), N_ITEMS)
    want = np.array([(u, i) in positive for u, i in zip(grid_u.tolist(), grid_i.tolist())])
    both = jax.jit(
        lambda a, b, u, i: (is_positive(a, u, i), is_positive(b, u, i)), compiler_options=FAST
    )
    got_dense, got_search = both(dense, search, jnp.asarray(grid_u), jnp.asarray(grid_i))
    np.testing.assert_array_equal(got_dense, want)
    np.testing.assert_array_equal(got_search, want)


@pytest.mark.slow  # ~10 s of compiles under load; run before changing the sampler
def test_shuffle_is_jax_permutation_and_argsort_is_stable():
    ties = np.random.default_rng(1).integers(0, 7, 300).astype(np.uint32)  # runs of ~43
    keys = jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])

    @functools.partial(jax.jit, compiler_options=FAST)
    def run(keys, ties):
        # n = 2000 > 1625: two rounds of sort keys; n = 1: none
        ours = [jax.vmap(lambda k, n=n: exact_permutation(k, n))(keys) for n in (1, 2000)]
        ref = [jax.vmap(lambda k, n=n: jax.random.permutation(k, n))(keys) for n in (1, 2000)]
        return ours, ref, stable_argsort_u32(ties)

    ours, ref, order = run(keys, jnp.asarray(ties))
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(order, np.argsort(ties, kind="stable"))


def test_subset_draws_equal_the_whole_array():
    key = jax.random.fold_in(jax.random.PRNGKey(3), 7)
    index = jnp.asarray([0, 5, 999, 4000, 4095])
    spans = (1682, 2**31 - 5)  # 2**31 - 5 > 2**16: randint's multiplier wraps to 0

    @functools.partial(jax.jit, compiler_options=FAST)
    def run(key, index):
        whole = [jax.random.randint(key, (4096,), 0, m, jnp.int32)[index] for m in spans]
        return [randint_at(key, index, m) for m in spans], whole

    got, want = run(key, index)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # ~12 s of compiles under load; run before changing the sampler
def test_negatives_equal_whole_array_redraws_and_are_uniform(pairs_and_set):
    users, items, positive = pairs_and_set
    pairs = build_train_pairs(users, items, N_USERS, N_ITEMS)
    batch_users = jnp.asarray(np.repeat(np.arange(N_USERS), 2000))
    key, rounds = jax.random.PRNGKey(11), 30

    def reference(key, users):  # RecBole-style: redraw every hit from a whole fresh array
        k0, k_rounds = jax.random.split(key)
        neg = jax.random.randint(k0, users.shape, 0, N_ITEMS, jnp.int32)

        def redraw(r, neg):
            fresh = jax.random.randint(jax.random.fold_in(k_rounds, r), users.shape, 0, N_ITEMS)
            return jnp.where(is_positive(pairs, users, neg), fresh.astype(jnp.int32), neg)

        return jax.lax.fori_loop(0, rounds, redraw, neg)

    both = jax.jit(
        lambda k, u: (sample_negatives(k, pairs, u, rounds), reference(k, u)),
        compiler_options=FAST,
    )
    got, want = both(key, batch_users)
    np.testing.assert_array_equal(got, want)
    got, bu = np.asarray(got), np.asarray(batch_users)
    assert not any((u, j) in positive for u, j in zip(bu.tolist(), got.tolist()))
    for u in (0, 4):  # uniform over the user's non-positive items: a chi-square test
        allowed = [j for j in range(N_ITEMS) if (u, j) not in positive]
        counts = np.bincount(got[bu == u], minlength=N_ITEMS)[allowed]
        expected = counts.sum() / len(allowed)
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < len(allowed) + 6 * np.sqrt(2 * len(allowed)), (u, chi2)
