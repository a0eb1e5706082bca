"""Rebuild DPL-main / DPL-meta from local Amazon-Reviews-2023 JSONL files, following
`DPL/data/data-create.py` step by step (its filters, orders and tie-breaking).

Inputs are the dataset's raw files: reviews `<Category>.jsonl` (`rating, title, text,
asin, parent_asin, user_id, timestamp, ...`) and metadata `meta_<Category>.jsonl`
(`title, description [list], categories, rating_number, parent_asin, ...`).

1. Items: description = ' '.join(description) without a leading "Product Description" entry;
   kept when 100 <= len <= 2000 and title, categories and rating_number are truthy.
   Reviews: kept when text has >= 200 characters and rating, title, timestamp are truthy;
   asin := parent_asin; only items kept in 1.
2. Until the row count is stable: per user, reviews most recent first, deduplicated by asin and
   by text (first seen kept); drop items with < 8 users (over the rows, before deduplication)
   and users with < 18 or > 500 deduplicated reviews; drop their rows.
3. Text whitespace collapsed (`re.sub(r'\\s+', ' ', text.strip())`), deduplicated again; per user
   chronological: profile = reviews[:-10], input = reviews[-10:].
4. Until the user count is stable: keep asins with >= 5 users within the profiles, profiles
   restricted to those asins, users with >= 8 such profile reviews (inputs untouched).
5. Samples: train i = 0..7, val, test (see `data`); metadata = the items that survived step 2.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from jaxmethods.data.jsonl import jsonl_objects
from jaxmethods.methods.dep.data import NUM_INPUT

MIN_ITEM_USERS, MIN_USER_REVIEWS, MAX_USER_REVIEWS = 8, 18, 500
MIN_PROFILE_ITEM_USERS, MIN_PROFILE_REVIEWS = 5, 8


def description(x: dict[str, Any]) -> str:
    """DPL's `create_description`."""
    d = x.get("description") or []
    if not d or (d[0] == "Product Description" and len(d) == 1):
        return ""
    if d[0] == "Product Description":
        return " ".join(d[1:])
    return " ".join(d)


def _meta_ok(x: dict[str, Any]) -> bool:
    return bool(
        2000 >= len(description(x)) >= 100
        and x.get("title")
        and x.get("categories")
        and x.get("rating_number")
    )


def _review_ok(x: dict[str, Any]) -> bool:
    text = x.get("text")
    return bool(
        text and len(text) >= 200 and x.get("rating") and x.get("title") and x.get("timestamp")
    )


def _required(x: dict[str, Any], name: str, where: str) -> Any:
    if name not in x:
        raise ValueError(f"{where}: missing field {name!r}")
    return x[name]


def _dedup(reviews: list[dict]) -> list[dict]:
    """Most recent first (stable), first review per asin and per text kept."""
    seen_asin, seen_text, out = set(), set(), []
    for r in sorted(reviews, key=lambda r: r["timestamp"], reverse=True):
        if r["asin"] not in seen_asin and r["text"] not in seen_text:
            seen_asin.add(r["asin"])
            seen_text.add(r["text"])
            out.append(r)
    return out


def _review(x: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    keys = ("rating", "title", "text", "asin", "timestamp")
    r = {k: x[k] for k in keys}
    if text is not None:
        r["text"] = text
    return r


def rebuild_dpl(review_path: str, meta_path: str) -> tuple[dict[str, list[dict]], list[dict]]:
    """({"train", "val", "test"} -> DPL-main rows, DPL-meta rows) for one category."""
    meta = []
    for where, x in jsonl_objects(meta_path):
        asin = _required(x, "parent_asin", where)
        if _meta_ok(x):
            meta.append({"asin": asin, "title": x["title"], "description": description(x)})
    asins = {m["asin"] for m in meta}
    rows = []
    for where, x in jsonl_objects(review_path):
        user, asin = _required(x, "user_id", where), _required(x, "parent_asin", where)
        if _review_ok(x) and asin in asins:
            rows.append({"user_id": user, **_review(dict(x, asin=asin))})

    while True:  # step 2
        user_review, asin_user = defaultdict(list), defaultdict(set)
        for x in rows:
            user_review[x["user_id"]].append(_review(x))
            asin_user[x["asin"]].add(x["user_id"])
        kept_users = {
            u
            for u, rs in user_review.items()
            if MIN_USER_REVIEWS <= len(_dedup(rs)) <= MAX_USER_REVIEWS
        }
        kept_asins = {a for a, us in asin_user.items() if len(us) >= MIN_ITEM_USERS}
        new_rows = [x for x in rows if x["asin"] in kept_asins and x["user_id"] in kept_users]
        if len(new_rows) == len(rows):
            break
        rows = new_rows
    meta = [m for m in meta if m["asin"] in kept_asins]

    user_review = defaultdict(list)  # step 3
    for x in rows:
        user_review[x["user_id"]].append(_review(x, re.sub(r"\s+", " ", x["text"].strip())))
    split, profile_users = {}, defaultdict(set)
    for user, rs in user_review.items():
        rs = sorted(_dedup(rs), key=lambda r: r["timestamp"])
        split[user] = (rs[:-NUM_INPUT], rs[-NUM_INPUT:])
        for r in rs[:-NUM_INPUT]:
            profile_users[r["asin"]].add(user)

    while True:  # step 4
        counts = Counter({a: len(us) for a, us in profile_users.items()})
        good = {a for a in profile_users if counts[a] >= MIN_PROFILE_ITEM_USERS}
        new_split = {}
        for user, (prof, inputs) in split.items():
            prof = [r for r in prof if r["asin"] in good]
            if len(prof) >= MIN_PROFILE_REVIEWS:
                new_split[user] = (prof, inputs)
        profile_users = defaultdict(set)
        for user, (prof, _) in new_split.items():
            for r in prof:
                profile_users[r["asin"]].add(user)
        if len(split) == len(new_split):
            break
        split = new_split

    main: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for user, (prof, inputs) in new_split.items():
        for i in range(len(inputs) - 2):
            main["train"].append({"user_id": user, "profile": prof + inputs[:i], "data": inputs[i]})
        main["val"].append({"user_id": user, "profile": prof + inputs[:-2], "data": inputs[-2]})
        main["test"].append({"user_id": user, "profile": prof + inputs[:-1], "data": inputs[-1]})
    return main, meta
