"""Synthetic implicit feedback with a planted low-rank structure and injected noise.

Users and items get latent vectors x_u, y_i ~ N(0, I_rank). A user's interactions are drawn
without replacement from p(i | u) ∝ pop(i) · exp(sharpness · x_u·y_i / sqrt(rank)), with Zipf item
popularity pop(i) ∝ rank(i)^-popularity_exponent: the log-odds matrix has rank `rank` + 1, and
`sharpness` sets how much of a user's choice it explains. A fraction `noise_frac` of all rows is
then replaced by uniformly random items ("flipped", noisy interactions carrying no structure),
the noise knob of the scaling study's double-peak explanation.
"""

from __future__ import annotations

import numpy as np

from jaxmethods.data.recsys.interactions import Interactions


def planted_interactions(
    *,
    n_users: int,
    n_items: int,
    rank: int = 16,
    interactions_per_user: int = 20,
    sharpness: float = 2.0,
    popularity_exponent: float = 0.8,
    noise_frac: float = 0.0,
    seed: int = 0,
) -> Interactions:
    """Returns deduplicated interactions with per-user timestamps 0, 1, 2, ... (draw order).

    Noisy rows keep the timestamps of the rows they replace; a noisy item that duplicates one of
    the user's rows is dropped by deduplication.
    """
    if not 0 <= noise_frac < 1:
        raise ValueError(f"noise_frac must be in [0, 1), got {noise_frac}")
    if not 0 < interactions_per_user < n_items:
        raise ValueError(
            f"interactions_per_user must be in (0, n_items={n_items}), got {interactions_per_user}"
        )
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_users, rank))
    y = rng.normal(size=(n_items, rank))
    log_pop = -popularity_exponent * np.log1p(rng.permutation(n_items))

    k = interactions_per_user
    users = np.repeat(np.arange(n_users), k)
    items = np.empty((n_users, k), np.int64)
    chunk = max(1, (1 << 22) // n_items)  # bounds the [chunk, n_items] logit matrix
    for start in range(0, n_users, chunk):
        logits = sharpness * x[start : start + chunk] @ y.T / np.sqrt(rank) + log_pop
        gumbel = rng.gumbel(size=logits.shape)  # Gumbel top-k = sampling without replacement
        items[start : start + chunk] = np.argpartition(-(logits + gumbel), k - 1, axis=1)[:, :k]
    items = items.reshape(-1)
    times = np.tile(np.arange(k, dtype=np.float64), n_users)

    noisy = rng.random(len(items)) < noise_frac
    items[noisy] = rng.integers(0, n_items, int(noisy.sum()))
    key = users * n_items + items
    _, first = np.unique(key, return_index=True)
    first.sort()
    data = Interactions(
        user=users[first].astype(np.int32),
        item=items[first].astype(np.int32),
        timestamps=times[first],
        n_users=n_users,
        n_items=n_items,
        user_tokens=np.arange(n_users).astype(str),
        item_tokens=np.arange(n_items).astype(str),
    )
    return data.compact()
