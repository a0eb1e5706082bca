"""Orbax checkpoints of the train state with the data-iterator state beside it.

A thin wrapper over `orbax.checkpoint.CheckpointManager` (the V0 API): the V1 move touches only
this file. Items: "state" (any pytree of arrays, restored with its shardings) and "data" (JSON:
the data iterator's position and the loop's own counters).

Guarantees the loop builds on:
- `save` reports a step as saved only once orbax has it (`wait()` for async saves);
- `restore_latest` falls back from a corrupt newest checkpoint to the next older one, warning
  with the step and the error, and fails with one message listing what it tried;
- the newest `keep` checkpoints are kept, plus any `protect`ed step (e.g. the best evaluation,
  for early stopping's restore-best).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class MissingCheckpointError(FileNotFoundError):
    pass


class CheckpointRestoreError(RuntimeError):
    """No checkpoint in the directory could be restored."""


class SaveFailedError(RuntimeError):
    """A checkpoint save did not complete."""


class Checkpointer:
    """Saves every `save_every` steps, keeps the newest `keep`, restores the newest good one.

    Args:
      directory: where step folders live (created on first save).
      save_every: steps between periodic saves (`save(..., force=True)` saves regardless).
      keep: how many of the newest checkpoints to keep (protected steps come on top).
      async_save: write in a background thread (`wait()` before relying on it).
    """

    def __init__(
        self, directory: str, *, save_every: int = 100, keep: int = 3, async_save: bool = True
    ):
        self.directory = os.path.abspath(directory)
        self.save_every = max(1, int(save_every))
        self.keep = max(1, int(keep))
        self.protected: set[int] = set()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None,  # pruned here, so protected steps survive
            save_interval_steps=1,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "data")
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def should_save(self, step: int) -> bool:
        return step % self.save_every == 0

    def save(self, step: int, state: Any, data_state: dict | None = None, *, force=False) -> bool:
        """Starts saving `step` when it is a multiple of `save_every` (or `force`).

        Returns whether a save was started (False when not due, or `step` already exists).
        Raises `SaveFailedError` when orbax refuses or fails to start it.
        """
        if not (force or self.should_save(step)):
            return False
        if step in self._manager.all_steps():
            return False
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state or {})
        )
        try:
            started = bool(self._manager.save(step, args=args, force=True))
        except Exception as e:
            raise SaveFailedError(f"saving step {step} to {self.directory} failed: {e}") from e
        if not started:
            raise SaveFailedError(f"orbax did not save step {step} to {self.directory}")
        self._prune(step)
        return True

    def protect(self, step: int, *, only: bool = True) -> None:
        """Keeps `step` beyond the newest `keep` (with `only`, un-protects the others)."""
        if only:
            self.protected = set()
        self.protected.add(int(step))

    def _prune(self, newest: int) -> None:
        steps = [s for s in self._manager.all_steps() if s != newest]
        recent = set(sorted(steps)[-(self.keep - 1) :]) if self.keep > 1 else set()
        for s in steps:
            if s not in recent and s not in self.protected:
                self._manager.delete(s)

    def confirm(self, step: int) -> None:
        """Waits for pending saves, then raises `SaveFailedError` unless `step` is on disk."""
        try:
            self.wait()
        except Exception as e:
            raise SaveFailedError(f"saving step {step} to {self.directory} failed: {e}") from e
        if step not in self.all_steps():
            raise SaveFailedError(f"step {step} is not among the saved steps {self.all_steps()}")

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict, int]:
        """Restores `(state, data_state, step)`; `abstract_state` holds shapes and shardings."""
        self.wait()
        step = self.latest_step() if step is None else step
        if step is None or step not in self._manager.all_steps():
            raise MissingCheckpointError(
                f"no checkpoint{'' if step is None else f' for step {step}'} in {self.directory}"
                f" (available steps: {self.all_steps()})"
            )
        abstract_state = jax.tree.map(_as_abstract, abstract_state)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
            ),
        )
        data = restored["data"]
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"the data state of step {step} is not a JSON object: {data!r}")
        return restored["state"], dict(data or {}), step

    def restore_latest(self, abstract_state: Any) -> tuple[Any, dict, int] | None:
        """The newest checkpoint that restores, older ones tried in turn; None when there are none.

        A checkpoint that fails (truncated tensors, corrupt metadata, bad JSON) is skipped with a
        warning naming the step and the error. If none restores, `CheckpointRestoreError` lists
        every step tried and how to start fresh.
        """
        self.wait()
        steps = self.all_steps()
        if not steps:
            return None
        errors = []
        for step in reversed(steps):
            try:
                return self.restore(abstract_state, step)
            except Exception as e:
                msg = _one_line(e)
                log.warning(
                    "checkpoint step %d in %s does not restore: %s", step, self.directory, msg
                )
                errors.append(f"step {step}: {msg}")
        raise CheckpointRestoreError(
            f"no checkpoint in {self.directory} restores; tried:\n  "
            + "\n  ".join(errors)
            + f"\nTo start fresh, remove {self.directory} (or use another workdir)."
        )

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _one_line(e: Exception) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def _as_abstract(x: Any) -> Any:
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return x
