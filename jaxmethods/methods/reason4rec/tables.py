"""The pipeline's tables: train/test interactions (synthetic or converted Parquet), the teacher
summaries, the sampled targets of the reward model and of the Reasoner/Predictor, and the
prompts of a target (`2_Reasoner/1_sample_train_data.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from jaxmethods.methods.reason4rec.config import Reason4RecConfig
from jaxmethods.methods.reason4rec.context import Context, HistoryIndex, prompt_fields
from jaxmethods.methods.reason4rec.data import read_interactions
from jaxmethods.methods.reason4rec.prompts import PromptSet
from jaxmethods.methods.reason4rec.synthetic import World, make_world, teacher_summary


@dataclass
class Tables:
    train: pd.DataFrame  # with "teacher_summary" (may be missing on real data: "")
    test: pd.DataFrame
    world: World | None = None
    counts: dict[str, float] = field(default_factory=dict)


def load_tables(cfg: Reason4RecConfig) -> Tables:
    d = cfg.data
    if d.source == "synthetic":
        world = make_world(d.synthetic)
        train, test = world.train.copy(), world.test.copy()
        train["teacher_summary"] = [teacher_summary(r, world.aspects) for r in train.reviews]
        counts = {"data/missing_reviews_train": 0.0, "data/missing_reviews_test": 0.0}
    else:
        world = None
        train, s_train = read_interactions(d.train_file)
        test, s_test = read_interactions(d.test_file)
        counts = {"data/missing_reviews_train": float(s_train.missing_reviews),
                  "data/missing_reviews_test": float(s_test.missing_reviews)}  # fmt: skip
        train["teacher_summary"] = ""
        if d.teacher_summaries_file:
            t, _ = read_interactions(d.teacher_summaries_file, drop_missing_reviews=False)
            col = "review_summary" if "review_summary" in t.columns else "aspect_preference_summary"
            keys = ["user_id", "item_id", "unixReviewTime"]
            t = t.drop_duplicates(keys)[[*keys, col]].rename(columns={col: "_t"})
            train = train.merge(t, on=keys, how="left")
            train["teacher_summary"] = train.pop("_t").fillna("")
    if d.max_test > 0:
        test = test.iloc[: d.max_test]
    counts |= {"data/train_rows": float(len(train)), "data/test_rows": float(len(test))}
    return Tables(train.reset_index(drop=True), test.reset_index(drop=True), world, counts)


def sample_targets(train: pd.DataFrame, index: HistoryIndex, cfg: Reason4RecConfig):
    """(reward rows, reasoner rows): train targets with a non-empty user and item history,
    `num_samples` of them drawn with the seed (fewer when fewer exist), `reward_samples` (scaled
    likewise) for the reward model, the rest for the Reasoner and Predictor."""
    warm = [r for r in range(len(train))
            if not index.context(train.user_id[r], train.item_id[r],
                                 train.unixReviewTime[r]).cold]  # fmt: skip
    rng = np.random.default_rng(cfg.seed)
    n = min(cfg.data.num_samples, len(warm))
    picked = rng.permutation(np.asarray(warm))[:n]
    n_rm = round(n * cfg.data.reward_samples / cfg.data.num_samples)
    return sorted(picked[:n_rm].tolist()), sorted(picked[n_rm:].tolist())


@dataclass(frozen=True)
class TargetPrompts:
    ctx: Context
    reason: str
    hint: str
    direct: str
    predictor: str  # "{analysis}" left in, to be `str.replace`d


def target_prompts(p: PromptSet, index: HistoryIndex, row, cls: str) -> TargetPrompts:
    """Every prompt of one target row (user_id, item_id, title, ratings, unixReviewTime)."""
    ctx = index.context(row.user_id, row.item_id, row.unixReviewTime)
    plain = prompt_fields(ctx, cls=cls, title=row.title, with_rating=False)
    rated = prompt_fields(ctx, cls=cls, title=row.title, with_rating=True)
    return TargetPrompts(
        ctx=ctx,
        reason=p.reasoner.format(**plain),
        hint=p.reasoner_hint.format(**rated, rating=row.ratings),
        direct=p.direct.format(**rated),
        predictor=p.predictor.format(**rated, analysis="{analysis}"),
    )
