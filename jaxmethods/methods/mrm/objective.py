"""MRM's meta-training objective: per-user inner adaptation of θ_w, query BT loss, RPO.

Faithful to the authors' `maml_train`: each user adapts only θ_w with `train_inner_epochs`
differentiable Adam steps from a fresh state on its support pairs; its query loss after
adaptation feeds RPO over the meta-batch; the outer step updates W and θ_w.

Efficiency: W is fixed inside the inner loop, so the base rewards φ(x) of every support/query
response are computed once per step ([T, P, K]) and the inner loop only touches K numbers per
pair. Users run in parallel (`vmap`); inner steps under `lax.scan`. The embedding table stays
resident and is gathered once per meta-batch: only each user's distinct valid rows
(`batch["rows"]` from `MetaTaskIterator`, [T, R]) when the batch has them, else every
support/query slot in one gather. The D-wide first layer goes through `wide_matmul`
(`PersonalizedReward.base_rewards`), whose
kernel gradient is a [K, R] x [R, D] GEMM: reverse mode's own dW = Xᵀ dφ, a dot with a
[D, K] output, runs on XLA:CPU as a strided loop 10-25x slower (docs/performance.md).
"""

from __future__ import annotations

import itertools
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


def split_base_rewards(
    graphdef: nnx.GraphDef, params: dict, batch: dict, embeddings: jax.Array
) -> tuple[dict, jax.Array]:
    """φ of every support/query response from one gather per meta-batch.

    Args:
      batch: `support`/`query` = (chosen [T, P], rejected [T, P], mask [T, P]) embedding rows;
        optional `rows` [T, R]: each user's distinct rows, sorted ascending (padding repeats the
        last), covering every valid support/query slot (`MetaTaskIterator` writes it).
      embeddings: [N, D].
    Returns:
      ({"support": (φ_c [T, P, K], φ_r, mask), "query": ...}, missing [T] bool): `missing`
      marks users with a valid slot whose row is not in `rows` (never with the iterator's
      batches; the caller turns their losses into NaN rather than train on wrong rewards).
    """
    splits = ("support", "query")
    slots = [batch[s][i] for s in splits for i in (0, 1)]  # 4 x [T, P]
    masks = [batch[s][2] for s in splits for _ in (0, 1)]
    if "rows" not in batch:
        sizes = [a.shape[-1] for a in slots]
        phi = base_rewards(graphdef, params, embeddings[jnp.concatenate(slots, -1)])
        parts = jnp.split(phi, list(itertools.accumulate(sizes))[:-1], axis=-2)
        missing = jnp.zeros(slots[0].shape[:-1], bool)
    else:
        rows = batch["rows"]
        phi = base_rewards(graphdef, params, embeddings[rows])  # [T, R, K]
        parts, missing = [], jnp.zeros(rows.shape[:-1], bool)
        for slot, mask in zip(slots, masks):
            find = lambda a, v: jnp.searchsorted(a, v, method="compare_all")  # no while loop
            pos = jnp.minimum(jax.vmap(find)(rows, slot), rows.shape[-1] - 1)
            found = jnp.take_along_axis(rows, pos, axis=-1) == slot
            missing = missing | jnp.any(mask & ~found, axis=-1)
            parts.append(jnp.take_along_axis(phi, pos[..., None], axis=-2))
    tasks = {s: (parts[2 * i], parts[2 * i + 1], masks[2 * i]) for i, s in enumerate(splits)}
    return tasks, missing


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
      batch: `support`/`query` = (chosen [T, P], rejected [T, P], mask [T, P]) embedding rows,
        optionally `rows` [T, R] (see `split_base_rewards`).
      embeddings: [N, D] the frozen response embeddings.
    Returns:
      [T] losses; NaN for a user whose valid slots point at rows missing from `rows`.
    """
    params = {"theta_w": theta, "base": base}
    tasks, missing = split_base_rewards(graphdef, params, batch, embeddings)
    pair_loss = make_pair_loss(graphdef, base)
    losses = adapted_task_losses(
        theta,
        None,
        tasks,
        support_loss=pair_loss,
        query_loss=pair_loss,
        config=meta.inner,
        first_order=first_order,
    )
    return jnp.where(missing, jnp.nan, losses)


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
        keys = ("support", "query", "rows") if "rows" in batch else ("support", "query")
        task = jax.tree.map(lambda x, t=t: x[t], {k: batch[k] for k in keys})
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
