"""Synthetic DPL-style users for offline demos and tests, in the DPL-main / DPL-meta layout.

A review is short: item content shared by everyone who reviews the item (its adjective, topic
and *tone word*, which its description states and every reviewer echoes) plus a per-user style
drawn independently per user: an opener (1 of 4), a characteristic word (1 of 4, written twice,
from the same pool as the items' tone words), a sign-off (1 of 4) and a length (short, or long
with one more sentence). A single review cannot tell the user's characteristic word from the
item's tone word; comparing it with the item's other reviewers (DEP's difference rows) can.
Titles (`On the <adjective> <topic>`) and ratings (uniform) carry no style, so a user's style
can reach a model only through the review texts (or their embeddings). Items are reviewed by
many users, so every profile review has peers who wrote about the same item in other styles.
Each user's reviews are chronological; DPL's split follows: profile = reviews[:-10], input =
reviews[-10:], train i = 0..7 (profile + input[:i], input[i]), val (profile + input[:-2],
input[-2]), test (profile + input[:-1], input[-1]).

    main, meta = synthetic_dpl(num_users=24)
    write_local(main, meta, "data/dep_synth", category="Books")   # data.write_local
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from jaxmethods.methods.dep.data import NUM_INPUT

TOPICS = (
    ("river", "boat"), ("castle", "knight"), ("garden", "flower"), ("space", "rocket"),
    ("kitchen", "recipe"), ("city", "street"), ("forest", "wolf"), ("ocean", "ship"),
    ("music", "guitar"), ("school", "teacher"), ("desert", "camel"), ("winter", "snow"),
)  # fmt: skip
ADJECTIVES = ("quiet", "bright", "strange", "gentle", "bold", "old", "tiny", "lost", "golden")
STYLE_WORDS = ("cozy", "gritty", "dreamy", "snappy")  # users' words and items' tone words
OPENERS = ("Honestly", "Well", "Frankly", "Wow")
SIGN_OFFS = ("Cheers.", "Trust me.", "Just my view.", "Go read it.")
LENGTHS = ("short", "long")


def _style(rng: np.random.Generator) -> dict[str, Any]:
    """One user's style, independent uniform draws: opener (4), word (4), sign-off (4),
    length (2)."""
    return {
        "opener": OPENERS[rng.integers(len(OPENERS))],
        "word": STYLE_WORDS[rng.integers(len(STYLE_WORDS))],
        "sign_off": SIGN_OFFS[rng.integers(len(SIGN_OFFS))],
        "length": LENGTHS[rng.integers(len(LENGTHS))],
    }


def review_text(style: dict, item: dict, swap: bool = False) -> str:
    """`{opener}, the {adj} {topic} is {tone} and {word}.` (the two words swapped with `swap`)
    [+ `The {topic2} steals the show.` when long] + ` {sign_off}`."""
    (t0, t1), adj, w = item["topic"], item["adjective"], style["word"]
    a, b = (w, item["tone"]) if swap else (item["tone"], w)
    text = f"{style['opener']}, the {adj} {t0} is {a} and {b}."
    if style["length"] == "long":
        text += f" The {t1} steals the show."
    return f"{text} {style['sign_off']}"


def _review(style: dict, item: dict, rng: np.random.Generator, asin: str, ts: int) -> dict:
    return {
        "rating": float(rng.integers(1, 6)),
        "title": f"On the {item['adjective']} {item['topic'][0]}",
        "text": review_text(style, item, swap=bool(rng.integers(2))),
        "asin": asin,
        "timestamp": int(ts),
    }


def synthetic_dpl(
    num_users: int = 24,
    num_items: int = 36,
    reviews_per_user: int = 20,
    seed: int = 0,
) -> tuple[dict[str, list[dict]], list[dict]]:
    """({"train", "val", "test"} -> DPL-main rows, DPL-meta rows). Users are "u000", ...;
    items "B000", ...; every user reviews `reviews_per_user` distinct items (at least 18, so
    the profile holds >= 8 reviews), chronologically. Item i's tone word is drawn with the
    seed, so another seed is another world."""
    if reviews_per_user < NUM_INPUT + 8:
        raise ValueError(f"synthetic_dpl: reviews_per_user must be >= 18, got {reviews_per_user}")
    if reviews_per_user > num_items:
        raise ValueError("synthetic_dpl: reviews_per_user exceeds num_items")
    rng = np.random.default_rng(seed)
    items = []
    for i in range(num_items):
        topic = TOPICS[i % len(TOPICS)]
        adj = ADJECTIVES[(i // len(TOPICS)) % len(ADJECTIVES)]
        tone = STYLE_WORDS[rng.integers(len(STYLE_WORDS))]
        items.append({
            "asin": f"B{i:03d}",
            "title": f"The {adj.capitalize()} {topic[0].capitalize()} #{i}",
            "description": f"A {tone} tale of a {adj} {topic[0]} and a {topic[1]}.",
            "topic": topic,
            "adjective": adj,
            "tone": tone,
        })  # fmt: skip
    main: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for u in range(num_users):
        style, uid = _style(rng), f"u{u:03d}"
        chosen = rng.choice(num_items, size=reviews_per_user, replace=False)
        times = 1_500_000_000_000 + np.cumsum(rng.integers(1, 1000, reviews_per_user)) * 86_400_000
        reviews = [
            _review(style, items[i], rng, items[i]["asin"], t + u)
            for i, t in zip(chosen, times, strict=True)
        ]
        profile, inputs = reviews[:-NUM_INPUT], reviews[-NUM_INPUT:]
        for i in range(NUM_INPUT - 2):
            main["train"].append(
                {"user_id": uid, "profile": profile + inputs[:i], "data": inputs[i]}
            )
        main["val"].append({"user_id": uid, "profile": profile + inputs[:-2], "data": inputs[-2]})
        main["test"].append({"user_id": uid, "profile": profile + inputs[:-1], "data": inputs[-1]})
    meta = [{k: it[k] for k in ("asin", "title", "description")} for it in items]
    return main, meta


def style_slots(text: str) -> dict[str, str]:
    """The style slots a review text shows (empty where it shows none): opener, words (the
    two words of `is A and B`, sorted: the item's tone and the user's word), sign-off,
    length."""
    text = text.strip()
    words = re.search(r" is (\w+) and (\w+)\.", text)
    return {
        "opener": text.split(",")[0] if "," in text else "",
        "words": " ".join(sorted(words.groups())) if words else "",
        "sign_off": next((s for s in SIGN_OFFS if text.endswith(s)), ""),
        "length": "long" if "steals the show" in text else "short",
    }
