"""Device-side data of one dataset split, shared by every model and group of a run."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from jaxmethods.data.recsys import CFSplit
from jaxmethods.eval.ranking import FullSortData, align_full_sort_data, build_full_sort_data
from jaxmethods.methods.cf_scaling.sampler import TrainPairs, build_train_pairs
from jaxmethods.models.cf import BipartiteGraph, build_graph


@dataclasses.dataclass
class PreparedData:
    """Training pairs (for sampling), the training graph, and full-sort evaluation layouts.

    Validation ranks all items with training items masked; test masks training and validation
    items (RecBole's full-sort protocol).
    """

    split: CFSplit
    pairs: TrainPairs
    _eval: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_split(cls, split: CFSplit) -> PreparedData:
        pairs = build_train_pairs(split.train.user, split.train.item, split.n_users, split.n_items)
        return cls(split=split, pairs=pairs)

    @property
    def n_users(self) -> int:
        return self.split.n_users

    @property
    def n_items(self) -> int:
        return self.split.n_items

    @functools.cached_property
    def graph(self) -> BipartiteGraph:
        """Â built from the training interactions only."""
        t = self.split.train
        return build_graph(t.user, t.item, self.n_users, self.n_items)

    def eval_data(self, chunk_size: int) -> tuple[FullSortData, FullSortData]:
        """(valid, test) layouts padded to equal shapes (one compiled evaluation for both)."""
        if chunk_size not in self._eval:
            s = self.split
            common = {"n_users": s.n_users, "n_items": s.n_items, "chunk_size": chunk_size}
            valid = build_full_sort_data(
                seen_users=s.train.user,
                seen_items=s.train.item,
                target_users=s.valid.user,
                target_items=s.valid.item,
                **common,
            )
            test = build_full_sort_data(
                seen_users=np.concatenate([s.train.user, s.valid.user]),
                seen_items=np.concatenate([s.train.item, s.valid.item]),
                target_users=s.test.user,
                target_items=s.test.item,
                **common,
            )
            self._eval[chunk_size] = tuple(align_full_sort_data(valid, test))
        return self._eval[chunk_size]
