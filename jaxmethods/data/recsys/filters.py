"""Row filters: duplicate removal, minimum rating, iterative k-core."""

from __future__ import annotations

import numpy as np

from jaxmethods.data.recsys.interactions import Interactions


def drop_duplicates(data: Interactions) -> Interactions:
    """Keeps the first occurrence (file order) of every (user, item) pair."""
    key = data.user.astype(np.int64) * data.n_items + data.item
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(len(data), bool)
    keep[first] = True
    return data.select(keep)


def k_core(data: Interactions, *, user_k: int = 0, item_k: int = 0) -> Interactions:
    """Iteratively removes users with < user_k and items with < item_k interactions.

    Repeats until every remaining user and item meets its threshold (RecBole's
    `user_inter_num_interval` / `item_inter_num_interval` lower bounds, applied the same
    iterative way). Returns the re-indexed (compacted) table.
    """
    if user_k < 0 or item_k < 0:
        raise ValueError(f"k_core: thresholds must be >= 0, got user_k={user_k}, item_k={item_k}")
    keep = np.ones(len(data), bool)
    while True:
        user_deg = np.bincount(data.user[keep], minlength=data.n_users)
        item_deg = np.bincount(data.item[keep], minlength=data.n_items)
        bad = keep & ((user_deg[data.user] < user_k) | (item_deg[data.item] < item_k))
        if not bad.any():
            break
        keep &= ~bad
    if not keep.any():
        raise ValueError(
            f"k_core(user_k={user_k}, item_k={item_k}) removed every interaction "
            f"of {len(data)} rows"
        )
    return data.select(keep).compact()
