"""Synthetic DPL-style users for offline demos and tests, in the DPL-main / DPL-meta layout.

Each user has a writing style: characteristic words (an opener, intensifiers, a sign-off), a
typical review length (number of sentences) and a rating bias. Items (title + description from
a topic) are reviewed by many users, so every profile review has peers who wrote about the same
item in a different style. Each user's reviews are chronological; DPL's split follows: profile =
reviews[:-10], input = reviews[-10:], train i = 0..7 (profile + input[:i], input[i]), val
(profile + input[:-2], input[-2]), test (profile + input[:-1], input[-1]).

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


def _style(u: int, rng: np.random.Generator) -> dict[str, Any]:
    words = [STYLE_WORDS[(u * 3 + k) % len(STYLE_WORDS)] for k in range(3)]
    return {
        "words": words,
        "opener": OPENERS[u % len(OPENERS)],
        "sign_off": SIGN_OFFS[(u // len(OPENERS) + u) % len(SIGN_OFFS)],
        "sentences": 1 + u % 4,
        "rating_bias": float(rng.choice([-1.0, 0.0, 1.0])),
    }


def _review(style: dict, item: dict, rng: np.random.Generator, asin: str, ts: int) -> dict:
    topic = item["topic"]
    w = style["words"]
    sentences = [f"{style['opener']}, this {topic[0]} story is {w[0]}."]
    for k in range(style["sentences"]):
        sentences.append(f"The {topic[1 + k % 2]} feels {w[(k + 1) % 3]} and {w[k % 3]}.")
    sentences.append(style["sign_off"])
    rating = float(np.clip(round(3.0 + style["rating_bias"] + rng.integers(-1, 2)), 1, 5))
    return {
        "rating": rating,
        "title": f"{w[0].capitalize()} {topic[0]}",
        "text": " ".join(sentences),
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
        })  # fmt: skip
    main: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for u in range(num_users):
        style, uid = _style(u, rng), f"u{u:03d}"
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
