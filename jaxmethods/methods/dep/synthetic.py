"""Synthetic DPL-style users for offline demos and tests, in the DPL-main / DPL-meta layout.

A review is short: item content shared by everyone who reviews the item (its adjective, topic
and *tone word*, which its description states and every reviewer echoes) plus a per-user style
drawn independently per user: an opener (1 of 4), a characteristic word (1 of 4, from the
same pool as the items' tone words), a sign-off (1 of 4) and a length (short, or long
with one more sentence). A single review cannot tell the user's characteristic word from the
item's tone word; comparing it with the item's other reviewers (DEP's difference rows) can.
Titles (`On the <adjective> <topic>`) and ratings (uniform) carry no style, so a user's style
can reach a model only through the review texts (or their embeddings). Items are reviewed by
many users, so every profile review has peers who wrote about the same item in other styles.
Each user's reviews are chronological; DPL's split follows: profile = reviews[:-10], input =
reviews[-10:], train i = 0..7 (profile + input[:i], input[i]), val (profile + input[:-2],
input[-2]), test (profile + input[:-1], input[-1]).

World "mixed" (the default) is the above, with the two words in random order per review.
World "favourite" (the demo's): the confound DEP removes. Each user has a favourite tone F
(!= their word W) and reviews only catalogue items of tone F up to their newest three reviews,
which are new releases (items nobody reviews earlier, so without peers) of the two tones other
than F and W. In catalogue reviews the two words are in alphabetical order (`is A and B`), so
no position tells the user's from the item's. The history rows DEP feeds (the 8 most recent
reviews *with peers*: catalogue ones only) show the pair {F, W} in every review, and history
alone cannot tell which one is the user's; the item's peers (other fans of F) share the tone,
so the difference rows keep W. Every target (train i = 7, val, test) is a new release whose
tone (in the prompt's description) is neither F nor W, written tone first (`is {tone} and
{word}`; new releases never enter the soft rows, as history or as peers, so this leaves the
confound intact).

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
WORLDS = ("mixed", "favourite")
NUM_NEW = 3  # "favourite": the newest reviews (train i = 7, val and test targets) are new releases
NEW_PER_TONE = 4  # "favourite": new-release items per tone


def _style(rng: np.random.Generator) -> dict[str, Any]:
    """One user's style, independent uniform draws: opener (4), word (4), sign-off (4),
    length (2)."""
    return {
        "opener": OPENERS[rng.integers(len(OPENERS))],
        "word": STYLE_WORDS[rng.integers(len(STYLE_WORDS))],
        "sign_off": SIGN_OFFS[rng.integers(len(SIGN_OFFS))],
        "length": LENGTHS[rng.integers(len(LENGTHS))],
    }


def review_text(style: dict, item: dict, swap: bool = False, order: str = "swap") -> str:
    """`{opener}, the {adj} {topic} is {tone} and {word}.` (order "swap": the two words swapped
    with `swap`; "sorted": in alphabetical order; "tone": tone first) [+ `The {topic2} steals
    the show.` when long] + ` {sign_off}`."""
    (t0, t1), adj, w = item["topic"], item["adjective"], style["word"]
    a, b = (w, item["tone"]) if swap and order == "swap" else (item["tone"], w)
    if order == "sorted":
        a, b = sorted((a, b))
    text = f"{style['opener']}, the {adj} {t0} is {a} and {b}."
    if style["length"] == "long":
        text += f" The {t1} steals the show."
    return f"{text} {style['sign_off']}"


def _review(
    style: dict, item: dict, rng: np.random.Generator, asin: str, ts: int, order: str = "swap"
) -> dict:
    return {
        "rating": float(rng.integers(1, 6)),
        "title": f"On the {item['adjective']} {item['topic'][0]}",
        "text": review_text(style, item, swap=bool(rng.integers(2)), order=order),
        "asin": asin,
        "timestamp": int(ts),
    }


def synthetic_dpl(
    num_users: int = 24,
    num_items: int = 36,
    reviews_per_user: int = 20,
    seed: int = 0,
    world: str = "mixed",
) -> tuple[dict[str, list[dict]], list[dict]]:
    """({"train", "val", "test"} -> DPL-main rows, DPL-meta rows). Users are "u000", ...;
    items "B000", ...; every user reviews `reviews_per_user` distinct items (at least 18, so
    the profile holds >= 8 reviews), chronologically. world "mixed": item i's tone word is drawn
    with the seed (another seed is another world), users review random items and write the two
    words in random order. world "favourite" (module docstring): item i has tone
    `STYLE_WORDS[perm[(i + i // 12) % 4]]` (perm drawn with the seed: every topic and every
    adjective has every tone, so a review's content does not tell its tone); the last
    4 * NEW_PER_TONE items are
    new releases; needs (num_items - 16) / 4 >= reviews_per_user - 3 catalogue items per tone."""
    if reviews_per_user < NUM_INPUT + 8:
        raise ValueError(f"synthetic_dpl: reviews_per_user must be >= 18, got {reviews_per_user}")
    if reviews_per_user > num_items:
        raise ValueError("synthetic_dpl: reviews_per_user exceeds num_items")
    if world not in WORLDS:
        raise ValueError(f"synthetic_dpl: world {world!r} is not one of {WORLDS}")
    rng = np.random.default_rng(seed)
    n_tones, n_new = len(STYLE_WORDS), len(STYLE_WORDS) * NEW_PER_TONE
    if world == "favourite" and (num_items - n_new) // n_tones < reviews_per_user - NUM_NEW:
        raise ValueError(
            f"synthetic_dpl: world 'favourite' needs num_items >= {n_new} + {n_tones} * "
            f"(reviews_per_user - {NUM_NEW}) = {n_new + n_tones * (reviews_per_user - NUM_NEW)}, "
            f"got {num_items}"
        )
    perm = rng.permutation(n_tones) if world == "favourite" else None
    items = []
    for i in range(num_items):
        topic = TOPICS[i % len(TOPICS)]
        adj = ADJECTIVES[(i // len(TOPICS)) % len(ADJECTIVES)]
        if perm is None:
            tone = STYLE_WORDS[rng.integers(len(STYLE_WORDS))]
        else:
            tone = STYLE_WORDS[perm[(i + i // len(TOPICS)) % n_tones]]  # not the topic's
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
        if world == "mixed":
            chosen = rng.choice(num_items, size=reviews_per_user, replace=False)
        else:
            chosen = _favourite_items(style, items, reviews_per_user, n_new, rng)
        times = 1_500_000_000_000 + np.cumsum(rng.integers(1, 1000, reviews_per_user)) * 86_400_000
        orders = ["swap"] * reviews_per_user
        if world == "favourite":  # the catalogue alphabetical, the new releases tone first
            orders = ["sorted"] * (reviews_per_user - NUM_NEW) + ["tone"] * NUM_NEW
        reviews = [
            _review(style, items[i], rng, items[i]["asin"], t + u, order=o)
            for i, t, o in zip(chosen, times, orders, strict=True)
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


def _favourite_items(
    style: dict, items: list[dict], n: int, n_new: int, rng: np.random.Generator
) -> list[int]:
    """World "favourite": a favourite tone F != the user's word is drawn and stored in `style`;
    n - NUM_NEW distinct catalogue items of tone F, then NUM_NEW distinct new releases (the last
    `n_new` items) whose tone is neither F nor the word, as item indices in review order."""
    others = [w for w in STYLE_WORDS if w != style["word"]]
    style["favourite"] = fav = others[rng.integers(len(others))]
    first_new = len(items) - n_new
    catalogue = [i for i in range(first_new) if items[i]["tone"] == fav]
    new = [i for i in range(first_new, len(items)) if items[i]["tone"] not in (fav, style["word"])]
    old = rng.choice(catalogue, size=n - NUM_NEW, replace=False)
    return [*old.tolist(), *rng.choice(new, size=NUM_NEW, replace=False).tolist()]


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
