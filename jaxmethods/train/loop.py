"""The generic training loop shared by every method.

It owns what is the same everywhere: resume from the newest checkpoint that restores (train
state, data-iterator state and the loop's own counters), a progress bar with loss and
throughput, `metrics.jsonl`, periodic checkpoints, evaluation hooks, early stopping with
restore-best, a NaN/Inf guard that names the step and the last good checkpoint, and SIGTERM
handling that never claims a save that did not happen. The step function and the data are the
method's.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxmethods.train.checkpoint import Checkpointer, SaveFailedError
from jaxmethods.train.metrics import MetricWriter, to_python

log = logging.getLogger(__name__)

__all__ = [
    "DataIterator",
    "EarlyStopping",
    "Eval",
    "LoopResult",
    "NonFiniteLossError",
    "Preempted",
    "SaveFailedError",
    "put_batch",
    "train_loop",
]


class NonFiniteLossError(RuntimeError):
    """Raised when a step produced a NaN/Inf loss or gradient."""


class Preempted(SystemExit):
    """Raised after SIGTERM. Exit code 0 once the state of `step` is on disk, 1 when it could
    not be saved (no checkpointer)."""

    def __init__(self, step: int, saved: bool = True):
        super().__init__(0 if saved else 1)
        self.step, self.saved = step, saved


class DataIterator(Protocol):
    """An iterator of host batches whose position can be saved and restored (grain-compatible)."""

    def __next__(self) -> Any: ...

    def get_state(self) -> dict: ...

    def set_state(self, state: dict) -> None: ...


@dataclass(frozen=True)
class Eval:
    """An evaluation hook: `fn(state, step) -> {name: number}`, logged as `<hook name>/<name>`.

    every: steps between evaluations (e.g. the steps of one epoch); 0 = only at the end.
    at_start: also evaluate the initial state at step 0 (not when resuming).
    at_end: evaluate after the last step.
    steps: further explicit steps (e.g. epoch ends that are not evenly spaced when
      accumulation windows cross epoch boundaries).
    """

    fn: Callable[[Any, int], Mapping[str, Any]]
    every: int = 0
    at_start: bool = False
    at_end: bool = True
    steps: frozenset[int] = frozenset()

    def due(self, step: int, last: bool) -> bool:
        periodic = self.every > 0 and step % self.every == 0
        return (last and self.at_end) or periodic or step in self.steps


@dataclass(frozen=True)
class EarlyStopping:
    """Stops after `patience` evaluations of `metric` (e.g. "valid/loss") without improvement by
    more than `min_delta`; with `restore_best` the result holds the best evaluated state."""

    metric: str
    mode: str = "min"
    patience: int = 1
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self):
        if self.mode not in ("min", "max"):
            raise ValueError(f"early_stopping.mode: {self.mode!r} is not 'min' or 'max'")
        if self.patience < 1:
            raise ValueError(f"early_stopping.patience: must be >= 1, got {self.patience}")

    def improved(self, value: float, best: float | None) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if best is None:
            return True
        return (
            value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta
        )


@dataclass
class LoopResult:
    state: Any
    step: int
    last_metrics: dict = field(default_factory=dict)
    last_eval: dict = field(default_factory=dict)
    eval_history: list[dict] = field(default_factory=list)
    resumed_from: int = 0
    train_time_s: float = 0.0
    best_step: int | None = None
    best_metric: float | None = None
    stopped_early: bool = False


def put_batch(batch: Any, sharding: Any) -> Any:
    """The global host batch (the same on every process) -> global arrays laid out by `sharding`.

    Each process transfers only the rows of its own devices (`global_shape` = the batch's shape
    tells JAX that the host array is the whole batch, not this process's share).
    """

    def put(x):
        if isinstance(x, jax.Array):
            return jax.device_put(x, sharding)
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, x, x.shape)

    return jax.tree.map(put, batch)


def _as_eval(hook: Eval | tuple) -> Eval:
    if isinstance(hook, Eval):
        return hook
    return Eval(*hook)


def _copy(tree: Any) -> Any:
    return jax.tree.map(lambda x: jnp.copy(x) if isinstance(x, jax.Array) else x, tree)


class _SigtermFlag:
    """Sets a flag on SIGTERM (main thread only); restores the previous handler on exit."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self) -> _SigtermFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, *_):
        self.raised = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def train_loop(
    *,
    step_fn: Callable[[Any, Any, Any], tuple[Any, dict]],
    state: Any,
    batches: Iterator | DataIterator,
    num_steps: int,
    workdir: str,
    batch_sharding: Any,
    constants: Any = None,
    checkpointer: Checkpointer | None = None,
    evals: Mapping[str, Eval | tuple] | None = None,
    early_stopping: EarlyStopping | None = None,
    log_every: int = 10,
    items_per_step: int | None = None,
    item_name: str = "examples",
    progress: bool = True,
    desc: str = "train",
    writer: MetricWriter | None = None,
) -> LoopResult:
    """Runs `step_fn(state, constants, batch)` until `num_steps`, resuming from a checkpoint.

    Args:
      step_fn: the jitted step; `state` is donated, `constants` (a frozen base, a reference model,
        an embedding table, or None) is passed through unchanged.
      evals: `{name: Eval(fn, every, at_start)}` (or `(fn, every[, at_start])` tuples).
      early_stopping: on one evaluated metric; needs `evals`.
      writer: the metric writer (default: `<workdir>/metrics.jsonl`, no extra sinks).

    A batch iterator with an `observe(metrics)` method (e.g. an importance sampler that keeps
    per-example losses) gets each step's metrics dict right after the step is dispatched, as
    device arrays: reading them is the iterator's business (one step late, so the host does
    not stall the device), and its `get_state` is checkpointed with the loop as any iterator's.

    The loss of step t is read back only after step t + 1 is dispatched, so the host never
    stalls the device; before each checkpoint the current step is checked, so a checkpoint
    never holds a state reached through a non-finite loss. On SIGTERM the loop saves at the
    next step boundary (after any running evaluation), waits until the save is on disk, and
    only then logs it and raises `Preempted` (exit code 0); without a checkpointer it says that
    nothing was saved and exits 1.
    """
    hooks = {name: _as_eval(h) for name, h in (evals or {}).items()}
    observe = getattr(batches, "observe", None)
    if early_stopping is not None and not hooks:
        raise ValueError("early_stopping needs at least one evaluation hook")
    own_writer = writer is None
    writer = writer or MetricWriter(workdir)
    loop_state: dict = {"best": None, "best_step": None, "bad": 0, "stopped_early": False}
    start = 0
    if checkpointer is not None:
        restored = checkpointer.restore_latest(state)
        if restored is not None:
            state, saved, start = restored
            if batches is not None and saved.get("data"):
                batches.set_state(saved["data"])
            loop_state.update(saved.get("loop", {}))
            if loop_state["best_step"] is not None:
                checkpointer.protect(loop_state["best_step"])
            log.info("resumed from step %d (%s)", start, checkpointer.directory)
    writer.truncate_after(start)
    result = LoopResult(state=state, step=start, resumed_from=start)
    best_copy = None

    def data_state() -> dict:
        get = getattr(batches, "get_state", None)
        return {"data": to_python(get()) if get else {}, "loop": dict(loop_state)}

    def saved_steps() -> str:
        last = checkpointer.latest_step() if checkpointer else None
        return f"step {last} in {checkpointer.directory}" if last is not None else "none"

    def check(step: int, metrics: dict) -> dict:
        m = to_python(jax.device_get(metrics))
        if not m.get("finite", 1):
            raise NonFiniteLossError(
                f"non-finite loss ({m.get('loss')}) or gradient norm ({m.get('grad_norm')}) at "
                f"step {step}; the update was skipped and training stopped. "
                f"Last good checkpoint: {saved_steps()}."
            )
        return m

    t_log, s_log = time.perf_counter(), start

    def log_row(step: int, m: dict, bar) -> None:
        nonlocal t_log, s_log
        now = time.perf_counter()
        rate = (step - s_log) / max(now - t_log, 1e-9)
        t_log, s_log = now, step
        # Per-example arrays (e.g. for an iterator's `observe`) are not logged: scalars only.
        row = {k: v for k, v in m.items() if k != "finite" and not isinstance(v, list)}
        row["steps_per_s"] = rate
        if items_per_step:
            row[f"{item_name}_per_s"] = rate * items_per_step
        writer.write(step, row)
        post = {"loss": f"{m.get('loss', float('nan')):.4g}"}
        post[f"{item_name}/s" if items_per_step else "steps/s"] = (
            f"{rate * (items_per_step or 1):.4g}"
        )
        bar.set_postfix(post)
        result.last_metrics = row

    def evaluate(names: list[str], st: Any, step: int) -> bool:
        """Runs the hooks; returns whether this step became the best (and must be saved)."""
        nonlocal best_copy
        row = {}
        for name in names:
            out = to_python(dict(hooks[name].fn(st, step)))
            row |= {f"{name}/{k}": v for k, v in out.items()}
        writer.write(step, row)
        result.last_eval = row
        result.eval_history.append({"step": step, **row})
        if early_stopping is None or early_stopping.metric not in row:
            return False
        value = row[early_stopping.metric]
        if early_stopping.improved(value, loop_state["best"]):
            loop_state.update(best=value, best_step=step, bad=0)
            if not early_stopping.restore_best:
                return False
            if checkpointer is not None:
                checkpointer.protect(step)
                return True  # saved below, so restore-best finds it
            best_copy = _copy(st)
        else:
            loop_state["bad"] += 1
            if loop_state["bad"] >= early_stopping.patience:
                loop_state["stopped_early"] = True
                log.info(
                    "early stopping at step %d: %s did not improve on %.6g (step %s) for %d "
                    "evaluations",
                    step, early_stopping.metric, loop_state["best"], loop_state["best_step"],
                    loop_state["bad"],
                )  # fmt: skip
        return False

    t0 = time.perf_counter()
    finished = start >= num_steps or loop_state["stopped_early"]
    if finished:
        log.info("nothing to train: checkpoint at step %d (num_steps %d)", start, num_steps)
    bar = tqdm(
        total=num_steps,
        initial=start,
        desc=desc,
        disable=not progress or jax.process_index() != 0 or finished,
        dynamic_ncols=True,
    )
    try:
        with _SigtermFlag() as sigterm:
            if not finished and start == 0:
                first = [n for n, h in hooks.items() if h.at_start]
                if first:
                    evaluate(first, state, 0)
            pending: tuple[int, dict] | None = None
            for step in range(start, num_steps if not finished else start):
                batch = put_batch(next(batches), batch_sharding)
                state, metrics = step_fn(state, constants, batch)
                if observe is not None:
                    observe(metrics)
                done = step + 1
                if pending is not None:
                    m = check(*pending)
                    if pending[0] % log_every == 0:
                        log_row(pending[0], m, bar)
                pending = (done, metrics)
                bar.update(1)
                last = done == num_steps
                due = [n for n, h in hooks.items() if h.due(done, last)]
                save_due = checkpointer is not None and (checkpointer.should_save(done) or last)
                saved = False
                if due or save_due or last or sigterm.raised:
                    m = check(*pending)
                    pending = None
                    if done % log_every == 0 or last:
                        log_row(done, m, bar)
                    new_best = evaluate(due, state, done) if due else False
                    stop_now = loop_state["stopped_early"] or sigterm.raised
                    if checkpointer is not None and (save_due or stop_now or new_best):
                        saved = checkpointer.save(done, state, data_state(), force=True)
                result.state, result.step = state, done
                if sigterm.raised:
                    _exit_on_sigterm(checkpointer, done, state, data_state, saved)
                if loop_state["stopped_early"]:
                    break
            if pending is not None:
                check(*pending)
    finally:
        bar.close()
        if checkpointer is not None:
            checkpointer.wait()
        if own_writer:
            writer.close()
    result.train_time_s = time.perf_counter() - t0
    result.state = state
    result.best_step, result.best_metric = loop_state["best_step"], loop_state["best"]
    result.stopped_early = bool(loop_state["stopped_early"])
    if early_stopping is not None and early_stopping.restore_best:
        result.state = _restore_best(result, checkpointer, best_copy)
    return result


def _exit_on_sigterm(checkpointer, done: int, state, data_state, saved: bool) -> None:
    if checkpointer is None:
        log.error("SIGTERM at step %d: this run has no checkpointer, so nothing was saved", done)
        raise Preempted(done, saved=False)
    if not saved and done not in checkpointer.all_steps():
        checkpointer.save(done, state, data_state(), force=True)
    checkpointer.confirm(done)  # raises SaveFailedError unless step `done` is on disk
    log.warning("SIGTERM: saved step %d; rerun the same command to resume", done)
    raise Preempted(done)


def _restore_best(result: LoopResult, checkpointer: Checkpointer | None, best_copy: Any) -> Any:
    best = result.best_step
    if best is None or best == result.step:
        return result.state
    if checkpointer is not None:
        state, _, _ = checkpointer.restore(result.state, step=best)
        log.info("restored the best evaluated state (step %d)", best)
        return state
    if best_copy is not None:
        return best_copy
    log.warning("the best state (step %d) is not available; keeping step %d", best, result.step)
    return result.state
