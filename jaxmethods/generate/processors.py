"""Logits processors: the per-step hook of `generate` and `beam_search`.

A processor sees the `[N, V]` scores of one decoding step (N = batch rows, or batch * beams) and a
`DecodeState`, and returns new scores (usually with disallowed tokens set to -inf). Sampling and
greedy decoding pass raw logits; beam search passes log-softmax log-probs (as Hugging Face does),
so a processor that rescales log-probs (e.g. IGD) gets normalised values there.

Two forms are accepted:
  * a plain callable `fn(scores [N, V], state: DecodeState) -> scores` (stateless);
  * an object with `init_state(num_rows) -> pytree`, `__call__(scores, state) -> scores` and
    `update_state(proc_state, tokens [N]) -> pytree`; its own state is `state.processor_state`,
    a pytree whose leaves have a leading `[N]` axis (beam search reorders it with the beams).
Processors should be pytrees (e.g. `flax.struct.dataclass`) when they hold arrays, so the arrays
enter the jitted loop as arguments rather than as baked-in constants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class DecodeState:
    """What a processor can read at one decoding step.

    Attributes:
      step: int32 scalar, index of the token being chosen (0 = first new token).
      tokens: [N, max_new_tokens] int32 tokens chosen so far on each row (pad from `step` on).
      processor_state: this processor's own state (None for stateless processors), e.g.
        `TrieState(node=[N])` for `PrefixTrieConstraint`.
    """

    step: jax.Array
    tokens: jax.Array
    processor_state: Any = None


@runtime_checkable
class StatefulProcessor(Protocol):
    def init_state(self, num_rows: int) -> Any: ...

    def __call__(self, scores: jax.Array, state: DecodeState) -> jax.Array: ...

    def update_state(self, proc_state: Any, tokens: jax.Array) -> Any: ...


Processor = Callable[[jax.Array, DecodeState], jax.Array] | StatefulProcessor


def as_processor_tuple(processors: Processor | Sequence[Processor] | None) -> tuple:
    """Normalise None / one processor / a list of processors to a tuple."""
    if processors is None:
        return ()
    if isinstance(processors, (list, tuple)):
        return tuple(processors)
    return (processors,)


def init_processor_states(processors: tuple, num_rows: int) -> tuple:
    return tuple(
        p.init_state(num_rows) if isinstance(p, StatefulProcessor) else None for p in processors
    )


def apply_processors(
    processors: tuple, states: tuple, scores: jax.Array, step: jax.Array, tokens: jax.Array
) -> jax.Array:
    """Runs the processors in order: scores [N, V] -> scores [N, V]."""
    for proc, proc_state in zip(processors, states):
        scores = proc(scores, DecodeState(step=step, tokens=tokens, processor_state=proc_state))
    return scores


def update_processor_states(processors: tuple, states: tuple, tokens: jax.Array) -> tuple:
    return tuple(
        p.update_state(s, tokens) if isinstance(p, StatefulProcessor) else s
        for p, s in zip(processors, states)
    )


def take_rows(tree: Any, rows: jax.Array) -> Any:
    """Gathers the leading [N] axis of every leaf (beam reordering of processor states)."""
    return jax.tree.map(lambda x: jnp.take(x, rows, axis=0), tree)


class _Static:
    """Hashable holder of the non-array part of a pytree (a static jit argument)."""

    def __init__(self, treedef: Any, leaves: tuple):
        self.treedef, self.leaves = treedef, leaves

    def __hash__(self):
        return hash((self.treedef, self.leaves))

    def __eq__(self, other):
        return (
            isinstance(other, _Static)
            and self.treedef == other.treedef
            and self.leaves == other.leaves
        )


def partition_arrays(tree: Any) -> tuple[list, _Static]:
    """Splits a pytree into its array leaves (dynamic jit args) and the rest (static, hashable)."""
    leaves, treedef = jax.tree.flatten(tree)
    is_array = [isinstance(x, (jax.Array, np.ndarray)) for x in leaves]
    arrays = [x for x, a in zip(leaves, is_array) if a]
    static = tuple(None if a else x for x, a in zip(leaves, is_array))
    return arrays, _Static(treedef, static)


def combine_arrays(arrays: list, static: _Static) -> Any:
    it = iter(arrays)
    leaves = [next(it) if x is None else x for x in static.leaves]
    return jax.tree.unflatten(static.treedef, leaves)
