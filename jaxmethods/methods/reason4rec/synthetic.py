"""The demo's synthetic world: users and items with latent aspect preferences, template reviews
that mention the aspects, ratings from a noisy aspect match, and rule-based teachers.

* every item has `aspects_per_item` of the `num_aspects` aspects; every user likes
  `liked_per_user` aspects and dislikes `disliked_per_user` others (neutral on the rest);
* rating = clip(round(3 + w * (#liked item aspects - #disliked item aspects) + bias_i + noise))
  with noise ~ N(0, noise²);
* a review says "love the X" / "hate the X" / "the X is ok" for each item aspect, then the
  user's tastes ("tastes : melody love, vocals hate, ...");
* the Summarizer teacher writes the authors' three fields from the latent truth;
* the reason teacher (the mock of GPT-3.5 at T = 1) names the item's aspects and the user's
  attitude to each ("it offers melody . melody love ."); unhinted it is sloppy (with probability `sloppy` it
  swaps the user's likes and dislikes), hinted it is right but sometimes quotes the rating
  ("... 4.0 stars", caught by the forbidden-string filter).

The rating is a two-hop lookup: the item's aspect (in the summaries of the item's history), then
the user's attitude to that aspect (in the user's history summaries). The direct Predictor has to
chain both hops inside one forward pass and learn them from the rating token alone; the Reasoner
writes the first hop out ("it offers melody . melody") so the second is a copy, and the
Predictor only has to read its last word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

ASPECTS = ("melody", "vocals", "lyrics", "rhythm", "bass", "tempo", "guitar", "mood")


@dataclass(frozen=True)
class SyntheticConfig:
    num_users: int = 60
    num_items: int = 24
    per_user: int = 10
    num_aspects: int = 4
    aspects_per_item: int = 1
    liked_per_user: int = 2
    disliked_per_user: int = 2
    weight: float = 1.5
    item_bias: float = 0.3
    noise: float = 0.4
    test_frac: float = 0.15
    sloppy: float = 0.4
    quote_rating: float = 0.2
    seed: int = 0


@dataclass
class World:
    train: pd.DataFrame
    test: pd.DataFrame
    item_aspects: dict[str, tuple[str, ...]]
    liked: dict[str, tuple[str, ...]]
    disliked: dict[str, tuple[str, ...]]
    cfg: SyntheticConfig


def _attitude(world_liked, world_disliked, user, aspect) -> str:
    if aspect in world_liked[user]:
        return "love"
    if aspect in world_disliked[user]:
        return "hate"
    return "ok"


def tastes(liked, disliked, user, aspects) -> str:
    """The user's attitude to every aspect, e.g. "melody love, vocals hate, lyrics ok"."""
    return ", ".join(f"{a} {_attitude(liked, disliked, user, a)}" for a in aspects)


def make_world(cfg: SyntheticConfig) -> World:
    """Interactions in the authors' columns, split chronologically (the last `test_frac`)."""
    rng = np.random.default_rng(cfg.seed)
    aspects = ASPECTS[: cfg.num_aspects]
    items = [f"I{j}" for j in range(cfg.num_items)]
    users = [f"U{u}" for u in range(cfg.num_users)]
    item_aspects = {i: tuple(sorted(rng.choice(aspects, cfg.aspects_per_item, replace=False),
                                    key=aspects.index)) for i in items}  # fmt: skip
    bias = {i: float(rng.normal(0, cfg.item_bias)) for i in items}
    liked, disliked = {}, {}
    for u in users:
        picks = rng.choice(aspects, cfg.liked_per_user + cfg.disliked_per_user, replace=False)
        liked[u] = tuple(sorted(picks[: cfg.liked_per_user], key=aspects.index))
        disliked[u] = tuple(sorted(picks[cfg.liked_per_user :], key=aspects.index))
    rows = []
    for u in users:
        for j in rng.choice(len(items), cfg.per_user, replace=False):
            i = items[j]
            att = [_attitude(liked, disliked, u, a) for a in item_aspects[i]]
            score = 3 + cfg.weight * (att.count("love") - att.count("hate")) + bias[i]
            rating = float(np.clip(np.rint(score + rng.normal(0, cfg.noise)), 1, 5))
            parts = [f"{a} the {x}" if a != "ok" else f"the {x} is ok"
                     for a, x in zip(att, item_aspects[i])]  # fmt: skip
            review = " . ".join(parts) + f" . tastes : {tastes(liked, disliked, u, aspects)} ."
            rows.append((u, i, f"s{i[1:]}", rating, review, int(rng.integers(0, 10**6))))
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "title", "ratings", "reviews",
                                     "unixReviewTime"])  # fmt: skip
    df = df.sort_values("unixReviewTime", kind="stable").reset_index(drop=True)
    n_test = round(cfg.test_frac * len(df))
    train, test = df.iloc[: len(df) - n_test], df.iloc[len(df) - n_test :]
    return World(train.reset_index(drop=True), test.reset_index(drop=True), item_aspects, liked,
                 disliked, cfg)  # fmt: skip


def teacher_summary(world: World, user: str, item: str) -> str:
    """The authors' three fields, from the latent truth."""
    att = {a: _attitude(world.liked, world.disliked, user, a) for a in world.item_aspects[item]}
    pos = [a for a, v in att.items() if v == "love"] or ["none"]
    neg = [a for a, v in att.items() if v == "hate"] or ["none"]
    return (f"Positive Aspects: {', '.join(pos)}\nNegative Aspects: {', '.join(neg)}\n"
            f"User Preference Elements: {tastes(world.liked, world.disliked, user, ASPECTS[: world.cfg.num_aspects])}")  # fmt: skip


def reason_text(world: World, user: str, item: str, liked=None, disliked=None) -> str:
    """An aspect-grounded reason: the item's aspects, then the user's attitude to each
    ("it offers melody . melody love ."); `liked` / `disliked` override the user's tastes."""
    liked = world.liked[user] if liked is None else liked
    disliked = world.disliked[user] if disliked is None else disliked
    aspects = world.item_aspects[item]
    att = [_attitude({user: liked}, {user: disliked}, user, a) for a in aspects]
    return f"it offers {' and '.join(aspects)} . " + " . ".join(
        f"{x} {a}" for a, x in zip(att, aspects)) + " ."  # fmt: skip


class RuleTeacher:
    """The rule-based mock teacher behind `FunctionClient`: `lookup` maps each prompt the run
    will send (plain and hinted reason prompts) to its (user, item); the answer depends only on
    the prompt and the request's seed, so a rerun replays it."""

    def __init__(self, world: World, lookup: dict[str, tuple[str, str]]):
        self.world, self.lookup = world, lookup

    def __call__(self, request) -> str:
        prompt = request.messages[-1]["content"]
        key = self.lookup.get(prompt)
        if key is None:
            raise KeyError(f"RuleTeacher: unknown prompt {prompt[:60]!r}")
        user, item = key
        seed = request.seed if request.seed is not None else 0
        rng = np.random.default_rng(seed)
        w = self.world
        if re.search(r"hint", prompt, flags=re.I):
            text = reason_text(w, user, item)
            if rng.random() < w.cfg.quote_rating:
                m = re.search(r"rated the item ([0-9.]+)|hint ([0-9.]+)", prompt)
                text += f" i would give it {float(m.group(1) or m.group(2)):.1f} stars ."
            return text
        if rng.random() < w.cfg.sloppy:  # a careless reading: tastes swapped
            return reason_text(w, user, item, liked=w.disliked[user], disliked=w.liked[user])
        return reason_text(w, user, item)
