"""Ranking metrics against NumPy references and hand-checked toy cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.eval.ranking import build_full_sort_data, full_sort_metrics, hit_ndcg_at_k


def _np_hit_ndcg(rank, k):
    hit = (rank >= 0) & (rank < k)
    ndcg = np.where(hit, 1.0 / np.log2(np.maximum(rank, 0) + 2.0), 0.0)
    return hit.astype(np.float64), ndcg


def test_hit_ndcg_toy_values():
    out = hit_ndcg_at_k(np.array([0, 1, 5, -1]), ks=(1, 2, 10), reduce=False)
    np.testing.assert_allclose(out["hr@1"], [1, 0, 0, 0])
    np.testing.assert_allclose(out["hr@2"], [1, 1, 0, 0])
    np.testing.assert_allclose(
        out["ndcg@10"], [1.0, 1 / np.log2(3), 1 / np.log2(7), 0.0], atol=1e-6
    )


def test_hit_ndcg_matches_numpy_random():
    rng = np.random.default_rng(0)
    rank = rng.integers(-1, 40, size=257)
    mask = rng.random(257) < 0.7
    out = hit_ndcg_at_k(rank, ks=(5, 10, 20), mask=mask)
    for k in (5, 10, 20):
        hit, ndcg = _np_hit_ndcg(rank, k)
        np.testing.assert_allclose(out[f"hr@{k}"], hit[mask].mean(), rtol=1e-5)
        np.testing.assert_allclose(out[f"ndcg@{k}"], ndcg[mask].mean(), rtol=1e-5)
        unmasked = hit_ndcg_at_k(rank, ks=(k,))
        np.testing.assert_allclose(unmasked[f"ndcg@{k}"], ndcg.mean(), rtol=1e-5)


def test_hit_ndcg_rejects_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        hit_ndcg_at_k(np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match="positive"):
        hit_ndcg_at_k(np.zeros(3, np.int32), ks=(0,))


# ---------------------------------------------------------------- full-sort Recall / NDCG


def _np_full_sort(scores, seen, targets, k):
    """Per-user RecBole Recall@K / NDCG@K by explicit sorting (users without targets skipped)."""
    recalls, ndcgs = [], []
    for u in range(scores.shape[0]):
        t = targets.get(u, set())
        if not t:
            continue
        s = scores[u].astype(np.float64).copy()
        s[list(seen.get(u, set()))] = -np.inf
        top = np.argsort(-s, kind="stable")[:k]
        hits = np.array([i in t for i in top], float)
        recalls.append(hits.sum() / len(t))
        idcg = sum(1 / np.log2(r + 2) for r in range(min(len(t), k)))
        ndcgs.append(sum(h / np.log2(r + 2) for r, h in enumerate(hits)) / idcg)
    return np.mean(recalls), np.mean(ndcgs)


def _pairs(d):
    u = [x for x, items in d.items() for _ in items]
    i = [y for items in d.values() for y in items]
    return np.array(u, np.int64), np.array(i, np.int64)


def test_full_sort_matches_numpy_reference():
    rng = np.random.default_rng(0)
    n_users, n_items = 23, 40
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    seen = {u: set(rng.choice(n_items, rng.integers(0, 8), replace=False)) for u in range(n_users)}
    targets = {}
    for u in range(n_users):
        if u % 5 == 3:
            continue  # users without targets are skipped
        free = [i for i in range(n_items) if i not in seen[u]]
        targets[u] = set(rng.choice(free, rng.integers(1, 6), replace=False))
    data = build_full_sort_data(
        n_users=n_users,
        n_items=n_items,
        seen_users=_pairs(seen)[0],
        seen_items=_pairs(seen)[1],
        target_users=_pairs(targets)[0],
        target_items=_pairs(targets)[1],
        chunk_size=4,
    )
    assert data.n_eval_users == len(targets)
    table = jnp.asarray(scores)
    out = jax.jit(lambda: full_sort_metrics(lambda u: table[u], data, ks=(5, 10)))()
    for k in (5, 10):
        recall, ndcg = _np_full_sort(scores, seen, targets, k)
        np.testing.assert_allclose(out[f"recall@{k}"], recall, rtol=1e-5)
        np.testing.assert_allclose(out[f"ndcg@{k}"], ndcg, rtol=1e-5)


def test_full_sort_toy_ranks_and_masking():
    # One relevant item at rank 0 -> NDCG 1; at rank 1 -> 1/log2(3). A masked training item with
    # the highest score never enters the list.
    scores = jnp.asarray([[5.0, 4.0, 3.0, 2.0], [9.0, 4.0, 3.0, 1.0]])
    data = build_full_sort_data(
        n_users=2,
        n_items=4,
        seen_users=np.array([1]),
        seen_items=np.array([0]),
        target_users=np.array([0, 1]),
        target_items=np.array([0, 2]),
        chunk_size=8,
    )
    per_user = []
    for u in range(2):
        one = build_full_sort_data(
            n_users=2,
            n_items=4,
            seen_users=np.array([1]),
            seen_items=np.array([0]),
            target_users=np.array([u]),
            target_items=np.array([[0, 2][u]]),
            chunk_size=8,
        )
        per_user.append(float(full_sort_metrics(lambda x: scores[x], one, ks=(2,))["ndcg@2"]))
    np.testing.assert_allclose(per_user, [1.0, 1.0 / np.log2(3.0)], rtol=1e-6)
    out = full_sort_metrics(lambda x: scores[x], data, ks=(1,))
    np.testing.assert_allclose(out["recall@1"], 0.5)  # user 1's top item 0 is masked
    # K beyond the catalogue ranks every unmasked item: every target is found.
    np.testing.assert_allclose(
        full_sort_metrics(lambda x: scores[x], data, ks=(5,))["recall@5"], 1.0
    )
