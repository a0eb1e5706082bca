"""MRM's meta-training objective: per-user inner adaptation of θ_w, query BT loss, RPO.

Faithful to the authors' `maml_train`: each user adapts only θ_w with `train_inner_epochs`
differentiable Adam steps from a fresh state on its support pairs; its query loss after
adaptation feeds RPO over the meta-batch; the outer step updates W and θ_w.

Efficiency: W is fixed inside the inner loop, so the base rewards φ(x) of every support/query
response are computed once per step ([T, P, K]) and the inner loop only touches K numbers per
pair. Users run in parallel (`vmap`); inner steps under `lax.scan`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.losses import bradley_terry_loss, masked_mean, rpo_objective
from jaxmethods.methods.mrm.config import MetaConfig
from jaxmethods.models.personalized_reward import PersonalizedReward, RewardWeights
from jaxmethods.train.meta import adapted_task_losses, meta_value_and_grad


def split_model(model: PersonalizedReward) -> tuple[nnx.GraphDef, dict]:
    """`(graphdef, {"theta_w": State, "base": State})`: inner and outer parameters by type."""
    graphdef, theta, base = nnx.split(model, RewardWeights, ...)
    return graphdef, {"theta_w": theta, "base": base}


def make_pair_loss(graphdef: nnx.GraphDef, base: Any) -> Callable:
    """BT loss of one user's pairs given precomputed base rewards: (θ, _, (φ_c, φ_r, mask))."""

    def pair_loss(theta, _outer, data):
        phi_c, phi_r, mask = data
        w = nnx.merge(graphdef, theta, base).weights()
        return bradley_terry_loss(phi_c @ w, phi_r @ w, mask)

    return pair_loss


def base_rewards(graphdef: nnx.GraphDef, params: dict, x: jax.Array) -> jax.Array:
    """φ(x) [..., K] for embeddings x [..., D]."""
    return nnx.merge(graphdef, params["theta_w"], params["base"]).base_rewards(x)


def adapted_query_losses(
    graphdef: nnx.GraphDef,
    meta: MetaConfig,
    theta: Any,
    base: Any,
    first_order: bool,
    batch: dict,
    embeddings: jax.Array,
) -> jax.Array:
    """[T] query BT losses after each user's inner adaptation of θ_w on its support pairs.

    Args:
      batch: `support`/`query` = (chosen [T, P], rejected [T, P], mask [T, P]) embedding rows.
      embeddings: [N, D] the frozen response embeddings.
    """
    params = {"theta_w": theta, "base": base}
    phi = lambda rows: base_rewards(graphdef, params, embeddings[rows])
    tasks = {
        split: (phi(batch[split][0]), phi(batch[split][1]), batch[split][2])
        for split in ("support", "query")
    }
    pair_loss = make_pair_loss(graphdef, base)
    return adapted_task_losses(
        theta,
        None,
        tasks,
        support_loss=pair_loss,
        query_loss=pair_loss,
        config=meta.inner,
        first_order=first_order,
    )


def meta_objective(
    graphdef: nnx.GraphDef,
    meta: MetaConfig,
    theta: Any,
    base: Any,
    first_order: bool,
    batch: dict,
    embeddings: jax.Array,
) -> tuple[jax.Array, dict]:
    """RPO over the meta-batch of adapted query losses (`task_mask` [T] marks real users)."""
    losses = adapted_query_losses(graphdef, meta, theta, base, first_order, batch, embeddings)
    mask = batch["task_mask"]
    obj = rpo_objective(losses, meta.rpo_tail_frac, meta.rpo_gamma, mask=mask)
    return obj, {"query_bt": masked_mean(losses, mask)}


def make_meta_grad_fn(graphdef: nnx.GraphDef, meta: MetaConfig) -> Callable:
    """`grad_fn(params, embeddings, batch, rng)` for `jaxmethods.train.fit` (`embeddings` [N, D]
    is the frozen response-embedding table, the trainer's `constants`)."""

    def grad_fn(params, embeddings, batch, rng):
        del rng
        objective = lambda th, b, fo: meta_objective(graphdef, meta, th, b, fo, batch, embeddings)
        (value, aux), (g_theta, g_base) = meta_value_and_grad(
            objective, params["theta_w"], params["base"], meta.hypergrad
        )
        return (value, aux), {"theta_w": g_theta, "base": g_base}

    return grad_fn


def per_user_loop_grads(
    graphdef: nnx.GraphDef, meta: MetaConfig, params: dict, batch: dict, embeddings: jax.Array
) -> tuple[jax.Array, dict]:
    """The original code's structure, for tests and the benchmark baseline: one user at a time.

    Each user's adapted query loss and its gradient come from a separate (jitted) call; RPO's
    gradient w.r.t. the stacked losses then weights the per-user gradients (the chain rule that
    autograd applies over the authors' loss buffer). Returns `(objective, grads)`.
    """
    user_fn = _user_value_and_grad(graphdef, meta)
    n_valid = int(jnp.sum(batch["task_mask"]))
    losses, grads = [], []
    for t in range(n_valid):
        task = jax.tree.map(
            lambda x, t=t: x[t], {"support": batch["support"], "query": batch["query"]}
        )
        loss, g = user_fn(params, task, embeddings)
        losses.append(loss)
        grads.append(g)
    stacked = jnp.stack(losses)
    rpo = lambda ls: rpo_objective(ls, meta.rpo_tail_frac, meta.rpo_gamma)
    obj, d_losses = jax.value_and_grad(rpo)(stacked)
    total = jax.tree.map(lambda *gs: sum(w * g for w, g in zip(d_losses, gs)), *grads)
    return obj, total


_USER_FN_CACHE: dict = {}


def _user_value_and_grad(graphdef: nnx.GraphDef, meta: MetaConfig) -> Callable:
    """A jitted `(params, task, embeddings) -> (query loss, grads)` for a single user."""
    key = (graphdef, meta)
    if key not in _USER_FN_CACHE:
        first_order = meta.hypergrad == "first_order"

        def user_loss(params, task, embeddings):
            one = jax.tree.map(lambda x: x[None], task)
            losses = adapted_query_losses(
                graphdef, meta, params["theta_w"], params["base"], first_order, one, embeddings
            )
            return losses[0]

        _USER_FN_CACHE[key] = jax.jit(jax.value_and_grad(user_loss))
    return _USER_FN_CACHE[key]
