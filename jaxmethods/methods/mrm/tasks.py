"""The MRM meta-batch iterator: seen users in a seeded per-epoch order, each with the
support/query split of the authors' `MetaDataset` re-drawn every epoch."""

from __future__ import annotations

import numpy as np

from jaxmethods.data.pipeline import epoch_permutation
from jaxmethods.data.preferences import TRAIN, PreferenceCorpus
from jaxmethods.data.user_splits import epoch_support_query, pad_pairs, pair_rows, user_split_pairs


def round_up(n: int, multiple: int = 8) -> int:
    return max(multiple, -(-n // multiple) * multiple)


class MetaTaskIterator:
    """Meta-batches of `tasks_per_batch` seen users as padded embedding-row indices.

    Epoch e (1-based) visits the seen users in the order `epoch_permutation(n, seed, e - 1)`, the
    project's one epoch shuffle (the original uses a torch DataLoader with shuffle=True, whose
    order cannot be reproduced outside torch); the user at
    seen position i gets the split `support_query_split(seed, index=i, epoch=e)`. The last,
    partial meta-batch of an epoch is padded with copies of its first task and
    `task_mask = False`, so every step has the same shapes (no recompiles).

    Each batch: `support`/`query` = (chosen [T, P], rejected [T, P], mask [T, P]),
    `task_mask` [T], `user` [T] (int32 positions in `seen`, for per-user parameter tables of
    the peer models) and `rows` [T, R]: each user's distinct embedding rows of its valid
    support and query pairs, sorted, padded by repeating the last (R = the most distinct rows
    of any seen user's train pairs, rounded up to 8), so the meta-step gathers each row once.
    The state is `(epoch, batch)`, so resuming is exact.
    """

    def __init__(
        self,
        corpus: PreferenceCorpus,
        seen: np.ndarray,
        *,
        tasks_per_batch: int,
        val_ratio: float,
        seed: int,
    ):
        if len(seen) == 0:
            raise ValueError("no seen users to meta-train on")
        self.corpus, self.seen = corpus, np.asarray(seen)
        self.tasks_per_batch, self.val_ratio, self.seed = tasks_per_batch, val_ratio, seed
        train = user_split_pairs(corpus, self.seen, TRAIN)
        self.max_pairs = round_up(max(len(p) for p in train))
        distinct = (len(np.union1d(corpus.chosen[p], corpus.rejected[p])) for p in train)
        self.max_rows = round_up(max(distinct))
        self.epoch, self.batch = 1, 0
        self._cached_epoch: int | None = None

    @property
    def batches_per_epoch(self) -> int:
        return -(-len(self.seen) // self.tasks_per_batch)

    def get_state(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def set_state(self, state: dict) -> None:
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])

    def __iter__(self):
        return self

    def _epoch_view(self) -> tuple[np.ndarray, list, list]:
        if self._cached_epoch != self.epoch:
            support, query = epoch_support_query(
                self.corpus, self.seen, seed=self.seed, epoch=self.epoch, val_ratio=self.val_ratio
            )
            order = epoch_permutation(len(self.seen), seed=self.seed, epoch=self.epoch - 1)
            self._view = (order, pair_rows(self.corpus, support), pair_rows(self.corpus, query))
            self._cached_epoch = self.epoch
        return self._view

    def __next__(self) -> dict:
        order, support, query = self._epoch_view()
        t = self.tasks_per_batch
        positions = list(order[self.batch * t : (self.batch + 1) * t])
        n_valid = len(positions)
        positions += [positions[0]] * (t - n_valid)
        self.batch += 1
        if self.batch >= self.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        sup = pad_pairs([support[i] for i in positions], self.max_pairs)
        qry = pad_pairs([query[i] for i in positions], self.max_pairs)
        return {
            "support": sup,
            "query": qry,
            "task_mask": np.arange(t) < n_valid,
            "user": np.asarray(positions, np.int32),
            "rows": distinct_rows(sup, qry, self.max_rows),
        }


def distinct_rows(support: tuple, query: tuple, width: int) -> np.ndarray:
    """[T, width] int32: each user's distinct rows of its valid support/query slots, sorted,
    padded by repeating the last (row 0 for a user without pairs).

    support, query: (chosen [T, P], rejected [T, P], mask [T, P]) as `pad_pairs` returns them.
    """
    out = np.zeros((support[0].shape[0], width), np.int32)
    for t in range(out.shape[0]):
        used = [a[t][m[t]] for c, r, m in (support, query) for a in (c, r)]
        rows = np.unique(np.concatenate(used))
        if len(rows) > width:
            raise ValueError(f"distinct_rows: user {t} has {len(rows)} rows, more than {width}")
        if len(rows):
            out[t, : len(rows)], out[t, len(rows) :] = rows, rows[-1]
    return out
