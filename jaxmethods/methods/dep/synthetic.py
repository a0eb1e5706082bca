"""Synthetic DPL-style users for offline demos and tests, in the DPL-main / DPL-meta layout.

A review is mostly item content shared by everyone who reviews the item (the topic words and
the adjective of its title and description), plus a small per-user style residual: an opener, two
characteristic words and a sign-off, drawn independently per user. Titles (`On the <adjective>
<topic>`) and ratings (uniform, independent of the user) carry no style, so a user's style can
reach a model only through the review texts (or their embeddings). Items are reviewed by many
users, so every profile review has peers who wrote about the same item in other styles. Each
user's reviews are chronological; DPL's split follows: profile = reviews[:-10], input =
reviews[-10:], train i = 0..7 (profile + input[:i], input[i]), val (profile + input[:-2],
input[-2]), test (profile + input[:-1], input[-1]).

    main, meta = synthetic_dpl(num_users=24)
    write_local(main, meta, "data/dep_synth", category="Books")   # data.write_local
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxmethods.methods.dep.data import NUM_INPUT

TOPICS = (
    ("river", "boat", "water"), ("castle", "knight", "tower"), ("garden", "flower", "seed"),
    ("space", "rocket", "star"), ("kitchen", "recipe", "spice"), ("city", "street", "night"),
    ("forest", "wolf", "trail"), ("ocean", "ship", "storm"), ("music", "guitar", "song"),
    ("school", "teacher", "lesson"), ("desert", "camel", "sand"), ("winter", "snow", "fire"),
)  # fmt: skip
ADJECTIVES = ("quiet", "bright", "strange", "gentle", "bold", "old", "tiny", "lost", "golden")
STYLE_WORDS = (
    "splendid", "awful", "cozy", "gritty", "lush", "clunky", "dreamy", "snappy", "murky",
    "zesty", "brisk", "plush", "wacky", "stark", "mellow", "jolly", "grim", "sleek",
    "frothy", "rugged", "dainty", "breezy", "soggy", "vivid",
)  # fmt: skip
OPENERS = ("Honestly", "Well", "Frankly", "Look", "Okay", "Wow", "Hmm", "So")
SIGN_OFFS = ("Cheers.", "Enough said.", "Just my view.", "Go read it.", "Trust me.", "Meh.")


def _style(rng: np.random.Generator) -> dict[str, Any]:
    """One user's style, independent draws: an opener (8), a first and a second characteristic
    word (8 each, disjoint) and a sign-off (6)."""
    half = len(STYLE_WORDS) // 3
    return {
        "words": [STYLE_WORDS[rng.integers(half)], STYLE_WORDS[half + rng.integers(half)]],
        "opener": OPENERS[rng.integers(len(OPENERS))],
        "sign_off": SIGN_OFFS[rng.integers(len(SIGN_OFFS))],
    }


def _review(style: dict, item: dict, rng: np.random.Generator, asin: str, ts: int) -> dict:
    (t0, t1, t2), adj, w = item["topic"], item["adjective"], style["words"]
    text = (
        f"{style['opener']}, this {adj} {t0} tale is {w[0]}. "
        f"The {t1} and the {t2} near the {t0} feel {w[1]}. "
        f"A {adj} tale of a {t1} and the {t2} near the {t0}. {style['sign_off']}"
    )
    return {
        "rating": float(rng.integers(1, 6)),
        "title": f"On the {adj} {t0}",
        "text": text,
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
    the profile holds >= 8 reviews), chronologically."""
    if reviews_per_user < NUM_INPUT + 8:
        raise ValueError(f"synthetic_dpl: reviews_per_user must be >= 18, got {reviews_per_user}")
    if reviews_per_user > num_items:
        raise ValueError("synthetic_dpl: reviews_per_user exceeds num_items")
    rng = np.random.default_rng(seed)
    items = []
    for i in range(num_items):
        topic = TOPICS[i % len(TOPICS)]
        adj = ADJECTIVES[(i // len(TOPICS)) % len(ADJECTIVES)]
        items.append({
            "asin": f"B{i:03d}",
            "title": f"The {adj.capitalize()} {topic[0].capitalize()} #{i}",
            "description": f"A {adj} tale of a {topic[1]} and the {topic[2]} near the {topic[0]}.",
            "topic": topic,
            "adjective": adj,
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
