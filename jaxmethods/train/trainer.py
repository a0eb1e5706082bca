"""One way to train: the state is created, sharded, placed and the step jitted here, once.

    result = fit(loss_fn=loss, params=params, optim=cfg.optim, num_steps=n, batches=stream,
                 mesh=mesh, workdir=workdir, loop=cfg.loop, constants=base,
                 evals={"valid": Eval(valid_fn, every=steps_per_epoch)},
                 early_stopping=EarlyStopping("valid/loss", patience=2))

`loss_fn(params, constants, batch, rng) -> (loss, metrics)` is pure; `params` are trained,
`constants` (a frozen base model, a reference model, an embedding table, or None) are read only
and never donated. Methods whose gradients are not plain reverse mode pass `grad_fn` instead
(e.g. meta-learning hypergradients).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import optax
from jax.sharding import Mesh

from jaxmethods.train.checkpoint import Checkpointer
from jaxmethods.train.loop import EarlyStopping, Eval, LoopResult, train_loop
from jaxmethods.train.mesh import data_sharding
from jaxmethods.train.metrics import MetricWriter
from jaxmethods.train.optim import OptimConfig, make_optimizer
from jaxmethods.train.sharding import Rules, param_shardings
from jaxmethods.train.state import TrainState
from jaxmethods.train.step import GradFn, LossFn, jit_train_step, make_train_step, state_shardings


@dataclass(frozen=True)
class LoopConfig:
    """The loop section of every method config.

    checkpoint_every: steps between checkpoints (one is also written at the end of every phase,
      at every evaluation and on SIGTERM); async_checkpoint writes them in the background.
    metric_sinks: extra sinks beside metrics.jsonl: "tensorboard" (tensorboardX), "wandb".
    """

    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    async_checkpoint: bool = True
    log_every: int = 10
    progress: bool = True
    metric_sinks: tuple[str, ...] = ()


def make_checkpointer(loop: LoopConfig, workdir: str) -> Checkpointer | None:
    """`<workdir>/checkpoints` as `loop` describes it; None when `checkpoint_every` is 0."""
    if loop.checkpoint_every <= 0:
        return None
    return Checkpointer(
        os.path.join(workdir, "checkpoints"),
        save_every=loop.checkpoint_every,
        keep=loop.keep_checkpoints,
        async_save=loop.async_checkpoint,
    )


def shard_and_place(tree: Any, mesh: Mesh, rules: Rules = ()) -> tuple[Any, Any]:
    """`(placed tree, its shardings)` under the regex `rules` (FSDP fallback, see sharding.py)."""
    shardings = param_shardings(tree, mesh, rules)
    return jax.device_put(tree, shardings), shardings


def create_state(
    params: Any,
    tx: optax.GradientTransformation,
    mesh: Mesh,
    *,
    rules: Rules = (),
    seed: int = 0,
) -> tuple[TrainState, TrainState]:
    """A sharded `TrainState` and its shardings (optimizer moments follow their parameters)."""
    p_shard = param_shardings(params, mesh, rules)
    state = TrainState.create(params, tx, seed)
    shardings = state_shardings(state, p_shard, mesh)
    return jax.device_put(state, shardings), shardings


def compile_step(
    tx: optax.GradientTransformation,
    mesh: Mesh,
    state_shardings: Any,
    *,
    loss_fn: LossFn | None = None,
    grad_fn: GradFn | None = None,
    grad_accum: int = 1,
    constants_shardings: Any = None,
):
    """The jitted, donating `step(state, constants, batch) -> (state, metrics)`."""
    step = make_train_step(loss_fn, tx, grad_accum_steps=grad_accum, grad_fn=grad_fn)
    return jit_train_step(step, mesh, state_shardings, data_sharding(mesh), constants_shardings)


def fit(
    *,
    params: Any,
    optim: OptimConfig,
    num_steps: int,
    batches: Any,
    mesh: Mesh,
    workdir: str,
    loss_fn: LossFn | None = None,
    grad_fn: GradFn | None = None,
    constants: Any = None,
    rules: Rules = (),
    constants_rules: Rules | None = None,
    loop: LoopConfig | None = None,
    evals: Mapping[str, Eval | tuple] | None = None,
    early_stopping: EarlyStopping | None = None,
    seed: int = 0,
    lr: float | None = None,
    tx: optax.GradientTransformation | None = None,
    items_per_step: int | None = None,
    item_name: str = "examples",
    desc: str = "train",
) -> LoopResult:
    """Trains `params` for `num_steps` optimizer steps; resumable from `<workdir>/checkpoints`.

    Args:
      params: the trainable pytree (e.g. the `LoRAParam` state of an NNX model).
      optim: optimizer, schedule, clipping and gradient accumulation (`make_optimizer`), unless
        `tx` is given; `lr` overrides `optim.lr`.
      batches: a resumable iterator of global host batches (`jaxmethods.data.pipeline`); with
        `optim.grad_accum` > 1 each batch holds that many micro-batches along axis 0.
      constants: read-only inputs of the step, sharded with `constants_rules` (default `rules`).
      rules: regex sharding rules for `params`.
      loop: checkpoints, logging and progress (`LoopConfig`; checkpointing is on by default).
      evals, early_stopping: see `train_loop`.
    Returns:
      the loop's result; `result.state.params` are the trained (or best, with early stopping's
      `restore_best`) parameters.
    """
    loop = loop or LoopConfig()
    tx = tx or make_optimizer(optim, num_steps, lr=lr)
    state, shardings = create_state(params, tx, mesh, rules=rules, seed=seed)
    constants_shardings = None
    if constants is not None:
        rules_c = rules if constants_rules is None else constants_rules
        constants, constants_shardings = shard_and_place(constants, mesh, rules_c)
    step_fn = compile_step(
        tx, mesh, shardings, loss_fn=loss_fn, grad_fn=grad_fn, grad_accum=optim.grad_accum,
        constants_shardings=constants_shardings,
    )  # fmt: skip
    checkpointer = make_checkpointer(loop, workdir)
    writer = MetricWriter(workdir, sinks=loop.metric_sinks, run_name=desc)
    try:
        return train_loop(
            step_fn=step_fn, state=state, constants=constants, batches=batches,
            num_steps=num_steps, workdir=workdir, batch_sharding=data_sharding(mesh),
            checkpointer=checkpointer, evals=evals, early_stopping=early_stopping,
            log_every=loop.log_every, items_per_step=items_per_step, item_name=item_name,
            progress=loop.progress, desc=desc, writer=writer,
        )  # fmt: skip
    finally:
        writer.close()
        if checkpointer is not None:
            checkpointer.close()
