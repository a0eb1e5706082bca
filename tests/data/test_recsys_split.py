"""Per-user split (RecBole semantics), k-core filter, duplicates and the synthetic generator."""

import os

import numpy as np
import pytest

from jaxmethods.data.recsys import (
    CFDataConfig,
    Interactions,
    drop_duplicates,
    k_core,
    load_cf_split,
    planted_interactions,
    split_counts,
    split_per_user,
)


def _recbole_split_ids(tot, ratios):
    # Independent transcription of RecBole's Dataset._calcu_split_ids (scalar, pure Python).
    cnt = [int(ratios[i] * tot) for i in range(len(ratios))]
    cnt[0] = tot - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * tot < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def _table(user, item, ts=None):
    user, item = np.asarray(user, np.int32), np.asarray(item, np.int32)
    n_u, n_i = int(user.max()) + 1, int(item.max()) + 1
    return Interactions(
        user=user,
        item=item,
        timestamps=None if ts is None else np.asarray(ts, np.float64),
        n_users=n_u,
        n_items=n_i,
        user_tokens=np.arange(n_u).astype(str),
        item_tokens=np.arange(n_i).astype(str),
    )


def test_split_counts_match_recbole():
    n = np.arange(0, 60)
    for ratios in ([0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.6, 0.4]):
        got = split_counts(n, ratios)
        want = np.array([_recbole_split_ids(int(t), ratios) for t in n])
        np.testing.assert_array_equal(got, want)


def test_random_split_is_a_seeded_partition_per_user():
    rng = np.random.default_rng(0)
    user = np.repeat(np.arange(30), rng.integers(1, 25, 30))
    item = np.concatenate([rng.permutation(40)[: (user == u).sum()] for u in range(30)])
    data = _table(user, item)
    parts = split_per_user(data, seed=7)
    again = split_per_user(data, seed=7)
    other = split_per_user(data, seed=8)
    for a, b in zip(parts, again):
        np.testing.assert_array_equal(a.item, b.item)
    assert any(not np.array_equal(a.item, b.item) for a, b in zip(parts, other))
    pairs = [set(zip(p.user.tolist(), p.item.tolist())) for p in parts]
    assert sum(map(len, pairs)) == len(data)
    assert set.union(*pairs) == set(zip(user.tolist(), item.tolist()))
    counts = np.bincount(user, minlength=30)
    sizes = np.stack([np.bincount(p.user, minlength=30) for p in parts], axis=1)
    np.testing.assert_array_equal(sizes, split_counts(counts, [0.8, 0.1, 0.1]))


def test_time_split_puts_latest_rows_in_test():
    user = [0] * 10 + [1] * 10
    ts = list(range(10))[::-1] + list(range(10))
    data = _table(user, list(range(10)) + list(range(10)), ts)
    train, valid, test = split_per_user(data, order="time")
    for u in (0, 1):
        t_train = data.timestamps[(data.user == u)][
            np.isin(data.item[data.user == u], train.item[train.user == u])
        ]
        t_test = test.timestamps[test.user == u]
        assert t_train.max() < valid.timestamps[valid.user == u].min() <= t_test.min()
    with pytest.raises(ValueError, match="timestamps"):
        split_per_user(_table([0, 0], [0, 1]), order="time")


def test_k_core_is_iterative():
    # user 2 has 1 row -> removed; then item 3 falls to 1 row -> removed; then user 1 to 1 row.
    user = [0, 0, 0, 1, 1, 2, 3, 3]
    item = [0, 1, 2, 0, 3, 3, 1, 2]
    out = k_core(_table(user, item), user_k=2, item_k=2)
    kept = set(zip(out.user_tokens[out.user].tolist(), out.item_tokens[out.item].tolist()))
    assert kept == {("0", "1"), ("0", "2"), ("3", "1"), ("3", "2")}
    assert out.n_users == 2 and out.n_items == 2
    with pytest.raises(ValueError, match="removed every interaction"):
        k_core(_table(user, item), user_k=10)


def test_drop_duplicates_keeps_first():
    out = drop_duplicates(_table([0, 0, 1, 0], [1, 1, 1, 2], [5, 6, 7, 8]))
    np.testing.assert_array_equal(out.timestamps, [5, 7, 8])


def test_planted_structure_and_noise():
    clean = planted_interactions(n_users=200, n_items=120, rank=4, seed=1)
    noisy = planted_interactions(n_users=200, n_items=120, rank=4, noise_frac=0.5, seed=1)
    again = planted_interactions(n_users=200, n_items=120, rank=4, seed=1)
    np.testing.assert_array_equal(clean.item, again.item)

    def spectral_share(d, k=4):
        # Planted rank-k structure: mass of the top-k singular values of the centred matrix.
        m = np.zeros((d.n_users, d.n_items))
        m[d.user, d.item] = 1
        s = np.linalg.svd(m - m.mean(0), compute_uv=False)
        return s[:k].sum() / s.sum()

    assert spectral_share(clean) > 1.3 * spectral_share(noisy)
    # Noise replaces noise_frac of the rows by uniform items (same seed, same clean draws); a
    # uniform item hits one of the user's 20 clean items with probability 20 / 120.
    clean_pairs = set(zip(clean.user.tolist(), clean.item.tolist()))
    kept = np.mean([p in clean_pairs for p in zip(noisy.user.tolist(), noisy.item.tolist())])
    assert kept == pytest.approx(0.5 + 0.5 * 20 / 120, abs=0.04)
    with pytest.raises(ValueError, match="noise_frac"):
        planted_interactions(n_users=5, n_items=5, rank=1, interactions_per_user=2, noise_frac=1.0)


def test_load_cf_split_synthetic():
    cfg = CFDataConfig(n_users=50, n_items=60, interactions_per_user=10)
    split = load_cf_split(cfg)
    assert split.summary()["n_train"] + len(split.valid) + len(split.test) == 50 * 10
    assert set(np.unique(split.test.user)) <= set(range(split.n_users))


def test_training_noise_on_a_real_split():
    """Noise goes into the training split only: unobserved, distinct, uniform pairs making up
    noise_frac of the noisy training split; valid and test are untouched."""
    from jaxmethods.data.recsys.noise import add_training_noise, noise_count

    path = os.path.join(os.path.dirname(__file__), "recsys")
    split = load_cf_split(CFDataConfig(source="atomic", path=path, name="ml-tiny"))
    big = load_cf_split(CFDataConfig(n_users=200, n_items=150, interactions_per_user=10))
    for s, frac in ((split, 0.2), (big, 0.25)):
        noisy = add_training_noise(s, frac, seed=3)
        n_add = len(noisy.train) - len(s.train)
        assert n_add == noise_count(len(s.train), frac) == round(frac / (1 - frac) * len(s.train))
        assert n_add / len(noisy.train) == pytest.approx(frac, abs=1.0 / len(noisy.train))
        np.testing.assert_array_equal(noisy.train.user[: len(s.train)], s.train.user)
        assert noisy.valid is s.valid and noisy.test is s.test
        observed = {
            (u, i)
            for part in (s.train, s.valid, s.test)
            for u, i in zip(part.user.tolist(), part.item.tolist())
        }
        added = list(
            zip(
                noisy.train.user[len(s.train) :].tolist(), noisy.train.item[len(s.train) :].tolist()
            )
        )
        assert len(set(added)) == len(added) and not set(added) & observed
        again = add_training_noise(s, frac, seed=3)
        np.testing.assert_array_equal(again.train.item, noisy.train.item)
    # Uniform over the unobserved cells: item i is drawn in proportion to the users who have
    # not observed it (chi-square on the larger split).
    from scipy.stats import chisquare

    noisy = add_training_noise(big, 0.5, seed=0)
    counts = np.bincount(noisy.train.item[len(big.train) :], minlength=big.n_items)
    every = np.concatenate([p.item for p in (big.train, big.valid, big.test)])
    free = big.n_users - np.bincount(every, minlength=big.n_items)
    assert chisquare(counts, free / free.sum() * counts.sum()).pvalue > 1e-3
    assert add_training_noise(split, 0.0, seed=0) is split
    with pytest.raises(ValueError, match="noise_frac"):
        add_training_noise(split, 0.999, seed=0)
