"""Per-user train/valid/test splits with RecBole's semantics.

RecBole's default `eval_args` is `{split: {RS: [0.8, 0.1, 0.1]}, group_by: user, order: RO}`:
shuffle the whole table (order RO; order TO sorts it by time instead), group rows by user
keeping that order, and cut each user's rows by `Dataset._calcu_split_ids`:
  cnt_k = int(r_k * n) for k >= 1, cnt_0 = n - Σ_{k>=1} cnt_k, then, walking from the last part
  backwards while cnt_0 > 1, a part with 0 < r_k * n < 1 takes one row from the training part
  (so a user with few rows still gets a test row when possible).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxmethods.data.recsys.interactions import Interactions


def split_counts(n: np.ndarray, ratios: Sequence[float]) -> np.ndarray:
    """[U] row counts -> [U, len(ratios)] part sizes (RecBole `_calcu_split_ids`)."""
    ratios = np.asarray(ratios, np.float64)
    if ratios.ndim != 1 or len(ratios) < 2 or np.any(ratios < 0) or ratios.sum() <= 0:
        raise ValueError(f"split ratios must be >= 2 non-negative numbers, got {list(ratios)}")
    ratios = ratios / ratios.sum()
    n = np.asarray(n, np.int64)
    scaled = ratios[None, :] * n[:, None].astype(np.float64)
    cnt = np.floor(scaled).astype(np.int64)
    cnt[:, 0] = n - cnt[:, 1:].sum(axis=1)
    active = np.ones(len(n), bool)
    for k in range(len(ratios) - 1, 0, -1):
        active &= cnt[:, 0] > 1
        bump = active & (scaled[:, k] > 0) & (scaled[:, k] < 1)
        cnt[bump, k] += 1
        cnt[bump, 0] -= 1
    return cnt


def split_per_user(
    data: Interactions,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    order: str = "random",
    seed: int = 2020,
) -> list[Interactions]:
    """Splits every user's rows into len(ratios) parts (train, valid, test by default).

    order="random" shuffles with `seed` (RecBole RO; RecBole's default seed is 2020);
    order="time" sorts by timestamp, oldest rows going to the first part (RecBole TO), with
    ties kept in file order.
    """
    if order == "random":
        perm = np.random.default_rng(seed).permutation(len(data))
    elif order == "time":
        if data.timestamps is None:
            raise ValueError("split order='time' needs timestamps, but the data has none")
        perm = np.argsort(data.timestamps, kind="stable")
    else:
        raise ValueError(f"split order must be 'random' or 'time', got {order!r}")
    users = data.user[perm]
    grouped = perm[np.argsort(users, kind="stable")]  # rows grouped by user, order kept
    counts = np.bincount(data.user, minlength=data.n_users)
    parts = split_counts(counts, ratios)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    user_of_row = data.user[grouped]
    pos_in_user = np.arange(len(grouped)) - starts[user_of_row]
    bounds = np.cumsum(parts, axis=1)[user_of_row]  # [N, n_parts]
    part_of_row = np.sum(pos_in_user[:, None] >= bounds, axis=1)
    out = []
    for k in range(len(ratios)):
        keep = np.zeros(len(data), bool)
        keep[grouped[part_of_row == k]] = True
        out.append(data.select(keep))
    return out
