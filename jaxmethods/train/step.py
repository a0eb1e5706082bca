"""A generic jitted train step: value_and_grad of a pure loss, optax update, NaN guard.

`loss_fn(params, constants, batch, rng) -> (loss, metrics)` is pure: `params` are differentiated,
`constants` (e.g. a frozen base model, a reference model, an embedding table, or None) is not and is never donated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jaxmethods.train.mesh import replicated
from jaxmethods.train.state import TrainState

LossFn = Callable[[Any, Any, Any, jax.Array], tuple[jax.Array, dict]]
GradFn = Callable[[Any, Any, Any, jax.Array], tuple[tuple[jax.Array, dict], Any]]


def _split_microbatches(batch: Any, n: int) -> Any:
    def split(x):
        if x.shape[0] % n:
            raise ValueError(
                f"batch dimension {x.shape[0]} is not divisible by grad_accum_steps={n}"
            )
        return x.reshape(n, x.shape[0] // n, *x.shape[1:])

    return jax.tree.map(split, batch)


def make_train_step(
    loss_fn: LossFn | None,
    tx: optax.GradientTransformation,
    *,
    grad_accum_steps: int = 1,
    grad_fn: GradFn | None = None,
) -> Callable[[TrainState, Any, Any], tuple[TrainState, dict]]:
    """Returns `step(state, constants, batch) -> (state, metrics)` (not yet jitted).

    With `grad_accum_steps > 1` the batch's leading dimension is split into that many
    micro-batches, scanned with `lax.scan`; gradients and metrics are averaged.
    A non-finite loss or gradient leaves the state untouched and reports `finite = 0`, so the
    loop can stop with the last good state.

    `grad_fn(params, constants, batch, rng) -> ((loss, metrics), grads)` replaces
    `value_and_grad(loss_fn)` when gradients are not plain reverse mode (e.g. meta-learning
    hypergradients, `jaxmethods.train.meta`).
    """
    if grad_fn is None:
        if loss_fn is None:
            raise ValueError("make_train_step needs loss_fn or grad_fn")
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(state: TrainState, constants: Any, batch: Any) -> tuple[TrainState, dict]:
        rng = jax.random.fold_in(state.rng, state.step)
        if grad_accum_steps == 1:
            (loss, metrics), grads = grad_fn(state.params, constants, batch, rng)
        else:
            micro = _split_microbatches(batch, grad_accum_steps)

            def body(carry, xs):
                i, mb = xs
                (loss_i, m), g = grad_fn(state.params, constants, mb, jax.random.fold_in(rng, i))
                acc_l, acc_m, acc_g = carry
                add = lambda a, b: a + b / grad_accum_steps
                return (
                    add(acc_l, loss_i),
                    jax.tree.map(add, acc_m, m),
                    jax.tree.map(add, acc_g, g),
                ), None

            zeros_g = jax.tree.map(jnp.zeros_like, state.params)
            _, m0 = jax.eval_shape(
                grad_fn, state.params, constants, jax.tree.map(lambda x: x[0], micro), rng
            )[0]
            zeros_m = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), m0)
            idx = jnp.arange(grad_accum_steps)
            (loss, metrics, grads), _ = jax.lax.scan(
                body, (jnp.zeros((), jnp.float32), zeros_m, zeros_g), (idx, micro)
            )
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        new = TrainState(step=state.step + 1, params=params, opt_state=opt_state, rng=state.rng)
        new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state)
        metrics = dict(metrics, loss=loss, grad_norm=grad_norm, finite=finite.astype(jnp.int32))
        return new, metrics

    return step


def jit_train_step(
    step: Callable,
    mesh: Mesh,
    state_shardings: Any,
    batch_sharding: Any,
    constants_shardings: Any = None,
) -> Callable:
    """`jax.jit` with explicit in/out shardings and the state donated (argument 0).

    The step is traced under `mesh` (as an abstract mesh), so sharding constraints inside the
    loss see it: the chunked CE pins its batch axis to the data axes there
    (`jaxmethods.losses.logprobs.batch_sharding_constraint`), which keeps a vocab-sized logits
    chunk per device instead of one for the global batch under FSDP.
    """

    @functools.wraps(step)
    def step_under_mesh(*args):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return step(*args)

    return jax.jit(
        step_under_mesh,
        in_shardings=(state_shardings, constants_shardings, batch_sharding),
        out_shardings=(state_shardings, replicated(mesh)),
        donate_argnums=(0,),
    )


def state_shardings(state: TrainState, param_sharding: Any, mesh: Mesh) -> TrainState:
    """Shardings for a whole `TrainState`: optimizer moments follow their parameters.

    Every subtree of the optimizer state shaped like `params` (Adam's mu and nu, momentum, ...)
    takes `param_sharding`; everything else (counts, schedules' state) is replicated.
    """
    rep = replicated(mesh)
    params_def = jax.tree.structure(state.params)
    shapes = [getattr(x, "shape", None) for x in jax.tree.leaves(state.params)]

    def like_params(x) -> bool:
        if jax.tree.structure(x) != params_def:
            return False
        return [getattr(y, "shape", None) for y in jax.tree.leaves(x)] == shapes

    opt = jax.tree.map(
        lambda x: param_sharding if like_params(x) else rep, state.opt_state, is_leaf=like_params
    )
    return TrainState(step=rep, params=param_sharding, opt_state=opt, rng=rep)
