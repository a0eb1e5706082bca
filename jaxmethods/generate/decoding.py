"""Model-facing pieces shared by sampling and beam search: prompt checks, prefill, one decode step.

The model follows the decoder contract (`jaxmethods.models.DecoderLM`):
`model(ids [N, T], mask [N, T], *, positions=None, cache=KVCache) -> (logits [N, T, V], cache)`
and `model.init_cache(batch, max_len)`. Prompts are left padded, so every row's last prompt token
sits in the last column and all rows write the cache at the same slot (`cache.index`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.generate.processors import Processor, as_processor_tuple, partition_arrays


def eos_array(eos_token_id: int | Sequence[int] | None) -> jax.Array:
    """None / an id / several ids -> int32 [n_eos] (EOS and stop tokens end a row alike).

    The ids are a traced argument of the jitted loops: changing them does not recompile (only
    their number is static).
    """
    if eos_token_id is None:
        ids: list[int] = []
    elif isinstance(eos_token_id, (int, np.integer)):
        ids = [int(eos_token_id)]
    else:
        ids = [int(t) for t in eos_token_id]
    return jnp.asarray(ids, jnp.int32).reshape(len(ids))


def is_eos(tokens: jax.Array, eos_ids: jax.Array) -> jax.Array:
    """tokens [...], eos_ids [n_eos] -> bool [...], True where the token is one of `eos_ids`."""
    return jnp.any(tokens[..., None] == eos_ids, axis=-1)


def check_prompts(
    input_ids: Any, attention_mask: Any, max_new_tokens: int, vocab_size: int | None = None
) -> tuple[jax.Array, jax.Array]:
    """Validates a left-padded prompt batch on the host; returns (ids int32, mask int32) [B, T].

    Raises ValueError naming the problem: wrong rank, mismatched shapes, right padding, an
    empty prompt row, or `max_new_tokens < 1`.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    input_ids = jnp.asarray(input_ids)
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be [B, T], got shape {input_ids.shape}")
    if attention_mask is None:
        attention_mask = jnp.ones(input_ids.shape, jnp.int32)
    attention_mask = jnp.asarray(attention_mask)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {attention_mask.shape} != input_ids shape {input_ids.shape}"
        )
    if not isinstance(attention_mask, jax.core.Tracer):
        mask_np = np.asarray(attention_mask).astype(bool)
        right_padded = np.nonzero(np.any(mask_np[:, :-1] & ~mask_np[:, 1:], axis=1))[0]
        if right_padded.size:
            raise ValueError(
                f"prompts must be left padded (pad first, tokens last); row {right_padded[0]} "
                "of attention_mask has a 0 after a 1"
            )
        empty = np.nonzero(~mask_np.any(axis=1))[0]
        if empty.size:
            raise ValueError(f"prompt row {empty[0]} of attention_mask has no tokens")
    if vocab_size is not None and not isinstance(input_ids, jax.core.Tracer):
        ids_np = np.asarray(input_ids)
        if ids_np.size and (ids_np.min() < 0 or ids_np.max() >= vocab_size):
            raise ValueError(f"input_ids has ids outside [0, vocab_size={vocab_size})")
    return input_ids.astype(jnp.int32), attention_mask.astype(jnp.int32)


class DecodeInputs(NamedTuple):
    """A decoding call split for one jitted program: array pytrees are traced arguments,
    `graphdef` and `proc_static` (hashable) select the compiled program."""

    graphdef: nnx.GraphDef
    state: nnx.State
    input_ids: jax.Array  # [B, T] int32, left padded
    attention_mask: jax.Array  # [B, T] int32
    proc_arrays: list  # the processors' array leaves
    proc_static: Any  # the processors' structure and static fields


def prepare_decode(
    model: nnx.Module,
    input_ids: Any,
    attention_mask: Any,
    max_new_tokens: int,
    logits_processor: Processor | Sequence[Processor] | None,
) -> DecodeInputs:
    """Checks the prompts (`check_prompts`, ids against the model's vocabulary when it has a
    config), splits the model into (graphdef, state) and the processors into arrays + static."""
    vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
    input_ids, attention_mask = check_prompts(input_ids, attention_mask, max_new_tokens, vocab_size)
    graphdef, state = nnx.split(model)
    proc_arrays, proc_static = partition_arrays(as_processor_tuple(logits_processor))
    return DecodeInputs(graphdef, state, input_ids, attention_mask, proc_arrays, proc_static)


@functools.lru_cache(maxsize=128)
def jit_decode_program(impl: Callable, graphdef: Any, proc_static: Any, settings: Any) -> Callable:
    """One jitted program per (decoding loop `impl`, model structure, processors' static part,
    static settings): `jax.jit(partial(impl, graphdef, proc_static, settings))`.

    Every argument of the returned function is an array pytree, so `fn.lower(*args).compile()`
    yields an executable callable with the same `args` (benchmarks time compilation that way).
    """
    return jax.jit(functools.partial(impl, graphdef, proc_static, settings))


def prefill(
    model: Any,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    cache_len: int,
    inputs_embeds: jax.Array | None = None,
):
    """Runs the prompt through the model, filling a fresh cache of `cache_len` slots.

    `inputs_embeds` [B, T, H], when given, replaces the prompt's token embeddings (soft prompts;
    the model must accept an `inputs_embeds` keyword, as `DecoderLM` does).

    Returns:
      last_logits: [B, V] float32 logits for the first new token.
      cache: the KV cache after the prompt.
      next_position: [B] int32 position id of the first new token (= number of prompt tokens).
    """
    batch = input_ids.shape[0]
    cache = model.init_cache(batch, cache_len)
    embeds = {} if inputs_embeds is None else {"inputs_embeds": inputs_embeds}
    if hasattr(model, "logits_from_hidden") and hasattr(model, "model"):
        # DecoderLM: project only the last position, never the [B, T, V] prompt logits
        # (B=32, T=4096, V=150k would be 78 GB in fp32).
        hidden, cache = model.model(input_ids, attention_mask, cache=cache, **embeds)
        last = model.logits_from_hidden(hidden[:, -1])
    else:
        logits, cache = model(input_ids, attention_mask, cache=cache, **embeds)
        last = logits[:, -1]
    next_position = jnp.sum(attention_mask, axis=-1).astype(jnp.int32)
    return last.astype(jnp.float32), cache, next_position


def decode_step(model: Any, tokens: jax.Array, positions: jax.Array, cache: Any):
    """Feeds one token per row: tokens, positions [N] -> (logits [N, V] float32, cache)."""
    logits, cache = model(
        tokens[:, None],
        jnp.ones((tokens.shape[0], 1), jnp.int32),
        positions=positions[:, None],
        cache=cache,
    )
    return logits[:, -1].astype(jnp.float32), cache
