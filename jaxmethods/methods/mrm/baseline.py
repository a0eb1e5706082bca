"""A global (non-personalized) Bradley–Terry reward model: the comparison MRM must beat.

The same reward family with K = 1 (a single linear reward on the scaled embedding), trained with
the BT loss on the train pools of all users, i.e. on every pair MRM sees for meta-training or
per-user adaptation, and evaluated with no per-user adaptation. Trained by
`jaxmethods.train.fit` over a shuffled pair stream (`jaxmethods.data.pipeline.step_stream`).
"""

from __future__ import annotations

import numpy as np
from flax import nnx

from jaxmethods.data.pipeline import step_stream
from jaxmethods.data.preferences import TRAIN
from jaxmethods.losses import bradley_terry_loss
from jaxmethods.methods.mrm.config import MRMConfig
from jaxmethods.methods.mrm.evaluate import evaluate
from jaxmethods.methods.mrm.objective import base_rewards, split_model
from jaxmethods.methods.mrm.peers import PeerContext, build, fit_on_embeddings
from jaxmethods.models.personalized_reward import PersonalizedReward
from jaxmethods.train.meta import InnerLoopConfig


def pair_collate(corpus, pairs: np.ndarray):
    """Record indices [B] (-1 = padding) -> {"chosen", "rejected": [B] embedding rows, "mask"}."""

    def collate(idx: np.ndarray) -> dict:
        valid = idx >= 0
        p = pairs[np.where(valid, idx, 0)]
        return {"chosen": corpus.chosen[p], "rejected": corpus.rejected[p], "mask": valid}

    return collate


def train_global_bt(cfg: MRMConfig, ctx: PeerContext, workdir: str) -> dict:
    """Trains the global BT model in `workdir` and returns its user-level accuracies."""
    b, corpus = cfg.baseline, ctx.corpus
    model = build(
        lambda: PersonalizedReward(
            corpus.dim, (1,), scale=cfg.model.scale, use_bias=cfg.model.use_bias,
            rngs=nnx.Rngs(ctx.seed),
        )
    )  # fmt: skip
    graphdef, params = split_model(model)

    def loss_fn(params, embeddings, batch, rng):
        del rng
        r = lambda rows: base_rewards(graphdef, params, embeddings[rows])[..., 0]
        return bradley_terry_loss(r(batch["chosen"]), r(batch["rejected"]), batch["mask"]), {}

    pairs = np.flatnonzero(corpus.pair_split == TRAIN)
    stream = step_stream(
        len(pairs), pair_collate(corpus, pairs), micro_batch_size=b.batch_size, seed=ctx.seed,
        prefetch=0,
    )  # fmt: skip
    result = fit_on_embeddings(cfg, ctx, b, params, stream, workdir, "baseline", loss_fn=loss_fn)
    return evaluate(
        graphdef,
        result.state.params,
        ctx.embeddings,
        corpus,
        ctx.seen,
        ctx.unseen,
        InnerLoopConfig(steps=0),
        inner_steps=0,
        worst_frac=cfg.eval.worst_frac,
        chunk=cfg.eval.user_chunk,
    )
