"""Implicit-feedback interaction data for collaborative filtering (readers, filters, splits)."""

from jaxmethods.data.recsys.dataset import CFDataConfig, CFSplit, load_cf_split, load_interactions
from jaxmethods.data.recsys.filters import drop_duplicates, k_core
from jaxmethods.data.recsys.interactions import (
    InteractionFormatError,
    Interactions,
    RawInteractions,
    index_interactions,
)
from jaxmethods.data.recsys.readers import read_atomic_inter, read_delimited, read_movielens
from jaxmethods.data.recsys.split import split_counts, split_per_user
from jaxmethods.data.recsys.synthetic import planted_interactions

__all__ = [
    "CFDataConfig",
    "CFSplit",
    "InteractionFormatError",
    "Interactions",
    "RawInteractions",
    "drop_duplicates",
    "index_interactions",
    "k_core",
    "load_cf_split",
    "load_interactions",
    "planted_interactions",
    "read_atomic_inter",
    "read_delimited",
    "read_movielens",
    "split_counts",
    "split_per_user",
]
