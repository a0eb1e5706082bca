"""Amazon Review 2018 ("amazon_v2") next-item data, as processed by D3 / BIGRec / IGD.

Raw inputs (datarepo.eng.ucsd.edu): `{cat}_5.json` or `{cat}.json` reviews and `meta_{cat}.json`
item metadata, one JSON object per line, optionally gzipped (`.json.gz`).

Pipeline (authors' `process.py`):
1. keep reviews with start <= unixReviewTime <= end (default 2017-10-01 .. 2018-11-01, UTC);
2. drop items without a title, with `<span id` in it, or whose cleaned title has <= 1 character
   or more than 20 words (`&quot;` -> `"`, `&amp;` -> `&`, strip spaces then quotes);
3. iterative K-core (K=5) on users and items; while the K-core has fewer than `min_items` items
   the start year moves back by one (down to 1996) and everything restarts;
4. item ids in shuffled order (`random.seed(42)`), written to the `title\\tid` info file;
5. each user's interactions sorted by time; interaction i >= 1 is a sample with the previous
   <= 10 items as history;
6. samples sorted by target timestamp and split 80/10/10 chronologically.

Outputs: `train|valid|test/{cat}_{K}_{sy}-{sm}-{ey}-{em}.csv` with the columns of `CSV_COLUMNS`
(list columns written as Python list literals), `info/{same}.txt`, and
`item_frequency/{cat}.json` (title -> number of train targets; distinct ids sharing a title
overwrite each other, as in `compute_item_freq.py`). `read_samples_csv` reads such CSVs directly.
"""

from __future__ import annotations

import ast
import calendar
import collections
import contextlib
import csv
import dataclasses
import gzip
import io
import json
import math
import os
import random
from collections.abc import Iterator, Sequence

from jaxmethods.train.metrics import write_text_atomic

CSV_COLUMNS = (
    "user_id",
    "item_asins",
    "item_asin",
    "history_item_id",
    "item_id",
    "history_item_title",
    "item_title",
    "history_rating",
    "rating",
    "history_timestamp",
    "timestamp",
)
_LIST_COLUMNS = ("item_asins", "history_item_id", "history_item_title", "history_rating")
_LIST_COLUMNS += ("history_timestamp",)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One next-item example: the user's last <= 10 items and the target item."""

    user_id: str
    item_asins: list[str]
    item_asin: str
    history_item_id: list[int]
    item_id: int
    history_item_title: list[str]
    item_title: str
    history_rating: list[float]
    rating: float
    history_timestamp: list[int]
    timestamp: int

    def row(self) -> list:
        return [getattr(self, c) for c in CSV_COLUMNS]


@dataclasses.dataclass(frozen=True)
class ProcessedSplits:
    train: list[Sample]
    valid: list[Sample]
    test: list[Sample]
    info: list[tuple[str, int]]  # (title, item id) in id order
    start: tuple[int, int]  # (year, month) actually used after moving the window back
    end: tuple[int, int]


@contextlib.contextmanager
def _open_text(path: str) -> Iterator:
    """A UTF-8 text file (plain or .gz) whose decoding errors name the file."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            yield f
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as e:
        raise ValueError(f"{path}: not a UTF-8 text file ({type(e).__name__}: {e})") from None


def read_json_lines(path: str) -> Iterator[dict]:
    """Yields the objects of a JSON-lines file (plain or .gz); old-style Python-literal lines too."""
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                try:
                    yield ast.literal_eval(line)
                except (ValueError, SyntaxError) as e:
                    raise ValueError(f"{path}:{lineno}: not a JSON object ({e})") from None


def clean_title(raw: str) -> str:
    return raw.replace("&quot;", '"').replace("&amp;", "&").strip(" ").strip('"')


def _month_start(year: int, month: int) -> int:
    return calendar.timegm((year, month, 1, 0, 0, 0))


def _review_fields(review: dict, where: str) -> tuple[str, str, int]:
    try:
        return review["reviewerID"], review["asin"], int(review["unixReviewTime"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"{where}: review lacks a valid reviewerID/asin/unixReviewTime ({e})"
        ) from None


def _titles(metadata: Sequence[dict]) -> tuple[dict[str, str], set[str]]:
    id_title, removed = {}, set()
    for meta in metadata:
        asin = meta.get("asin")
        if asin is None:
            continue
        if "title" not in meta or meta["title"].find("<span id") > -1:
            removed.add(asin)
            continue
        title = clean_title(meta["title"])
        if len(title) > 1 and len(title.split(" ")) <= 20:
            id_title[asin] = title
        else:
            removed.add(asin)
    return id_title, removed


def k_core_window(
    reviews: Sequence[dict],
    metadata: Sequence[dict],
    *,
    k: int = 5,
    start: tuple[int, int] = (2017, 10),
    end: tuple[int, int] = (2018, 11),
    min_items: int = 10000,
) -> tuple[list[dict], list[str], tuple[int, int]]:
    """Steps 1-3: the K-core reviews in the time window, moving the start back a year at a time.

    Returns (kept reviews in file order, items in order of first appearance, (start year, month)).
    """
    id_title, removed_meta = _titles(metadata)
    fields = [_review_fields(r, f"review #{i}") for i, r in enumerate(reviews)]
    missing = {asin for _, asin, _ in fields if asin not in id_title}
    st_year, st_month = start
    while True:
        lo, hi = _month_start(st_year, st_month), _month_start(*end)
        remove_users: set[str] = set()
        remove_items = removed_meta | missing  # a fresh set per start year
        while True:
            users: dict[str, int] = {}
            items: dict[str, int] = {}
            kept = []
            for r, (user, asin, ts) in zip(reviews, fields):
                if ts < lo or ts > hi or user in remove_users or asin in remove_items:
                    continue
                users[user] = users.get(user, 0) + 1
                items[asin] = items.get(asin, 0) + 1
                kept.append(r)
            changed = False
            for user, n in users.items():
                if n < k:
                    remove_users.add(user)
                    changed = True
            for asin, n in items.items():
                if n < k:
                    remove_items.add(asin)
                    changed = True
            # The authors stop filtering as soon as the window is too small and retry earlier.
            if (st_year > 1996 and len(items) < min_items) or not changed:
                break
        if st_year > 1996 and len(items) < min_items:
            st_year -= 1
            continue
        return kept, list(items), (st_year, st_month)


def process_reviews(
    reviews: Sequence[dict],
    metadata: Sequence[dict],
    *,
    k: int = 5,
    start: tuple[int, int] = (2017, 10),
    end: tuple[int, int] = (2018, 11),
    min_items: int = 10000,
    history_len: int = 10,
    seed: int = 42,
) -> ProcessedSplits:
    """Steps 1-6 on in-memory review and metadata records."""
    kept, items, start = k_core_window(
        reviews, metadata, k=k, start=start, end=end, min_items=min_items
    )
    if not kept:
        raise ValueError("amazon2018: no review survives the time window and the K-core filter")
    id_title, _ = _titles(metadata)
    random.seed(seed)
    random.shuffle(items)
    item2id = {asin: i for i, asin in enumerate(items)}

    per_user: dict[str, list[tuple[str, float, int]]] = {}
    for r in kept:
        per_user.setdefault(r["reviewerID"], []).append(
            (r["asin"], float(r["overall"]), int(r["unixReviewTime"]))
        )
    samples = []
    for user, events in per_user.items():
        events = sorted(events, key=lambda e: e[2])
        asins = [e[0] for e in events]
        for i in range(1, len(events)):
            lo = max(i - history_len, 0)
            samples.append(
                Sample(
                    user_id=user,
                    item_asins=asins[lo:i],
                    item_asin=asins[i],
                    history_item_id=[item2id[a] for a in asins[lo:i]],
                    item_id=item2id[asins[i]],
                    history_item_title=[id_title[a] for a in asins[lo:i]],
                    item_title=id_title[asins[i]],
                    history_rating=[e[1] for e in events[lo:i]],
                    rating=events[i][1],
                    history_timestamp=[e[2] for e in events[lo:i]],
                    timestamp=events[i][2],
                )
            )
    samples.sort(key=lambda s: s.timestamp)
    n = len(samples)
    a, b = int(n * 0.8), int(n * 0.9)
    info = [(id_title[asin], i) for i, asin in enumerate(items)]
    return ProcessedSplits(samples[:a], samples[a:b], samples[b:], info, start, end)


def item_frequency(train: Sequence[Sample], info: Sequence[tuple[str, int]]) -> dict[str, int]:
    """title -> number of train samples targeting it (ids sharing a title overwrite, as upstream)."""
    id_title = {item_id: title for title, item_id in info}
    counts = collections.Counter(s.item_id for s in train)
    return {id_title.get(item_id, "Unknown Item"): n for item_id, n in counts.items()}


def _find(raw_dir: str, names: Sequence[str]) -> str:
    for name in names:
        path = os.path.join(raw_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"amazon2018: none of {list(names)} found in {raw_dir}")


def process_category(
    category: str, raw_dir: str, out_dir: str, *, min_items: int = 10000, **kwargs
) -> dict[str, str]:
    """Runs the pipeline on `raw_dir/{cat}_5.json[.gz]` (or `{cat}.json[.gz]`) and
    `raw_dir/meta_{cat}.json[.gz]`, writing the CSVs, the info file and the frequency JSON.

    Returns the written paths: {"train", "valid", "test", "info", "item_frequency"}.
    """
    review_path = _find(
        raw_dir,
        [f"{category}_5.json", f"{category}_5.json.gz", f"{category}.json", f"{category}.json.gz"],
    )
    meta_path = _find(raw_dir, [f"meta_{category}.json", f"meta_{category}.json.gz"])
    splits = process_reviews(
        list(read_json_lines(review_path)),
        list(read_json_lines(meta_path)),
        min_items=min_items,
        **kwargs,
    )
    k = kwargs.get("k", 5)
    (sy, sm), (ey, em) = splits.start, splits.end
    stem = f"{category}_{k}_{sy}-{sm}-{ey}-{em}"
    paths = {}
    for split in ("train", "valid", "test"):
        paths[split] = os.path.join(out_dir, split, f"{stem}.csv")
        write_samples_csv(paths[split], getattr(splits, split))
    paths["info"] = os.path.join(out_dir, "info", f"{stem}.txt")
    write_text_atomic(paths["info"], "".join(f"{t}\t{i}\n" for t, i in splits.info))
    paths["item_frequency"] = os.path.join(out_dir, "item_frequency", f"{category}.json")
    freq = item_frequency(splits.train, splits.info)
    write_text_atomic(paths["item_frequency"], json.dumps(freq, ensure_ascii=False, indent=4))
    return paths


def write_samples_csv(path: str, samples: Sequence[Sample]) -> None:
    """Writes `samples` in the CSV format above (atomically: never a half-written file)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(s.row() for s in samples)
    write_text_atomic(path, buf.getvalue())


def read_samples_csv(path: str) -> list[Sample]:
    """Reads a CSV in the format above (the authors' ready-made files included)."""
    out = []
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}")
        for lineno, row in enumerate(reader, 2):
            try:
                values = {c: row[c] for c in CSV_COLUMNS}
                for c in _LIST_COLUMNS:
                    values[c] = list(ast.literal_eval(values[c]))
                values["item_id"] = int(values["item_id"])
                values["history_item_id"] = [int(x) for x in values["history_item_id"]]
                values["rating"] = float(values["rating"])
                values["history_rating"] = [float(x) for x in values["history_rating"]]
                values["timestamp"] = int(values["timestamp"])
                values["history_timestamp"] = [int(x) for x in values["history_timestamp"]]
                values["history_item_title"] = [str(x) for x in values["history_item_title"]]
            except (ValueError, SyntaxError, TypeError) as e:
                raise ValueError(f"{path}:{lineno}: malformed row ({e})") from None
            if not values["history_item_title"]:
                raise ValueError(f"{path}:{lineno}: empty history_item_title")
            for c in ("rating", "history_rating"):
                if not all(map(math.isfinite, [values["rating"]] if c == "rating" else values[c])):
                    raise ValueError(f"{path}:{lineno}: {c} is not finite ({row[c]!r})")
            out.append(Sample(**values))
    return out


def read_info_file(path: str) -> list[tuple[str, int]]:
    """(title, id) pairs of a `title\\tid` file; titles may contain tabs (the id is the last field)."""
    out = []
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.strip().split("\t")
            if len(parts) < 2:
                raise ValueError(f"{path}:{lineno}: expected 'title<TAB>id', got {line!r}")
            try:
                out.append(("\t".join(parts[:-1]), int(parts[-1].strip())))
            except ValueError:
                raise ValueError(f"{path}:{lineno}: item id {parts[-1]!r} is not an int") from None
    return out


def read_item_frequency(path: str) -> dict[str, int]:
    with _open_text(path) as f:
        try:
            freq = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: malformed JSON ({e})") from None
    if not isinstance(freq, dict) or not all(
        isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in freq.values()
    ):
        raise ValueError(f"{path}: expected a JSON object title -> frequency (finite, >= 0)")
    return freq
