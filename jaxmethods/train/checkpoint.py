"""Orbax checkpoints of the train state with the data-iterator state beside it.

A thin wrapper over `orbax.checkpoint.CheckpointManager` (the V0 API): the V1 move touches only
this file. Items: "state" (any pytree of arrays, restored with its shardings) and "data" (JSON).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class MissingCheckpointError(FileNotFoundError):
    pass


class Checkpointer:
    """Saves every `save_every` steps, keeps the newest `keep`, restores the newest or a given one.

    Args:
      directory: where step folders live (created on first save).
      save_every: steps between periodic saves (`save(..., force=True)` saves regardless).
      keep: how many checkpoints to keep.
      async_save: write in a background thread (call `wait()` before exiting).
    """

    def __init__(
        self, directory: str, *, save_every: int = 100, keep: int = 3, async_save: bool = True
    ):
        self.directory = os.path.abspath(directory)
        self.save_every = max(1, int(save_every))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
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
        return list(self._manager.all_steps())

    def should_save(self, step: int) -> bool:
        return step % self.save_every == 0

    def save(self, step: int, state: Any, data_state: dict | None = None, *, force=False) -> bool:
        """Saves when `step` is a multiple of `save_every` (or `force`); returns whether it did."""
        if not (force or self.should_save(step)):
            return False
        if step in self._manager.all_steps():
            return False
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state or {})
        )
        return bool(self._manager.save(step, args=args, force=True))

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
        return restored["state"], dict(restored["data"] or {}), step

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _as_abstract(x: Any) -> Any:
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return x
