"""The optimizer of every method, built from one config section, and HF Trainer's step arithmetic.

Schedules follow `transformers.optimization` exactly (the lr multiplier at update count `t`,
where the first update has `t = 0`, as HF steps its scheduler after the optimizer):

- linear:   t / w while t < w, then max(0, (T - t) / max(1, T - w))
- cosine:   t / w while t < w, then max(0, 0.5 * (1 + cos(pi * (t - w) / max(1, T - w))))
- constant: t / w while t < w, then 1 (HF's `constant_with_warmup`; w = 0 is plain constant)

with `w` warmup steps and `T` total steps. Weight decay skips biases and norm scales (HF
Trainer's `get_decay_parameter_names`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxmethods.train.sharding import path_str

SCHEDULES = ("linear", "cosine", "constant")
OPTIMIZERS = ("adamw", "adam", "sgd")


@dataclass(frozen=True)
class OptimConfig:
    """One optimizer section for every method.

    optimizer: "adamw" (decoupled weight decay, HF's default), "adam" (no decay) or "sgd".
    schedule / warmup_steps / warmup_ratio: as in HF `TrainingArguments` (`warmup_steps` wins
      when > 0, else `ceil(warmup_ratio * total_steps)`).
    max_grad_norm: global-norm clipping before the update; 0 disables it.
    grad_accum: micro-batches per optimizer step (scanned inside the jitted step).
    """

    optimizer: str = "adamw"
    lr: float = 1e-4
    schedule: str = "linear"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    grad_accum: int = 1
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optim.optimizer: {self.optimizer!r} is not one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule: {self.schedule!r} is not one of {SCHEDULES}")
        if self.grad_accum < 1:
            raise ValueError(f"optim.grad_accum: must be >= 1, got {self.grad_accum}")
        if self.warmup_steps < 0 or not 0.0 <= self.warmup_ratio <= 1.0:
            raise ValueError(
                f"optim.warmup_steps must be >= 0 and optim.warmup_ratio in [0, 1], got "
                f"{self.warmup_steps} and {self.warmup_ratio}"
            )


def num_warmup_steps(cfg: OptimConfig, total_steps: int) -> int:
    """HF `TrainingArguments.get_warmup_steps`: `warmup_steps`, else ceil(ratio * total)."""
    if cfg.warmup_steps > 0:
        return cfg.warmup_steps
    return math.ceil(cfg.warmup_ratio * total_steps)


def make_schedule(
    name: str, peak_lr: float, total_steps: int, warmup_steps: int = 0
) -> optax.Schedule:
    """The learning rate at update count `t` (see the module docstring for the formulas)."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule {name!r} is not one of {SCHEDULES}")
    w, total = int(warmup_steps), int(total_steps)

    def schedule(count: jax.Array) -> jax.Array:
        t = jnp.asarray(count, jnp.float32)
        warm = t / max(w, 1)
        progress = (t - w) / max(1, total - w)
        if name == "linear":
            after = jnp.maximum(0.0, (total - t) / max(1, total - w))
        elif name == "cosine":
            after = jnp.maximum(0.0, 0.5 * (1.0 + jnp.cos(jnp.pi * progress)))
        else:
            after = jnp.ones_like(t)
        return peak_lr * jnp.where(t < w, warm, after)

    return schedule


def decay_mask(params: Any) -> Any:
    """True for parameters that get weight decay: all but biases and norm scales."""

    def keep(path, _):
        name = path_str(path).lower()
        return not ("bias" in name or "norm" in name)

    return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(
    cfg: OptimConfig, total_steps: int, *, lr: float | None = None
) -> optax.GradientTransformation:
    """Clipping (when `max_grad_norm > 0`) then the optimizer with its schedule.

    `lr` overrides `cfg.lr` (e.g. a second training phase with its own rate).
    """
    peak = cfg.lr if lr is None else lr
    schedule = make_schedule(cfg.schedule, peak, total_steps, num_warmup_steps(cfg, total_steps))
    if cfg.optimizer == "adamw":
        opt = optax.adamw(
            schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay,
            mask=decay_mask,
        )  # fmt: skip
    elif cfg.optimizer == "adam":
        opt = optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    else:
        opt = optax.sgd(schedule)
    chain = [optax.clip_by_global_norm(cfg.max_grad_norm)] if cfg.max_grad_norm > 0 else []
    return optax.chain(*chain, opt)


def hf_max_steps(batches_per_epoch: int, grad_accum: int, epochs: float) -> int:
    """HF Trainer's (transformers 4.45) optimizer steps for `epochs` epochs:
    `ceil(epochs * max(floor(batches_per_epoch / grad_accum), 1))`.

    Accumulation windows run across epoch boundaries (the micro-batch counter is global), so
    there is no short final step; the trailing micro-batches of the last epoch are never used.
    """
    if grad_accum < 1 or epochs <= 0:
        raise ValueError(f"need grad_accum >= 1 and epochs > 0, got {grad_accum}, {epochs}")
    return math.ceil(epochs * max(batches_per_epoch // grad_accum, 1))
