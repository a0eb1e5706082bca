"""Noisy interactions injected into a real dataset's training split.

The scaling study explains the double peak by noisy interactions (clicks that carry no
preference). The synthetic generator plants them before the split; for a real dataset,
`add_training_noise` adds uniformly random (user, item) pairs to the training split only, so the
validation and test sets stay the dataset's own interactions. A noisy pair is never one of the
user's observed interactions (train, valid or test) and never repeated.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxmethods.data.recsys.dataset import CFSplit


def noise_count(n_train: int, frac: float) -> int:
    """Pairs to add so that they are a share `frac` of the noisy training split:
    n = round(frac / (1 - frac) · n_train)."""
    if not 0.0 <= frac < 1.0:
        raise ValueError(f"config.data.noise_frac: must be in [0, 1), got {frac}")
    return round(frac / (1.0 - frac) * n_train)


def add_training_noise(split: CFSplit, frac: float, seed: int) -> CFSplit:
    """`split` with `noise_count(len(train), frac)` random unobserved pairs added to `train`.

    Users and items are drawn uniformly and independently; pairs already observed anywhere in
    the split, or drawn twice, are redrawn. Added rows get the latest training timestamp.
    Raises ValueError when the unobserved cells are fewer than the pairs to add.
    """
    n_add = noise_count(len(split.train), frac)
    if n_add == 0:
        return split
    n_items = np.int64(split.n_items)
    observed = np.unique(
        np.concatenate(
            [
                p.user.astype(np.int64) * n_items + p.item
                for p in (split.train, split.valid, split.test)
            ]
        )
    )
    free = split.n_users * split.n_items - len(observed)
    if n_add > free:
        raise ValueError(
            f"config.data.noise_frac={frac}: {n_add} noisy pairs requested but only {free} "
            f"user-item cells are unobserved ({split.n_users} users x {split.n_items} items)"
        )
    rng = np.random.default_rng(seed)
    chosen = np.empty(0, np.int64)
    while len(chosen) < n_add:
        draw = 2 * (n_add - len(chosen)) + 16
        keys = rng.integers(0, split.n_users, draw) * n_items + rng.integers(0, n_items, draw)
        keys = keys[~np.isin(keys, observed)]
        # Keep first occurrences in draw order, so the result depends on the seed only.
        merged = np.concatenate([chosen, keys])
        _, first = np.unique(merged, return_index=True)
        chosen = merged[np.sort(first)][:n_add]
    train = split.train
    times = None
    if train.timestamps is not None:
        latest = float(np.max(train.timestamps)) if len(train) else 0.0
        times = np.concatenate([train.timestamps, np.full(n_add, latest)])
    noisy = dataclasses.replace(
        train,
        user=np.concatenate([train.user, (chosen // n_items).astype(train.user.dtype)]),
        item=np.concatenate([train.item, (chosen % n_items).astype(train.item.dtype)]),
        timestamps=times,
    )
    return dataclasses.replace(split, train=noisy)
