"""Host-side difficulty-aware importance sampler over DRC's stage-1 triplets (NumPy only).

    sampler = ImportanceSampler(len(triplets), SamplerConfig(formula="softmax", temperature=0.5))
    for step in range(num_steps):
        idx, w = sampler.sample(batch_size)              # [b] int64, [b] float32 = 1 / (N p)
        batch = {**gather(triplets, idx), "weight": w}
        state, metrics = train_step(state, frozen, batch)
        sampler.observe(idx, metrics["per_triplet_loss"])  # a device array: read one step late

With `fit` / `train_loop`, `SampledBatches` is the data iterator (resumable: its state is the
sampler's) and its `observe(metrics)` is called after every step with that step's metrics.

`observe` keeps the newest `lag` loss arrays unread, so reading a step's losses never waits for
the device (the step after it is already queued when they are read). The formulas are in
`jaxmethods.losses.importance_sampling`; the DRC paper's exact one is unknown [reconstruction:
verify], so the defaults below are choices, each a config field.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxmethods.losses.importance_sampling import (
    FORMULAS,
    importance_weights,
    sampling_probs,
    update_running_losses,
)

UNSEEN_POLICIES = ("max", "mean")


@dataclass(frozen=True)
class SamplerConfig:
    """How triplets are drawn from their running losses.

    formula: "softmax" (p ∝ exp(l / temperature), default), "power" (p ∝ l^alpha) or "uniform".
    temperature: of "softmax" (default 1.0: the CE losses of a tiny LM span ~0.5-5 nats).
    alpha: exponent of "power" (default 1.0: loss-proportional).
    uniform_mix: lambda, mixed-in uniform mass (default 0.1: every weight <= 1 / lambda = 10).
    momentum: EMA of each triplet's running loss (default 0.9); the first observation is
      taken as is.
    warmup_steps: uniform draws (weights 1) during the first steps (default 0).
    unseen_loss: the loss assumed for never-observed triplets: "max" (of the observed ones,
      default: unseen triplets are explored first) or "mean"; before any observation all are
      equal, i.e. uniform.
    lag: loss arrays kept unread by `observe` (default 1: no host stall when the losses are
      device arrays of the step just dispatched; 0 = read at once).
    """

    formula: str = "softmax"
    temperature: float = 1.0
    alpha: float = 1.0
    uniform_mix: float = 0.1
    momentum: float = 0.9
    warmup_steps: int = 0
    unseen_loss: str = "max"
    lag: int = 1

    def __post_init__(self):
        if self.formula not in FORMULAS:
            raise ValueError(f"SamplerConfig.formula: {self.formula!r} is not one of {FORMULAS}")
        if self.unseen_loss not in UNSEEN_POLICIES:
            raise ValueError(
                f"SamplerConfig.unseen_loss: {self.unseen_loss!r} is not one of {UNSEEN_POLICIES}"
            )
        if self.lag < 0 or self.warmup_steps < 0:
            raise ValueError("SamplerConfig: lag and warmup_steps must be >= 0")
        if self.formula == "softmax" and self.temperature <= 0:
            raise ValueError(f"SamplerConfig.temperature: must be > 0, got {self.temperature}")
        if not 0.0 <= self.uniform_mix <= 1.0:
            raise ValueError(
                f"SamplerConfig.uniform_mix: must be in [0, 1], got {self.uniform_mix}"
            )
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"SamplerConfig.momentum: must be in [0, 1), got {self.momentum}")


class ImportanceSampler:
    """Draws item indices with replacement from p(running losses) and returns 1/(N p) weights.

    Args:
      num_items: N, the number of triplets.
      cfg: the formula and its parameters.
      seed: of the NumPy generator (its state is part of `get_state`).
    """

    def __init__(self, num_items: int, cfg: SamplerConfig = SamplerConfig(), seed: int = 0):
        if num_items <= 0:
            raise ValueError(f"ImportanceSampler: num_items must be > 0, got {num_items}")
        self.cfg = cfg
        self.num_items = int(num_items)
        self.running = np.zeros((num_items,), np.float64)
        self.seen = np.zeros((num_items,), bool)
        self.steps = 0
        self._rng = np.random.default_rng(seed)
        self._pending: deque = deque()
        self._probs: np.ndarray | None = None  # cached until the running losses change
        self._cdf: np.ndarray | None = None
        self._cdf_of: np.ndarray | None = None

    def effective_losses(self) -> np.ndarray:
        """[N] running losses with unseen items filled per `cfg.unseen_loss`."""
        if not self.seen.any():
            return np.zeros_like(self.running)
        seen_vals = self.running[self.seen]
        fill = seen_vals.max() if self.cfg.unseen_loss == "max" else seen_vals.mean()
        return np.where(self.seen, self.running, fill)

    def probs(self) -> np.ndarray:
        """[N] float64, the distribution the next `sample` draws from."""
        cfg = self.cfg
        warm = self.steps < cfg.warmup_steps
        if self._probs is not None and not warm:
            return self._probs
        formula = "uniform" if warm else cfg.formula
        p = sampling_probs(
            self.effective_losses(),
            formula,
            temperature=cfg.temperature,
            alpha=cfg.alpha,
            uniform_mix=cfg.uniform_mix,
        )
        if not warm:
            self._probs = p
        return p

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices [b] int64, weights [b] float32 = 1 / (N p[indices])), drawn with replacement
        by inverting the CDF (one cumsum per change of the running losses)."""
        p = self.probs()
        if self._cdf is None or self._cdf_of is not p:
            self._cdf, self._cdf_of = np.cumsum(p), p
        u = self._rng.random(batch_size) * self._cdf[-1]
        idx = np.minimum(np.searchsorted(self._cdf, u, side="right"), self.num_items - 1)
        self.steps += 1
        return idx.astype(np.int64), importance_weights(p, idx)

    def observe(self, indices: Any, losses: Any) -> None:
        """Records the per-item losses of a batch (NumPy or device arrays, [b] each); the newest
        `cfg.lag` records are read later so a device array is read once its step finished."""
        self._pending.append((np.asarray(indices), losses))
        while len(self._pending) > self.cfg.lag:
            self._resolve(*self._pending.popleft())

    def flush(self) -> None:
        """Reads every pending record now (e.g. at the end of training)."""
        while self._pending:
            self._resolve(*self._pending.popleft())

    def _resolve(self, indices: np.ndarray, losses: Any) -> None:
        vals = np.asarray(losses, np.float64).reshape(-1)
        if vals.shape != indices.reshape(-1).shape:
            raise ValueError(
                f"ImportanceSampler.observe: {vals.shape[0]} losses for {indices.size} indices"
            )
        ok = np.isfinite(vals)
        self._probs = None
        self.running, self.seen = update_running_losses(
            self.running, self.seen, indices.reshape(-1)[ok], vals[ok], self.cfg.momentum
        )

    def get_state(self) -> dict:
        """JSON-friendly state (running losses, seen flags, step count, generator state)."""
        self.flush()
        return {
            "running": self.running.tolist(),
            "seen": self.seen.tolist(),
            "steps": self.steps,
            "rng": self._rng.bit_generator.state,
        }

    def set_state(self, state: dict) -> None:
        running = np.asarray(state["running"], np.float64)
        if running.shape != (self.num_items,):
            raise ValueError(
                f"ImportanceSampler.set_state: state has {running.shape[0]} items, "
                f"sampler has {self.num_items}"
            )
        self.running = running
        self.seen = np.asarray(state["seen"], bool)
        self.steps = int(state["steps"])
        self._rng.bit_generator.state = state["rng"]
        self._pending.clear()
        self._probs = None


class SampledBatches:
    """A resumable data iterator of importance-sampled batches (the `DataIterator` protocol of
    `jaxmethods.train.loop`).

    Args:
      sampler: the `ImportanceSampler` over the N items.
      collate: `collate(indices [b], weights [b]) -> batch dict` (host arrays; put the weights
        in the batch, e.g. as "weight", for the loss).
      batch_size: b.
      metric: the step metric holding the per-item losses [b] (default "per_triplet_loss").

    `next(it)` draws a batch and remembers its indices; `observe(metrics)` hands the oldest
    unobserved batch's losses to the sampler, once per step and in order: `jaxmethods.train.fit`
    calls it after every step when this is its `batches`. `get_state` / `set_state` checkpoint the sampler; batches drawn
    but not yet observed are dropped on restore.
    """

    def __init__(
        self,
        sampler: ImportanceSampler,
        collate: Callable[[np.ndarray, np.ndarray], dict],
        batch_size: int,
        *,
        metric: str = "per_triplet_loss",
    ):
        self.sampler, self.collate, self.batch_size, self.metric = (
            sampler,
            collate,
            batch_size,
            metric,
        )
        self._issued: deque = deque()

    def __iter__(self) -> SampledBatches:
        return self

    def __next__(self) -> dict:
        idx, w = self.sampler.sample(self.batch_size)
        self._issued.append(idx)
        return self.collate(idx, w)

    def observe(self, metrics: dict) -> None:
        if not self._issued:
            raise RuntimeError("SampledBatches.observe: no drawn batch is waiting for its losses")
        if self.metric not in metrics:
            raise KeyError(
                f"SampledBatches.observe: the step metrics have no {self.metric!r} "
                f"(keys: {sorted(metrics)}); set per_example_metrics=True in the loss config"
            )
        self.sampler.observe(self._issued.popleft(), metrics[self.metric])

    def get_state(self) -> dict:
        return {"sampler": self.sampler.get_state()}

    def set_state(self, state: dict) -> None:
        self.sampler.set_state(state["sampler"])
        self._issued.clear()
