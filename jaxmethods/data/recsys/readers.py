"""Readers for the original interaction-file formats.

- RecBole atomic files `NAME.inter`: tab-separated, first line a typed header such as
  `user_id:token\titem_id:token\trating:float\ttimestamp:float` (types token, token_seq, float,
  float_seq; only the user, item, rating and time fields are kept).
- MovieLens raw files: `u.data` (ml-100k, tab, no header), `ratings.dat` (ml-1m/10m, `::`),
  `ratings.csv` (ml-20m/25m/latest, header `userId,movieId,rating,timestamp`).
- Any delimited file with named (header) or numbered columns (`read_delimited`).

Blank lines are skipped. Every malformed row raises `InteractionFormatError` naming the file,
the 1-based line number and what is wrong: a wrong field count, an empty id, a rating or
timestamp that is not a finite number (NaN and inf are rejected), bytes that are not UTF-8.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np

from jaxmethods.data.recsys.interactions import InteractionFormatError, RawInteractions

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; undecodable bytes name the file and line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InteractionFormatError(
                    f"{path}:{lineno}: not UTF-8 text (byte {raw[e.start : e.start + 1]!r} at "
                    f"column {e.start + 1}); is this a binary or differently encoded file?"
                ) from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # a UTF-8 byte-order mark
            line = line.rstrip("\r\n")
            if line.strip():
                yield lineno, line


def _parse_float(value: str, path: str, lineno: int, field: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise InteractionFormatError(
            f"{path}:{lineno}: field {field!r} must be a number, got {value!r}"
        ) from None
    if not math.isfinite(x):
        raise InteractionFormatError(
            f"{path}:{lineno}: field {field!r} must be a finite number, got {value!r}"
        )
    return x


def _collect(
    path: str,
    rows: Iterator[tuple[int, list[str]]],
    n_fields: int,
    cols: dict[str, int | None],
    names: list[str],
) -> RawInteractions:
    users, items, times, ratings = [], [], [], []
    t_col, r_col = cols["time"], cols["rating"]
    for lineno, fields in rows:
        if len(fields) != n_fields:
            raise InteractionFormatError(
                f"{path}:{lineno}: expected {n_fields} fields ({', '.join(names)}), "
                f"got {len(fields)}: {fields!r}"
            )
        user, item = fields[cols["user"]].strip(), fields[cols["item"]].strip()
        if not user or not item:
            which = "user" if not user else "item"
            raise InteractionFormatError(f"{path}:{lineno}: empty {which} id")
        users.append(user)
        items.append(item)
        if t_col is not None:
            times.append(_parse_float(fields[t_col], path, lineno, names[t_col]))
        if r_col is not None:
            ratings.append(_parse_float(fields[r_col], path, lineno, names[r_col]))
    return RawInteractions(
        users=np.asarray(users, dtype=object).astype(str),
        items=np.asarray(items, dtype=object).astype(str),
        timestamps=np.asarray(times, np.float64) if t_col is not None else None,
        ratings=np.asarray(ratings, np.float64) if r_col is not None else None,
        source=path,
    )


def read_atomic_inter(
    path: str,
    *,
    user_field: str = "user_id",
    item_field: str = "item_id",
    time_field: str = "timestamp",
    rating_field: str = "rating",
    sep: str = "\t",
) -> RawInteractions:
    """Reads a RecBole atomic `.inter` file (RecBole's `USER_ID_FIELD`, ... default names)."""
    lines = _lines(path)
    try:
        header_lineno, header = next(lines)
    except StopIteration:
        raise InteractionFormatError(f"{path}: empty file (expected a typed header)") from None
    names, types = [], []
    for spec in header.split(sep):
        name, colon, ftype = spec.partition(":")
        if not colon or ftype not in ATOMIC_TYPES:
            raise InteractionFormatError(
                f"{path}:{header_lineno}: header field {spec!r} must look like NAME:TYPE with "
                f"TYPE in {ATOMIC_TYPES}"
            )
        names.append(name)
        types.append(ftype)

    def find(field: str, required: bool) -> int | None:
        if field in names:
            return names.index(field)
        if required:
            raise InteractionFormatError(
                f"{path}:{header_lineno}: header has no {field!r} field (fields: {names})"
            )
        return None

    cols = {
        "user": find(user_field, True),
        "item": find(item_field, True),
        "time": find(time_field, False),
        "rating": find(rating_field, False),
    }
    for key in ("time", "rating"):
        col = cols[key]
        if col is not None and types[col] != "float":
            raise InteractionFormatError(
                f"{path}:{header_lineno}: field {names[col]!r} must have type float, "
                f"got {types[col]!r}"
            )
    rows = ((n, line.split(sep)) for n, line in lines)
    return _collect(path, rows, len(names), cols, names)


def read_delimited(
    path: str,
    *,
    user_col: str | int,
    item_col: str | int,
    time_col: str | int | None = None,
    rating_col: str | int | None = None,
    sep: str = ",",
    header: bool = True,
) -> RawInteractions:
    """Reads a delimited file. Columns are header names (header=True) or 0-based indices."""
    lines = _lines(path)
    if header:
        try:
            header_lineno, head = next(lines)
        except StopIteration:
            raise InteractionFormatError(f"{path}: empty file (expected a header line)") from None
        names = [h.strip() for h in head.split(sep)]
    else:
        first = next(lines, None)
        if first is None:
            raise InteractionFormatError(f"{path}: no interaction rows")
        header_lineno = first[0]
        names = [f"column {i}" for i in range(len(first[1].split(sep)))]
        lines = _chain_first(first, lines)

    def find(col: str | int | None, what: str) -> int | None:
        if col is None:
            return None
        if isinstance(col, int):
            if not 0 <= col < len(names):
                raise InteractionFormatError(
                    f"{path}:{header_lineno}: {what} column {col} out of range "
                    f"({len(names)} fields)"
                )
            return col
        if col not in names:
            raise InteractionFormatError(
                f"{path}:{header_lineno}: no {what} column {col!r} in header {names}"
            )
        return names.index(col)

    cols = {
        "user": find(user_col, "user"),
        "item": find(item_col, "item"),
        "time": find(time_col, "time"),
        "rating": find(rating_col, "rating"),
    }
    rows = ((n, line.split(sep)) for n, line in lines)
    return _collect(path, rows, len(names), cols, names)


def _chain_first(first, rest):
    yield first
    yield from rest


MOVIELENS_FILES = ("u.data", "ratings.dat", "ratings.csv")


def read_movielens(path: str) -> RawInteractions:
    """MovieLens raw ratings, by file name: `u.data`, `ratings.dat` or `ratings.csv`.

    `path` may be the file or a directory holding exactly one of them.
    """
    if os.path.isdir(path):
        found = [f for f in MOVIELENS_FILES if os.path.exists(os.path.join(path, f))]
        if len(found) != 1:
            raise FileNotFoundError(
                f"{path}: expected exactly one of {MOVIELENS_FILES} in the directory, found {found}"
            )
        path = os.path.join(path, found[0])
    name = os.path.basename(path)
    if name == "u.data":
        return read_delimited(
            path, user_col=0, item_col=1, rating_col=2, time_col=3, sep="\t", header=False
        )
    if name == "ratings.dat":
        return read_delimited(
            path, user_col=0, item_col=1, rating_col=2, time_col=3, sep="::", header=False
        )
    if name == "ratings.csv":
        return read_delimited(
            path, user_col="userId", item_col="movieId", rating_col="rating", time_col="timestamp"
        )
    raise ValueError(f"{path}: not a MovieLens ratings file (expected one of {MOVIELENS_FILES})")
