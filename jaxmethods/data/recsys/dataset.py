"""From a data config to a train/valid/test split of indexed interactions."""

from __future__ import annotations

import dataclasses
import math
import os

from jaxmethods.data.recsys.filters import drop_duplicates, k_core
from jaxmethods.data.recsys.interactions import Interactions, RawInteractions, index_interactions
from jaxmethods.data.recsys.readers import read_atomic_inter, read_delimited, read_movielens
from jaxmethods.data.recsys.split import split_per_user
from jaxmethods.data.recsys.synthetic import planted_interactions

SOURCES = ("synthetic", "atomic", "movielens", "csv")


@dataclasses.dataclass(frozen=True)
class CFDataConfig:
    """Where the interactions come from and how they are filtered and split.

    source: "atomic" (RecBole `path/name.inter`, or `path` itself a `.inter` file),
      "movielens" (`u.data`, `ratings.dat`, `ratings.csv`), "csv" (generic), "synthetic".
    """

    source: str = "synthetic"
    path: str = ""
    name: str = ""
    # generic delimited files
    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str = ""
    sep: str = ","
    header: bool = True
    # filtering
    min_rating: float | None = None
    user_k: int = 0
    item_k: int = 0
    dedupe: bool = True
    # split (RecBole defaults)
    split: tuple[float, ...] = (0.8, 0.1, 0.1)
    order: str = "random"
    split_seed: int = 2020
    # synthetic data
    n_users: int = 500
    n_items: int = 400
    rank: int = 16
    interactions_per_user: int = 20
    sharpness: float = 2.0
    noise_frac: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"config.data.source must be one of {SOURCES}, got {self.source!r}")
        if self.source != "synthetic" and not self.path:
            raise ValueError(f"config.data.path is required for source={self.source!r}")
        if len(self.split) != 3:
            raise ValueError(
                f"config.data.split needs 3 ratios (train, valid, test), got {self.split}"
            )
        if not all(math.isfinite(r) and r >= 0 for r in self.split) or self.split[0] <= 0:
            raise ValueError(
                "config.data.split: ratios must be finite and >= 0 with a positive train "
                f"share, got {self.split}"
            )
        if self.order not in ("random", "time"):
            raise ValueError(f"config.data.order must be 'random' or 'time', got {self.order!r}")
        if self.min_rating is not None and not math.isfinite(self.min_rating):
            raise ValueError(f"config.data.min_rating must be finite, got {self.min_rating}")
        for name in ("user_k", "item_k"):
            if getattr(self, name) < 0:
                raise ValueError(f"config.data.{name} must be >= 0, got {getattr(self, name)}")
        if self.source == "synthetic":
            for name in ("n_users", "n_items", "rank", "interactions_per_user"):
                if getattr(self, name) < 1:
                    raise ValueError(f"config.data.{name} must be >= 1, got {getattr(self, name)}")
            if not 0 <= self.noise_frac < 1:
                raise ValueError(f"config.data.noise_frac must be in [0, 1), got {self.noise_frac}")


@dataclasses.dataclass(frozen=True)
class CFSplit:
    """Indexed train/valid/test interactions over a shared id space."""

    train: Interactions
    valid: Interactions
    test: Interactions
    n_users: int
    n_items: int

    def summary(self) -> dict[str, int]:
        return {
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_train": len(self.train),
            "n_valid": len(self.valid),
            "n_test": len(self.test),
        }


def _atomic_path(cfg: CFDataConfig) -> str:
    """`path` itself, PATH/NAME.inter, or (no name) the only `.inter` file in PATH."""
    if os.path.isfile(cfg.path):
        return cfg.path
    if not os.path.isdir(cfg.path):
        raise FileNotFoundError(f"config.data.path: {cfg.path} is neither a file nor a directory")
    if not cfg.name:
        found = sorted(f for f in os.listdir(cfg.path) if f.endswith(".inter"))
        if len(found) != 1:
            raise ValueError(
                f"config.data.name is required: {cfg.path} holds {len(found)} .inter files "
                f"({found}); the file read is PATH/NAME.inter"
            )
        return os.path.join(cfg.path, found[0])
    path = os.path.join(cfg.path, f"{cfg.name}.inter")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such RecBole atomic file")
    return path


def read_raw(cfg: CFDataConfig) -> RawInteractions:
    if cfg.source == "atomic":
        return read_atomic_inter(_atomic_path(cfg))
    if cfg.source == "movielens":
        return read_movielens(cfg.path)
    return read_delimited(
        cfg.path,
        user_col=cfg.user_col,
        item_col=cfg.item_col,
        time_col=cfg.time_col or None,
        sep=cfg.sep,
        header=cfg.header,
    )


def load_interactions(cfg: CFDataConfig) -> Interactions:
    """Reads (or generates) and filters the interactions, before splitting."""
    if cfg.source == "synthetic":
        return planted_interactions(
            n_users=cfg.n_users,
            n_items=cfg.n_items,
            rank=cfg.rank,
            interactions_per_user=cfg.interactions_per_user,
            sharpness=cfg.sharpness,
            noise_frac=cfg.noise_frac,
            seed=cfg.seed,
        )
    raw = read_raw(cfg)
    if cfg.min_rating is not None:
        if raw.ratings is None:
            raise ValueError(f"{raw.source}: config.data.min_rating is set but there is no rating")
        keep = raw.ratings >= cfg.min_rating
        raw = dataclasses.replace(
            raw,
            users=raw.users[keep],
            items=raw.items[keep],
            timestamps=None if raw.timestamps is None else raw.timestamps[keep],
            ratings=raw.ratings[keep],
        )
    data = index_interactions(raw)
    if cfg.dedupe:
        data = drop_duplicates(data)
    if cfg.user_k or cfg.item_k:
        data = k_core(data, user_k=cfg.user_k, item_k=cfg.item_k)
    return data


def load_cf_split(cfg: CFDataConfig) -> CFSplit:
    data = load_interactions(cfg)
    train, valid, test = split_per_user(data, cfg.split, order=cfg.order, seed=cfg.split_seed)
    return CFSplit(train=train, valid=valid, test=test, n_users=data.n_users, n_items=data.n_items)
