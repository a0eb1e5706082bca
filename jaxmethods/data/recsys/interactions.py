"""Interaction tables: raw (string tokens from a file) and indexed (contiguous int ids)."""

from __future__ import annotations

import dataclasses

import numpy as np


class InteractionFormatError(ValueError):
    """A malformed interaction file; the message names the file and the 1-based line."""


@dataclasses.dataclass(frozen=True)
class RawInteractions:
    """Rows as read from a file, in file order.

    users, items: [N] str tokens. timestamps, ratings: [N] float64 or None when absent.
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray | None
    ratings: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(self.users)


@dataclasses.dataclass(frozen=True)
class Interactions:
    """Indexed interactions: user [N] int32 in [0, n_users), item [N] int32 in [0, n_items).

    `timestamps` [N] float64 or None. `user_tokens` / `item_tokens` map an index back to the
    original id (length n_users / n_items).
    """

    user: np.ndarray
    item: np.ndarray
    timestamps: np.ndarray | None
    n_users: int
    n_items: int
    user_tokens: np.ndarray
    item_tokens: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def select(self, keep: np.ndarray) -> Interactions:
        """The rows where `keep` ([N] bool) is true, ids unchanged (call `compact` to re-index)."""
        ts = None if self.timestamps is None else self.timestamps[keep]
        return dataclasses.replace(self, user=self.user[keep], item=self.item[keep], timestamps=ts)

    def compact(self) -> Interactions:
        """Re-indexes users and items to 0..n-1 over the ids still present (order preserved)."""
        users, user = np.unique(self.user, return_inverse=True)
        items, item = np.unique(self.item, return_inverse=True)
        return Interactions(
            user=user.astype(np.int32),
            item=item.astype(np.int32),
            timestamps=self.timestamps,
            n_users=len(users),
            n_items=len(items),
            user_tokens=self.user_tokens[users],
            item_tokens=self.item_tokens[items],
        )


def index_interactions(raw: RawInteractions) -> Interactions:
    """Maps string tokens to contiguous ids (sorted token order, so ids are deterministic)."""
    if len(raw) == 0:
        raise InteractionFormatError(f"{raw.source}: no interaction rows")
    user_tokens, user = np.unique(raw.users, return_inverse=True)
    item_tokens, item = np.unique(raw.items, return_inverse=True)
    return Interactions(
        user=user.astype(np.int32),
        item=item.astype(np.int32),
        timestamps=raw.timestamps,
        n_users=len(user_tokens),
        n_items=len(item_tokens),
        user_tokens=user_tokens,
        item_tokens=item_tokens,
    )
