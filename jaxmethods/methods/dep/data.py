"""DPL-main / DPL-meta readers and DEP's train/val/test selection rules.

`SnowCharmQ/DPL-main` (configs Books, Movies_and_TV, CDs_and_Vinyl; splits train/val/test) has one
row per sample: `user_id`, `profile` (a list of reviews) and `data` (the target review); a review
is a dict with `rating, title, text, asin, timestamp`. `SnowCharmQ/DPL-meta` (split `full`) has
`asin, title, description`. DPL builds the splits from each user's chronological reviews:
profile = reviews[:-10], input = reviews[-10:]; train sample i (0..7) is (profile + input[:i],
input[i]), val is (profile + input[:-2], input[-2]), test is (profile + input[:-1], input[-1]).

Sources are a hub id (read with `datasets.load_dataset`) or a local folder laid out as
`<root>/<config>/<split>.{parquet,jsonl,json}` (or HF's `<split>-00000-of-00001.parquet`).

DEP's selection (`create-dataset.py`, commit e371cc2):
- train: per category keep each user's sample with the longest profile (i = 7), concatenate the
  categories, shuffle with seed 42 (`datasets.Dataset.shuffle`: `np.random.default_rng(42)`);
- val: concatenate the val splits, shuffle with seed 42, keep the first 512;
- test: every test row of each category.
"""

from __future__ import annotations

import glob
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CATEGORIES = ("Books", "Movies_and_TV", "CDs_and_Vinyl")
MAIN_ID, META_ID = "SnowCharmQ/DPL-main", "SnowCharmQ/DPL-meta"
SPLITS = ("train", "val", "test")
NUM_INPUT = 10  # DPL: the last 10 reviews of a user are the inputs (8 train, 1 val, 1 test)
_REVIEW_TYPES = {
    "rating": (int, float),
    "title": (str,),
    "text": (str,),
    "asin": (str,),
    "timestamp": (int,),
}


@dataclass(frozen=True)
class Sample:
    """One DPL-main row: the user's `profile` (dataset order, chronological in DPL) and `target`."""

    user_id: str
    category: str
    profile: tuple[dict[str, Any], ...]
    target: dict[str, Any]
    where: str = ""  # "file:row N" for error messages

    @property
    def key(self) -> str:
        """The authors' map key, f"{user_id}_{category}"."""
        return f"{self.user_id}_{self.category}"


@dataclass
class Selection:
    """Selected samples of one split and the users skipped, counted by reason."""

    samples: list[Sample]
    skipped: Counter = field(default_factory=Counter)


def check_review(review: Any, where: str) -> dict[str, Any]:
    """The review dict, or ValueError naming `where` and the missing / mistyped field."""
    if not isinstance(review, dict):
        raise ValueError(f"{where}: expected a review dict, got {type(review).__name__}")
    for name, types in _REVIEW_TYPES.items():
        value = review.get(name)
        if value is None:
            raise ValueError(f"{where}.{name}: missing (a review needs {tuple(_REVIEW_TYPES)})")
        if isinstance(value, bool) or not isinstance(value, types):
            want = "/".join(t.__name__ for t in types)
            raise ValueError(f"{where}.{name}: expected {want}, got {type(value).__name__}")
    return review


def _local_files(root: str, config: str, split: str) -> list[str]:
    base = os.path.join(root, config)
    for pattern in (f"{split}.parquet", f"{split}-*.parquet", f"{split}.jsonl", f"{split}.json"):
        found = sorted(glob.glob(os.path.join(base, pattern)))
        if found:
            return found
    raise FileNotFoundError(
        f"{base}: no {split}.parquet, {split}-*.parquet, {split}.jsonl or {split}.json"
    )


def _file_rows(path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path}:row {i}", row
        return
    with open(path, encoding="utf-8") as f:
        if path.endswith(".json") and f.read(1) == "[":
            f.seek(0)
            rows = json.load(f)
            for i, row in enumerate(rows):
                yield f"{path}:row {i}", row
            return
        f.seek(0)
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{lineno}", json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None


def read_rows(source: str, config: str, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """("where", row) for every row of `source` (local folder or hub id) / config / split."""
    if os.path.isdir(source):
        for path in _local_files(source, config, split):
            yield from _file_rows(path)
        return
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a core dependency
        raise ImportError(
            f"reading {source!r} from the hub needs the `datasets` package; or pass a local "
            "folder <root>/<config>/<split>.parquet|jsonl"
        ) from None
    for i, row in enumerate(datasets.load_dataset(source, config, split=split)):
        yield f"{source}/{config}/{split}:row {i}", row


def read_main(source: str, category: str, split: str) -> list[Sample]:
    """The DPL-main rows of one category and split, every review checked."""
    out = []
    for where, row in read_rows(source, category, split):
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected an object, got {type(row).__name__}")
        user_id = row.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise ValueError(f"{where}.user_id: missing or not a string")
        profile = row.get("profile")
        if not isinstance(profile, list):
            raise ValueError(f"{where}.profile: expected a list of reviews")
        prof = tuple(check_review(r, f"{where}.profile[{j}]") for j, r in enumerate(profile))
        target = check_review(row.get("data"), f"{where}.data")
        out.append(Sample(user_id, category, prof, target, where))
    return out


def read_meta(source: str, categories: Iterable[str]) -> dict[str, tuple[str, str]]:
    """asin -> (title, description) over the categories' `full` splits; a later category wins
    on a shared asin, as the authors' `dict(zip(...))` over the concatenation."""
    meta: dict[str, tuple[str, str]] = {}
    for category in categories:
        for where, row in read_rows(source, category, "full"):
            for name in ("asin", "title", "description"):
                if not isinstance(row.get(name), str):
                    raise ValueError(f"{where}.{name}: missing or not a string")
            meta[row["asin"]] = (row["title"], row["description"])
    return meta


def hf_shuffle(items: Sequence[Any], seed: int = 42) -> list[Any]:
    """`datasets.Dataset.shuffle(seed=seed)` order: `np.random.default_rng(seed).permutation`."""
    perm = np.random.default_rng(seed).permutation(len(items))
    return [items[int(i)] for i in perm]


def longest_per_user(samples: Sequence[Sample]) -> list[Sample]:
    """Each user's sample with the longest profile, in the authors' pandas order:
    `sort_values('profile_length', ascending=False).groupby('user_id').head(1)`."""
    import pandas as pd

    frame = pd.DataFrame(
        {"user_id": [s.user_id for s in samples], "length": [len(s.profile) for s in samples]}
    )
    kept = frame.sort_values("length", ascending=False).groupby("user_id").head(1)
    return [samples[int(i)] for i in kept.index]


def select_train(
    train: dict[str, Sequence[Sample]], test: dict[str, Sequence[Sample]], seed: int = 42
) -> Selection:
    """DEP's training set: the i = 7 sample per user and category, shuffled over categories.

    A user is skipped (and counted) when they have no test row (their embeddings and peer rows
    come from the test split) or when their longest train sample is not i = 7, i.e. its profile
    is not the test profile minus its last two reviews (a history shorter than DPL's 10 inputs).
    """
    skipped: Counter = Counter()
    picked: list[Sample] = []
    for category, samples in train.items():
        test_len = {s.user_id: len(s.profile) for s in test.get(category, ())}
        for s in longest_per_user(samples):
            if s.user_id not in test_len:
                skipped["train: user has no test row"] += 1
            elif len(s.profile) != test_len[s.user_id] - 2:
                skipped["train: no i = 7 sample (history too short)"] += 1
            else:
                picked.append(s)
    return Selection(hf_shuffle(picked, seed), skipped)


def select_val(val: dict[str, Sequence[Sample]], num: int = 512, seed: int = 42) -> Selection:
    """The val splits concatenated, shuffled with `seed`, the first `num` kept."""
    rows = [s for samples in val.values() for s in samples]
    return Selection(hf_shuffle(rows, seed)[:num])


def load_splits(
    main: str = MAIN_ID, categories: Sequence[str] = CATEGORIES, *, num_val: int = 512
) -> dict[str, Selection]:
    """DEP's train / val / test selections read from `main` (hub id or local folder)."""
    raw = {sp: {c: read_main(main, c, sp) for c in categories} for sp in SPLITS}
    tests = [s for c in categories for s in raw["test"][c]]
    return {
        "train": select_train(raw["train"], raw["test"]),
        "val": select_val(raw["val"], num_val),
        "test": Selection(tests),
    }


def write_local(
    main: dict[str, list[dict]], meta: list[dict], root: str, category: str
) -> tuple[str, str]:
    """Writes `<root>/main/<category>/<split>.jsonl` and `<root>/meta/<category>/full.jsonl`;
    returns (main root, meta root) for `read_main` / `read_meta` / `load_splits`."""
    paths = {os.path.join(root, "main", category, f"{sp}.jsonl"): rows for sp, rows in main.items()}
    paths[os.path.join(root, "meta", category, "full.jsonl")] = meta
    for path, rows in paths.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    return os.path.join(root, "main"), os.path.join(root, "meta")
