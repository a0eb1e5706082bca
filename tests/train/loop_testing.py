"""Helpers shared by the loop tests: deterministic regression batches and a jitted step."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmethods.train.checkpoint import Checkpointer
from jaxmethods.train.loop import train_loop
from jaxmethods.train.mesh import data_sharding, make_mesh, replicated
from jaxmethods.train.state import TrainState
from jaxmethods.train.step import jit_train_step, make_train_step


class CountingBatches:
    """Deterministic regression batches; the position is the state. Optional hooks per step."""

    def __init__(self, hooks=None, nan_at=None):
        self.pos, self.hooks, self.nan_at = 0, hooks or {}, nan_at

    def __next__(self):
        self.pos += 1
        if self.pos in self.hooks:
            self.hooks[self.pos]()
        rng = np.random.default_rng(self.pos)
        x = rng.normal(size=(8, 3)).astype(np.float32)
        y = (x @ np.array([1.0, -2.0, 0.5], np.float32)).astype(np.float32)
        if self.pos == self.nan_at:
            y[0] = np.nan
        return {"x": x, "y": y}

    def get_state(self):
        return {"pos": self.pos}

    def set_state(self, state):
        self.pos = state["pos"]


def loss_fn(params, constants, batch, rng):
    del constants, rng
    pred = batch["x"] @ params["w"]
    per_example = (pred - batch["y"]) ** 2
    return jnp.mean(per_example), {"per_example": per_example}


def setup(grad_accum=1):
    mesh = make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    tx = optax.adam(0.05)
    state = TrainState.create({"w": jnp.zeros((3,))}, tx)
    rep = jax.tree.map(lambda _: replicated(mesh), state)
    state = jax.device_put(state, rep)
    step = jit_train_step(
        make_train_step(loss_fn, tx, grad_accum_steps=grad_accum), mesh, rep, data_sharding(mesh)
    )
    return mesh, state, step


def run(workdir, num_steps, batches=None, save_every=3, grad_accum=1):
    mesh, state, step = setup(grad_accum)
    ckpt = Checkpointer(os.path.join(workdir, "ckpt"), save_every=save_every, keep=2)
    try:
        return train_loop(
            step_fn=step,
            state=state,
            batches=batches or CountingBatches(),
            num_steps=num_steps,
            workdir=workdir,
            batch_sharding=data_sharding(mesh),
            checkpointer=ckpt,
            log_every=1,
            progress=False,
        )
    finally:
        ckpt.close()


def losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [(r["step"], r["loss"]) for r in map(json.loads, f) if "loss" in r]
