"""The generic training loop shared by every method.

It owns what is the same everywhere: resume from the newest checkpoint (train state and data
iterator state), a progress bar with loss and throughput, `metrics.jsonl`, periodic checkpoints,
a NaN/Inf guard that names the step and keeps the last good checkpoint, periodic evaluation, and
a clean save-and-exit on SIGTERM. The step function and the data are the method's.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxmethods.train.checkpoint import Checkpointer
from jaxmethods.train.metrics import MetricWriter, to_python

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Raised when a step produced a NaN/Inf loss or gradient."""


class Preempted(SystemExit):
    """Raised after SIGTERM once the state is checkpointed; exits the process with code 0."""

    def __init__(self, step: int):
        super().__init__(0)
        self.step = step


class DataIterator(Protocol):
    """An iterator of host batches whose position can be saved and restored (grain-compatible)."""

    def __next__(self) -> Any: ...

    def get_state(self) -> dict: ...

    def set_state(self, state: dict) -> None: ...


def put_batch(batch: Any, sharding: Any) -> Any:
    """Host arrays (this process's share) -> global arrays laid out by `sharding`."""

    def put(x):
        if isinstance(x, jax.Array):
            return jax.device_put(x, sharding)
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(put, batch)


def restore_or_keep(
    checkpointer: Checkpointer | None, state: Any, batches: DataIterator | None = None
) -> tuple[Any, int]:
    """Restores the newest checkpoint into `state`'s shapes and shardings, if there is one.

    Returns `(state, step)`; `step` is 0 when starting fresh.
    """
    if checkpointer is None or checkpointer.latest_step() is None:
        return state, 0
    latest = checkpointer.latest_step()
    held = getattr(state, "step", None)
    if held is not None and int(jax.device_get(held)) == latest:
        # The caller continues in-process from the state it just checkpointed (e.g. one
        # `train_loop` call per epoch): nothing to re-read; the data iterator is the caller's.
        return state, latest
    state, data_state, step = checkpointer.restore(state)
    if batches is not None and data_state:
        batches.set_state(data_state)
    log.info("resumed from step %d (%s)", step, checkpointer.directory)
    return state, step


@dataclass
class LoopResult:
    state: Any
    step: int
    last_metrics: dict = field(default_factory=dict)
    last_eval: dict = field(default_factory=dict)
    resumed_from: int = 0
    train_time_s: float = 0.0


def _truncate_metrics(path: str, after_step: int) -> None:
    """Drops rows logged after the restored step, so a resumed run never repeats a step."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        rows = [line for line in f if line.strip() and json.loads(line)["step"] <= after_step]
    with open(path, "w") as f:
        f.writelines(rows)


def train_loop(
    *,
    step_fn: Callable[[Any, Any, Any], tuple[Any, dict]],
    state: Any,
    batches: Iterator | DataIterator,
    num_steps: int,
    workdir: str,
    batch_sharding: Any,
    frozen: Any = None,
    checkpointer: Checkpointer | None = None,
    log_every: int = 10,
    eval_fn: Callable[[Any, int], dict] | None = None,
    eval_every: int = 0,
    items_per_step: int | None = None,
    item_name: str = "examples",
    progress: bool = True,
    desc: str = "train",
) -> LoopResult:
    """Runs `step_fn(state, frozen, batch)` until `num_steps`, resuming where a checkpoint left off.

    The loss of step t is read back only after step t + 1 is dispatched, so the host never
    stalls the device; before each checkpoint the current step is checked, so a checkpoint
    never holds a state reached through a non-finite loss.
    """
    writer = MetricWriter(workdir)
    state, start = restore_or_keep(checkpointer, state, batches if checkpointer else None)
    _truncate_metrics(writer.path, start)
    result = LoopResult(state=state, step=start, resumed_from=start)
    if start >= num_steps:
        log.info("nothing to do: checkpoint at step %d >= num_steps %d", start, num_steps)
        return result

    stop = {"sigterm": False}
    previous = None
    if _in_main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("sigterm", True))

    bar = tqdm(
        total=num_steps,
        initial=start,
        desc=desc,
        disable=not progress or jax.process_index() != 0,
        dynamic_ncols=True,
    )
    pending: tuple[int, dict] | None = None
    t_log, s_log, t0 = time.perf_counter(), start, time.perf_counter()

    def check(step: int, metrics: dict) -> dict:
        m = to_python(jax.device_get(metrics))
        if not m.get("finite", 1):
            last = checkpointer.latest_step() if checkpointer else None
            where = f"step {last} in {checkpointer.directory}" if last is not None else "none"
            raise NonFiniteLossError(
                f"non-finite loss ({m.get('loss')}) or gradient norm ({m.get('grad_norm')}) at "
                f"step {step}; the update was skipped and training stopped. "
                f"Last good checkpoint: {where}."
            )
        return m

    def log_row(step: int, m: dict) -> None:
        nonlocal t_log, s_log
        now = time.perf_counter()
        rate = (step - s_log) / max(now - t_log, 1e-9)
        t_log, s_log = now, step
        row = {k: v for k, v in m.items() if k != "finite"}
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

    try:
        for step in range(start, num_steps):
            batch = put_batch(next(batches), batch_sharding)
            state, metrics = step_fn(state, frozen, batch)
            done = step + 1
            if pending is not None:
                m = check(*pending)
                if pending[0] % log_every == 0:
                    log_row(pending[0], m)
            pending = (done, metrics)
            bar.update(1)
            last = done == num_steps
            save_now = checkpointer is not None and (checkpointer.should_save(done) or last)
            eval_now = eval_fn is not None and (last or (eval_every and done % eval_every == 0))
            if save_now or eval_now or last or stop["sigterm"]:
                m = check(*pending)
                if done % log_every == 0 or last:
                    log_row(done, m)
                pending = None
                if save_now or (stop["sigterm"] and checkpointer is not None):
                    checkpointer.save(done, state, _data_state(batches), force=True)
                if eval_now:
                    result.last_eval = to_python(eval_fn(state, done))
                    writer.write(done, result.last_eval)
            result.state, result.step = state, done
            if stop["sigterm"]:
                if checkpointer is not None:
                    checkpointer.wait()
                log.warning("SIGTERM: saved step %d; rerun the same command to resume", done)
                raise Preempted(done)
    finally:
        bar.close()
        if checkpointer is not None:
            checkpointer.wait()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    result.train_time_s = time.perf_counter() - t0
    return result


def _data_state(batches: Any) -> dict:
    get = getattr(batches, "get_state", None)
    return to_python(get()) if get else {}


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
