"""Optimizer and the sharded training of one parameter set (unlearning or the demo's SFT)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxmethods.data.tofu import pad_examples
from jaxmethods.losses import token_mean_nll
from jaxmethods.losses.unlearning import next_token_labels
from jaxmethods.methods.baldro.config import OptimConfig
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train.checkpoint import Checkpointer
from jaxmethods.train.loop import LoopResult, train_loop
from jaxmethods.train.mesh import data_sharding
from jaxmethods.train.sharding import param_shardings
from jaxmethods.train.state import TrainState
from jaxmethods.train.step import jit_train_step, make_train_step, state_shardings


def _decay_mask(params: Any) -> Any:
    """HF Trainer's weight-decay exclusions: biases and norm scales get no decay."""

    def keep(path, _):
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        return not ("bias" in name or "norm" in name)

    return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(
    o: OptimConfig, total_steps: int, warmup_steps: int, lr: float | None = None
) -> optax.GradientTransformation:
    """AdamW with HF's linear-with-warmup (or constant) schedule after global-norm clipping."""
    lr = o.lr if lr is None else lr
    if o.schedule == "constant":
        schedule = optax.constant_schedule(lr)
    else:
        warmup = min(warmup_steps, total_steps)
        schedule = optax.join_schedules(
            [
                optax.linear_schedule(0.0, lr, max(warmup, 1)),
                optax.linear_schedule(lr, 0.0, max(total_steps - warmup, 1)),
            ],
            [warmup],
        )
    chain = [optax.clip_by_global_norm(o.max_grad_norm)] if o.max_grad_norm > 0 else []
    chain.append(
        optax.adamw(
            schedule, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay, mask=_decay_mask
        )
    )
    return optax.chain(*chain)


def shard_params(params: Any, mesh: jax.sharding.Mesh) -> tuple[Any, Any]:
    shardings = param_shardings(params, mesh, DECODER_SHARDING_RULES)
    return jax.device_put(params, shardings), shardings


def fit(
    *,
    loss_fn: Callable,
    params: Any,
    tx: optax.GradientTransformation,
    batches: Any,
    num_steps: int,
    mesh: jax.sharding.Mesh,
    workdir: str,
    grad_accum: int = 1,
    frozen: Any = None,
    seed: int = 0,
    checkpoint_every: int = 0,
    keep_checkpoints: int = 1,
    log_every: int = 10,
    progress: bool = True,
    desc: str = "train",
) -> LoopResult:
    """Trains `params` with `loss_fn(params, frozen, batch, rng)` for `num_steps` steps.

    The state is sharded with the decoder rules, the step jitted with donation; checkpoints (when
    `checkpoint_every` > 0) go to `<workdir>/checkpoints` and a rerun resumes from them.
    """
    params, p_shard = shard_params(params, mesh)
    state = TrainState.create(params, tx, seed)
    shardings = state_shardings(state, p_shard, mesh)
    state = jax.device_put(state, shardings)
    frozen_shardings = None
    if frozen is not None:
        frozen, frozen_shardings = shard_params(frozen, mesh)
    step_fn = jit_train_step(
        make_train_step(loss_fn, tx, grad_accum_steps=grad_accum),
        mesh,
        shardings,
        data_sharding(mesh),
        frozen_shardings=frozen_shardings,
    )
    checkpointer = None
    if checkpoint_every > 0:
        checkpointer = Checkpointer(
            os.path.join(workdir, "checkpoints"), save_every=checkpoint_every, keep=keep_checkpoints
        )
    try:
        return train_loop(
            step_fn=step_fn,
            state=state,
            frozen=frozen,
            batches=batches,
            num_steps=num_steps,
            workdir=workdir,
            batch_sharding=data_sharding(mesh),
            checkpointer=checkpointer,
            log_every=log_every,
            progress=progress,
            desc=desc,
        )
    finally:
        if checkpointer is not None:
            checkpointer.close()


class SFTBatches:
    """Seeded epoch-shuffled batches of QA examples for plain fine-tuning (the demo's target and
    retain models); the last partial batch is padded with empty rows."""

    def __init__(self, examples, *, batch_size: int, length: int, pad_id: int, seed: int = 0):
        self.examples, self.b, self.length, self.pad_id = examples, batch_size, length, pad_id
        self.seed, self.epoch, self.pos = seed, 0, 0
        self.per_epoch = -(-len(examples) // batch_size)

    def get_state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def set_state(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        import numpy as np

        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.examples))
        idx = order[self.pos * self.b : (self.pos + 1) * self.b]
        batch = pad_examples(
            [self.examples[i] for i in idx],
            length=self.length,
            pad_id=self.pad_id,
            batch_size=self.b,
        )
        self.pos += 1
        if self.pos == self.per_epoch:
            self.epoch, self.pos = self.epoch + 1, 0
        return batch


def sft_loss_fn(token_ce: Callable) -> Callable:
    """HF causal-LM loss (token mean over the batch's label tokens)."""

    def loss_fn(params, frozen, batch, rng):
        del frozen, rng
        ce, mask = token_ce(
            params, batch["input_ids"], batch["attention_mask"], next_token_labels(batch["labels"])
        )
        loss = token_mean_nll(ce, mask & batch["row_valid"][:, None])
        return loss, {}

    return loss_fn


def trainable_params(model: nnx.Module) -> tuple[nnx.GraphDef, Any]:
    """(graphdef, params) of a decoder without LoRA: every `nnx.Param` is trained."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    if jax.tree.leaves(rest):
        raise ValueError("BalDRO trains full weights; the model has non-Param state it can't keep")
    return graphdef, params


def copy_params(params: Any) -> Any:
    """A fresh copy (donated train states must not alias the caller's arrays)."""
    return jax.tree.map(lambda x: jnp.array(x, copy=True), params)
