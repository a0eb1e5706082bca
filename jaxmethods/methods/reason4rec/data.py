"""Reason4Rec interaction tables: the column/dtype check shared by the converter and the reader,
and the Parquet-only reader.

The authors' tables (`Data/<X>_data/raw_data/{train,test}.pkl` and the intermediate files) are
pandas DataFrames with the columns `user_id, item_id, title, ratings, reviews, unixReviewTime`;
intermediate files add text columns (`aspect_preference_summary`, `review_summary`,
`personalized_analysis`, `reasoner_reply`). Pickles are converted once to Parquet by
`python -m jaxmethods.methods.reason4rec.convert --trust-pickle SRC DST`; the pipeline reads
Parquet only (`read_interactions`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED = ("user_id", "item_id", "title", "ratings", "reviews", "unixReviewTime")
TEXT_COLUMNS = ("aspect_preference_summary", "review_summary", "personalized_analysis",
                "reasoner_reply")  # fmt: skip


class DataError(ValueError):
    """A table that does not have the authors' layout (names the file, row and column)."""


def _is_id(v) -> bool:
    return isinstance(v, (str, int, np.integer)) and not isinstance(v, bool)


def _is_text_or_missing(v) -> bool:
    return v is None or isinstance(v, str) or (isinstance(v, float) and math.isnan(v))


def _is_rating(v) -> bool:
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
    return ok and math.isfinite(float(v)) and 1.0 <= float(v) <= 5.0


def _is_time(v) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer()


CHECKS = {
    "user_id": (_is_id, "a str or int id"),
    "item_id": (_is_id, "a str or int id"),
    "title": (lambda v: isinstance(v, str), "a string"),
    "ratings": (_is_rating, "a number in [1, 5]"),
    "reviews": (_is_text_or_missing, "a string (or missing)"),
    "unixReviewTime": (_is_time, "an integer unix time"),
    **{c: (_is_text_or_missing, "a string (or missing)") for c in TEXT_COLUMNS},
}


def validate_frame(df: pd.DataFrame, where: str) -> None:
    """Raises `DataError` naming the first bad row (position and index), its column and value,
    or the missing columns."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{where}: holds a {type(df).__name__}, not a pandas DataFrame")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; has {list(df.columns)}")
    first: tuple[int, str, object, str] | None = None
    for col, (ok, want) in CHECKS.items():
        if col not in df.columns:
            continue
        values = df[col].tolist()
        stop = len(values) if first is None else first[0]
        for pos in range(stop):
            if not ok(values[pos]):
                first = (pos, col, values[pos], want)
                break
    if first is not None:
        pos, col, value, want = first
        raise DataError(
            f"{where}: row {pos} (index {df.index[pos]!r}), column {col!r}: {value!r} is not {want}"
        )


@dataclass
class ReadStats:
    rows: int = 0
    missing_reviews: int = 0


def read_interactions(path: str | Path, *, drop_missing_reviews: bool = True):
    """(DataFrame, ReadStats) of one converted table; rows whose review is missing or empty are
    dropped and counted (`stats.missing_reviews`). Ids are kept as they are; ratings become
    float64 and times int64."""
    path = Path(path)
    if path.suffix in (".pkl", ".pickle"):
        raise DataError(
            f"{path}: the pipeline reads Parquet only; convert it once with "
            f"`python -m jaxmethods.methods.reason4rec.convert --trust-pickle {path} "
            f"{path.with_suffix('.parquet')}`"
        )
    if not path.exists():
        raise DataError(f"{path}: no such file")
    df = pd.read_parquet(path)
    validate_frame(df, str(path))
    stats = ReadStats(rows=len(df))
    if drop_missing_reviews:
        bad = df["reviews"].map(lambda v: not isinstance(v, str) or not v.strip())
        stats.missing_reviews = int(bad.sum())
        df = df[~bad.to_numpy()]
    df = df.reset_index(drop=True)
    df["ratings"] = df["ratings"].astype(np.float64)
    df["unixReviewTime"] = df["unixReviewTime"].astype(np.int64)
    return df, stats
