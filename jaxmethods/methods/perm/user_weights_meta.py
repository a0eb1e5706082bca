"""Meta-learning the initialisation of per-user perspective weights (MRM's recipe), and adapting.

The inner loop, its vmap over users and the hypergradient come from `jaxmethods.train.meta`; the
pair loss is `bradley_terry_loss` and the outer objective `rpo_objective` (MRM's losses), on the
fixed perspective scores instead of MRM's learned base rewards. The whole meta-training run is
one jitted `lax.scan` over meta steps.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from jaxmethods.losses import bradley_terry_loss, rpo_objective
from jaxmethods.methods.perm.user_weights_config import (
    UserPairs,
    UserWeightsConfig,
    UserWeightsResult,
)
from jaxmethods.methods.perm.user_weights_eval import evaluate
from jaxmethods.train.mesh import batch_size_multiple, data_sharding
from jaxmethods.train.meta import adapt, adapted_task_losses, meta_value_and_grad


def user_weights(logits: jax.Array) -> jax.Array:
    """softmax over the last axis: [..., K] logits -> [..., K] weights summing to 1."""
    return jax.nn.softmax(logits, axis=-1)


def make_pair_loss(reward_scale: float):
    """`loss(θ [K], _outer, (chosen [P, K], rejected [P, K], mask [P])) -> scalar`: the BT loss of
    the rewards r = softmax(θ) · scores, with logits `reward_scale` · (r_c - r_r)."""

    def pair_loss(theta, _outer, data):
        chosen, rejected, mask = data
        w = user_weights(theta)
        return bradley_terry_loss(reward_scale * (chosen @ w), reward_scale * (rejected @ w), mask)

    return pair_loss


def meta_schedule(
    cfg: UserWeightsConfig, support: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The users and inner splits of every meta step, drawn on the host (seeded).

    Step s visits `tasks_per_batch` users (0: all) of a fresh permutation, and re-draws each one's
    support pairs into inner-support and inner-query (MRM's per-epoch re-draw): the query gets
    max(1, floor(n · val_ratio)) of the n support pairs, the inner support the rest; with fewer
    than two support pairs both are all of them.

    Args:
      support: [U, P] bool, each user's support pairs (held-out pairs are never used).
    Returns:
      users [S, T] int32 and inner_query [S, T, P] bool (the inner support is support & ~query).
    """
    rng = np.random.default_rng([seed, 2])
    n_users = support.shape[0]
    t = min(cfg.tasks_per_batch or n_users, n_users)
    users = np.stack([rng.permutation(n_users)[:t] for _ in range(cfg.meta_steps)]).astype(np.int32)
    pool = support[users]  # [S, T, P]
    noise = np.where(pool, rng.random(pool.shape), np.inf)
    rank = np.argsort(np.argsort(noise, axis=-1), axis=-1)
    n = pool.sum(-1, keepdims=True)
    n_query = np.maximum(1, np.floor(n * cfg.val_ratio)).astype(np.int64)
    query = pool & (rank < n_query)
    return users, np.where(n < 2, pool, query)


def _jit(fn, static_argnames):
    """`jax.jit` with XLA's backend optimisation off on CPU: these programs do a few thousand
    flops, so compiling dominates (level 0 halves it; the run time stays negligible)."""
    cache: dict = {}

    def call(*args, **kwargs):
        if "fn" not in cache:
            opts = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
            cache["fn"] = jax.jit(fn, static_argnames=static_argnames, compiler_options=opts)
        return cache["fn"](*args, **kwargs)

    call.__doc__, call.__name__, call.__wrapped__ = fn.__doc__, fn.__name__, fn
    return call


@functools.partial(_jit, static_argnames=("cfg",))
def _meta_train(cfg: UserWeightsConfig, theta0, chosen, rejected, support, users, inner_query):
    pair_loss = make_pair_loss(cfg.reward_scale)
    tx = optax.adam(cfg.meta_lr)

    def objective(theta, _outer, first_order, tasks):
        losses = adapted_task_losses(
            theta,
            None,
            tasks,
            support_loss=pair_loss,
            query_loss=pair_loss,
            config=cfg.inner,
            first_order=first_order,
        )
        return rpo_objective(losses, cfg.rpo_tail_frac, cfg.rpo_gamma), jnp.mean(losses)

    def step(carry, xs):
        theta, opt_state = carry
        step_users, query = xs
        pool = support[step_users]
        inner_support = jnp.where(jnp.sum(pool, -1, keepdims=True) < 2, pool, pool & ~query)
        c, r = chosen[step_users], rejected[step_users]
        tasks = {"support": (c, r, inner_support), "query": (c, r, query)}
        fn = lambda th, outer, fo: objective(th, outer, fo, tasks)
        (value, query_bt), (grad, _) = meta_value_and_grad(fn, theta, None, cfg.hypergrad)
        updates, opt_state = tx.update(grad, opt_state, theta)
        return (optax.apply_updates(theta, updates), opt_state), (value, query_bt)

    (theta, _), (values, query_bt) = jax.lax.scan(
        step, (theta0, tx.init(theta0)), (users, inner_query)
    )
    return theta, values, query_bt


@functools.partial(_jit, static_argnames=("cfg",))
def adapt_users(cfg: UserWeightsConfig, inits, chosen, rejected, support) -> jax.Array:
    """Each init adapted with `cfg.inner` on each user's support pairs (no meta-gradient).

    Args:
      inits: [M, K] initial logits; chosen, rejected: [U, P, K]; support: [U, P] bool.
    Returns:
      [M, U, K] adapted logits.
    """
    pair_loss = make_pair_loss(cfg.reward_scale)
    one = lambda theta, c, r, s: adapt(theta, None, (c, r, s), pair_loss, cfg.inner)
    per_user = jax.vmap(one, in_axes=(None, 0, 0, 0))
    return jax.vmap(per_user, in_axes=(0, None, None, None))(inits, chosen, rejected, support)


def meta_learn(cfg: UserWeightsConfig, pairs: UserPairs, mesh: Mesh | None = None):
    """See `jaxmethods.methods.perm.user_weights.meta_learn_user_weights`."""
    if tuple(pairs.perspectives) != tuple(cfg.perspectives):
        raise ValueError(
            f"pairs have perspectives {pairs.perspectives}, config has {cfg.perspectives}"
        )
    if not pairs.support.any(axis=1).all():
        bad = [pairs.users[i] for i in np.flatnonzero(~pairs.support.any(axis=1))]
        raise ValueError(
            f"user_weights: users without support pairs (nothing to adapt on): {bad[:5]}"
        )
    n_users, k = pairs.chosen.shape[0], pairs.chosen.shape[-1]
    arrays = (pairs.chosen, pairs.rejected, pairs.support)
    if mesh is not None:
        arrays = _shard_users(arrays, mesh)
    else:
        arrays = tuple(jnp.asarray(a) for a in arrays)
    rng = np.random.default_rng([cfg.seed, 3])
    theta0 = jnp.asarray(cfg.init_scale * rng.standard_normal(k), jnp.float32)
    schedule = meta_schedule(cfg, pairs.support, cfg.seed)
    start = time.perf_counter()
    theta0, values, query_bt = _meta_train(cfg, theta0, *arrays, *schedule)
    theta0 = np.asarray(theta0)
    inits = np.stack([theta0, np.zeros_like(theta0)])  # meta-learned and uniform
    adapted, from_uniform = np.asarray(adapt_users(cfg, inits, *arrays))[:, :n_users]
    seconds = time.perf_counter() - start  # compile included
    values = np.asarray(values)
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(adapted))):
        raise FloatingPointError(
            "user_weights: meta-learning produced non-finite values (RPO objective "
            f"{values[-5:]}); lower config.user_weights.meta_lr or .inner.lr, or set "
            ".inner.eps_root > 0"
        )
    logits = {"adapted": adapted, "adapted_from_uniform": from_uniform, "init": theta0}
    accuracy, table, user_table, metrics = evaluate(cfg, pairs, logits)
    metrics["user_weights/meta_seconds"] = seconds
    metrics["user_weights/meta_final_query_bt"] = float(query_bt[-1])
    weights = np.asarray(user_weights(jnp.asarray(adapted)))
    return UserWeightsResult(
        init_logits=theta0,
        user_logits=adapted,
        weights=weights,
        accuracy=accuracy,
        table=table,
        user_table=user_table,
        metrics=metrics,
        meta_losses=values,
        users=pairs.users,
        perspectives=pairs.perspectives,
    )


def _shard_users(arrays: tuple[np.ndarray, ...], mesh: Mesh) -> tuple[jax.Array, ...]:
    """Pads the user axis to a multiple of the mesh's batch axes (padding users have no pairs
    and are never drawn) and splits it over them."""
    multiple = batch_size_multiple(mesh)
    n = arrays[0].shape[0]
    pad = -n % multiple
    sharding = data_sharding(mesh)
    out = []
    for a in arrays:
        a = np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)]) if pad else a
        out.append(jax.device_put(a, sharding))
    return tuple(out)
