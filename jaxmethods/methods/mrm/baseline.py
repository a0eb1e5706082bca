"""A global (non-personalized) Bradley–Terry reward model: the comparison MRM must beat.

The same reward family with K = 1 (a single linear reward on the scaled embedding), trained with
the BT loss on the train pools of all users, i.e. on every pair MRM sees for meta-training or
per-user adaptation, and evaluated with no per-user adaptation.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
from flax import nnx

from jaxmethods.data.preferences import TRAIN, PreferenceCorpus
from jaxmethods.losses import bradley_terry_loss
from jaxmethods.methods.mrm.config import BaselineConfig, ModelConfig
from jaxmethods.methods.mrm.evaluate import evaluate
from jaxmethods.methods.mrm.objective import base_rewards, split_model
from jaxmethods.models.personalized_reward import PersonalizedReward
from jaxmethods.train.mesh import data_sharding, replicated
from jaxmethods.train.meta import InnerLoopConfig
from jaxmethods.train.state import TrainState
from jaxmethods.train.step import make_train_step


def train_global_bt(
    corpus: PreferenceCorpus,
    embeddings: jax.Array,
    seen: np.ndarray,
    unseen: np.ndarray,
    model_cfg: ModelConfig,
    cfg: BaselineConfig,
    mesh,
    *,
    seed: int = 0,
    worst_frac: float = 0.1,
) -> dict:
    """Trains the global BT model and returns its seen/unseen/overall user-level accuracy."""
    model = PersonalizedReward(
        corpus.dim, (1,), scale=model_cfg.scale, use_bias=model_cfg.use_bias, rngs=nnx.Rngs(seed)
    )
    graphdef, params = split_model(model)
    tx = optax.adam(cfg.lr)

    def loss_fn(params, emb, batch, rng):
        del rng
        chosen, rejected, mask = batch
        r = lambda rows: base_rewards(graphdef, params, emb[rows])[..., 0]
        loss = bradley_terry_loss(r(chosen), r(rejected), mask)
        return loss, {}

    rep = replicated(mesh)
    step = jax.jit(
        make_train_step(loss_fn, tx),
        in_shardings=(rep, rep, data_sharding(mesh)),
        out_shardings=(rep, rep),
        donate_argnums=(0,),
    )
    state = jax.device_put(TrainState.create(params, tx, seed), rep)
    pairs = np.flatnonzero(corpus.pair_split == TRAIN)
    rng = np.random.default_rng(seed)
    bs = cfg.batch_size
    for _ in range(cfg.epochs):
        order = rng.permutation(pairs)
        for s in range(0, len(order), bs):
            idx = order[s : s + bs]
            valid = np.arange(bs) < len(idx)
            idx = np.resize(idx, bs)
            batch = (corpus.chosen[idx], corpus.rejected[idx], valid)
            state, _ = step(state, embeddings, batch)
    inner = InnerLoopConfig(steps=0)
    return evaluate(
        graphdef,
        state.params,
        embeddings,
        corpus,
        seen,
        unseen,
        inner,
        inner_steps=0,
        worst_frac=worst_frac,
    )
