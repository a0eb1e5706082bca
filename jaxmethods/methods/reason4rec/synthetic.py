"""The demo's synthetic world: users with a latent love/hate per aspect, items with one aspect
named in their title, noisy template reviews, ratings tied to the user's verdict on the item's
aspect, and rule-based teachers.

* item i has one aspect a(i) of the `num_aspects`, and its title names it ("rhythm 7");
* user u loves or hates each aspect (independent fair coins): v(u, a) in {love, hate};
* rating(u, i) = clip(round(m_v + bias_i + noise)), m_love = `love_rating` (4.5: a 4 or a 5),
  m_hate = `hate_rating` (1.5: a 1 or a 2), noise ~ N(0, noise²): a right verdict is worth
  about 3 points of rating;
* the review mentions every other aspect (in the fixed aspect order) with the user's verdict,
  each flipped with probability `mention_noise`, then the item's own aspect with the true
  verdict: "melody love , vocals hate , lyrics hate ; rhythm love";
* the Summarizer teacher (the mock of GPT-3.5) summarises what the review says, in a fixed aspect
  order: "melody love , vocals hate , lyrics hate , rhythm love";
* the reason teacher (the mock of GPT-3.5 at T = 1) writes the item's aspect and the user's true
  verdict on it ("rhythm love"); unhinted it is sloppy (with probability `sloppy` it flips the
  verdict), hinted (the hint carries the rating) it is right but sometimes quotes the rating
  ("rhythm love , 4.0 stars", caught by the forbidden-string filter).

Why the step-wise pipeline can win: the user's verdict on an aspect is not in any one review;
it has to be aggregated over the user's history summaries (a majority over their slot for the
aspect, each a noisy copy). The Reasoner learns this with token-level supervision from the
teacher's clean verdicts: it writes the aspect first (copied from the title), then the verdict,
a lookup of the tokens that follow that aspect in the history (an induction pattern that a
two-layer decoder learns fast). The direct Predictor has to learn the same lookup in one forward
pass (find the aspect, find its slots, map the verdict to a rating) from the rating token alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

ASPECTS = ("melody", "vocals", "lyrics", "rhythm", "bass", "tempo", "guitar", "mood")
VERDICTS = ("love", "hate")


@dataclass(frozen=True)
class SyntheticConfig:
    num_users: int = 60
    num_items: int = 24
    per_user: int = 10
    num_aspects: int = 4
    love_rating: float = 4.5
    hate_rating: float = 1.5
    item_bias: float = 0.2
    noise: float = 0.35
    mention_noise: float = 0.25
    test_frac: float = 0.15
    sloppy: float = 0.3
    quote_rating: float = 0.2
    seed: int = 0


@dataclass
class World:
    train: pd.DataFrame
    test: pd.DataFrame
    item_aspect: dict[str, str]
    verdicts: dict[str, dict[str, str]]  # user -> aspect -> "love" / "hate"
    cfg: SyntheticConfig

    @property
    def aspects(self) -> tuple[str, ...]:
        return ASPECTS[: self.cfg.num_aspects]


def _flip(v: str) -> str:
    return "hate" if v == "love" else "love"


def make_world(cfg: SyntheticConfig) -> World:
    """Interactions in the authors' columns, split chronologically (the last `test_frac`)."""
    if not 2 <= cfg.num_aspects <= len(ASPECTS):
        raise ValueError(f"SyntheticConfig.num_aspects={cfg.num_aspects}: 2..{len(ASPECTS)}")
    if cfg.per_user > cfg.num_items:
        raise ValueError(f"SyntheticConfig.per_user={cfg.per_user} > num_items={cfg.num_items}")
    rng = np.random.default_rng(cfg.seed)
    aspects = ASPECTS[: cfg.num_aspects]
    items = [f"I{j}" for j in range(cfg.num_items)]
    users = [f"U{u}" for u in range(cfg.num_users)]
    # Every aspect on about as many items.
    order = rng.permutation(cfg.num_items)
    item_aspect = {items[j]: aspects[k % len(aspects)] for k, j in enumerate(order)}
    bias = {i: float(rng.normal(0, cfg.item_bias)) for i in items}
    verdicts = {u: {a: VERDICTS[int(rng.integers(2))] for a in aspects} for u in users}
    rows = []
    for u in users:
        for j in rng.choice(len(items), cfg.per_user, replace=False):
            i = items[j]
            a, v = item_aspect[i], verdicts[u][item_aspect[i]]
            mean = cfg.love_rating if v == "love" else cfg.hate_rating
            rating = float(np.clip(np.rint(mean + bias[i] + rng.normal(0, cfg.noise)), 1, 5))
            others = [x for x in aspects if x != a]
            side = [f"{x} {_flip(verdicts[u][x]) if rng.random() < cfg.mention_noise else verdicts[u][x]}"
                    for x in others]  # fmt: skip
            review = " , ".join(side) + f" ; {a} {v}"
            title = f"{a} {j}"
            rows.append((u, i, title, rating, review, int(rng.integers(0, 10**6))))
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "title", "ratings", "reviews",
                                     "unixReviewTime"])  # fmt: skip
    df = df.sort_values("unixReviewTime", kind="stable").reset_index(drop=True)
    n_test = round(cfg.test_frac * len(df))
    train, test = df.iloc[: len(df) - n_test], df.iloc[len(df) - n_test :]
    return World(train.reset_index(drop=True), test.reset_index(drop=True), item_aspect,
                 verdicts, cfg)  # fmt: skip


_MENTION = re.compile(r"([a-z]+) (love|hate)")


def teacher_summary(review: str, aspects: tuple[str, ...]) -> str:
    """What the review says about each aspect, in the fixed order of `aspects` ("?" for an
    aspect it does not mention): "melody love , vocals hate , lyrics hate , rhythm love"."""
    said = dict(_MENTION.findall(review))
    return " , ".join(f"{a} {said.get(a, '?')}" for a in aspects)


def reason_text(world: World, user: str, item: str, *, flip: bool = False) -> str:
    """An aspect-grounded reason: the item's aspect and the user's verdict on it ("rhythm love");
    `flip` writes the wrong verdict (a sloppy teacher)."""
    a = world.item_aspect[item]
    v = world.verdicts[user][a]
    return f"{a} {_flip(v) if flip else v}"


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
                text += f" , {float(m.group(1) or m.group(2)):.1f} stars"
            return text
        return reason_text(w, user, item, flip=bool(rng.random() < w.cfg.sloppy))
