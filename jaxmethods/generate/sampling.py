"""Greedy and temperature / top-k / top-p sampling with a KV cache, one jitted program.

The prompt is prefilled once, then a `lax.while_loop` picks one token per row per step and feeds
it back through the cache; the loop exits as soon as every row has emitted an EOS/stop token or
`max_new_tokens` tokens exist. Per step: scores = processors(logits); greedy takes the argmax,
sampling draws from softmax(top_p(top_k(scores / T))) with key `fold_in(rng, step)`, so a fixed
`rng` reproduces the same tokens. Rows that have finished emit `pad_token_id`.

`rng` may also hold one key per row ([B] keys, e.g. `per_request_keys(seeds)`): row b then draws
with `fold_in(rng[b], step)`, so a request's sample does not depend on its batch neighbours.
The prompt can be prefilled from embeddings (`inputs_embeds` [B, T, H], soft prompts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx, struct

from jaxmethods.generate.decoding import (
    decode_step,
    eos_array,
    is_eos,
    jit_decode_program,
    prefill,
    prepare_decode,
)
from jaxmethods.generate.processors import (
    Processor,
    apply_processors,
    combine_arrays,
    init_processor_states,
    update_processor_states,
)
from jaxmethods.generate.warpers import warp_logits


@struct.dataclass
class GenerationOutput:
    """Result of `generate`.

    Attributes:
      sequences: [B, max_new_tokens] int32 generated tokens, `pad_token_id` after a row ends.
      lengths: [B] int32 generated tokens per row, the EOS/stop token included.
      logprobs: [B, max_new_tokens] float32 log p(token) under the model's raw distribution
        (before processors and temperature), 0 after a row ends.
    """

    sequences: jax.Array
    lengths: jax.Array
    logprobs: jax.Array


@dataclasses.dataclass(frozen=True)
class _SamplingStatic:
    max_new_tokens: int
    do_sample: bool
    top_k: int
    use_top_p: bool


@struct.dataclass
class _SamplingArgs:
    """Traced settings: changing them reuses the compiled program."""

    temperature: jax.Array  # float32 scalar
    top_p: jax.Array  # float32 scalar
    eos_ids: jax.Array  # [n_eos] int32
    pad_token_id: jax.Array  # int32 scalar


@struct.dataclass
class _Carry:
    step: jax.Array
    cache: Any
    logits: jax.Array  # [B, V] float32 scores for the token chosen at `step`
    position: jax.Array  # [B] position id of the token chosen at `step`
    tokens: jax.Array  # [B, M]
    logprobs: jax.Array  # [B, M]
    finished: jax.Array  # [B] bool
    proc_states: Any


def _select(carry: _Carry, cfg: _SamplingStatic, args: _SamplingArgs, processors, rng) -> _Carry:
    """Chooses the token at `carry.step` for every row and records it."""
    scores = apply_processors(processors, carry.proc_states, carry.logits, carry.step, carry.tokens)
    if cfg.do_sample:
        warped = warp_logits(
            scores,
            temperature=args.temperature,
            top_k=cfg.top_k,
            top_p=args.top_p if cfg.use_top_p else None,
        )
        if _keys_per_row(rng):
            draw = lambda k, w: jax.random.categorical(jax.random.fold_in(k, carry.step), w)
            token = jax.vmap(draw)(rng, warped)
        else:
            token = jax.random.categorical(jax.random.fold_in(rng, carry.step), warped, axis=-1)
    else:
        token = jnp.argmax(scores, axis=-1)
    token = jnp.where(carry.finished, args.pad_token_id, token).astype(jnp.int32)
    raw_logp = jnp.take_along_axis(jax.nn.log_softmax(carry.logits), token[:, None], -1)[:, 0]
    raw_logp = jnp.where(carry.finished, 0.0, raw_logp)
    return carry.replace(
        tokens=carry.tokens.at[:, carry.step].set(token),
        logprobs=carry.logprobs.at[:, carry.step].set(raw_logp),
        finished=carry.finished | is_eos(token, args.eos_ids),
        proc_states=update_processor_states(processors, carry.proc_states, token),
    )


def _keys_per_row(rng: jax.Array) -> bool:
    """True for a batch of keys ([B] typed keys or [B, 2] raw uint32 keys), False for one key."""
    if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
        return rng.ndim == 1
    return rng.ndim == 2


def per_request_keys(seeds: Sequence[int] | Any) -> jax.Array:
    """[B] int seeds -> [B] typed PRNG keys, one per request (`generate(..., rng=keys)`)."""
    return jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))


def _check_rng_and_embeds(rng, inputs_embeds, input_ids: jax.Array, hidden: int | None) -> None:
    batch, t = input_ids.shape
    if _keys_per_row(rng) and rng.shape[0] != batch:
        raise ValueError(f"rng holds {rng.shape[0]} per-row keys for a batch of {batch} prompts")
    if inputs_embeds is None:
        return
    want = (batch, t, hidden) if hidden is not None else (batch, t)
    if inputs_embeds.ndim != 3 or tuple(inputs_embeds.shape[: len(want)]) != want:
        raise ValueError(
            f"inputs_embeds must be [B, T, H] = {want} to match input_ids, "
            f"got {tuple(inputs_embeds.shape)}"
        )


def _generate_impl(
    graphdef, proc_static, cfg: _SamplingStatic, state, input_ids, attention_mask, rng,
    args: _SamplingArgs, proc_arrays, inputs_embeds=None,
) -> GenerationOutput:  # fmt: skip
    model = nnx.merge(graphdef, state)
    processors = combine_arrays(proc_arrays, proc_static)
    batch, prompt_len = input_ids.shape
    num_new = cfg.max_new_tokens
    # The last chosen token is never fed back, so the cache needs prompt + num_new - 1 slots.
    logits, cache, position = prefill(
        model, input_ids, attention_mask, prompt_len + num_new - 1, inputs_embeds
    )
    carry = _Carry(
        step=jnp.zeros((), jnp.int32),
        cache=cache,
        logits=logits,
        position=position,
        tokens=jnp.full((batch, num_new), args.pad_token_id, jnp.int32),
        logprobs=jnp.zeros((batch, num_new), jnp.float32),
        finished=jnp.zeros((batch,), bool),
        proc_states=init_processor_states(processors, batch),
    )

    def cond(c: _Carry) -> jax.Array:
        return (c.step < num_new - 1) & ~jnp.all(c.finished)

    def body(c: _Carry) -> _Carry:
        c = _select(c, cfg, args, processors, rng)
        logits, cache = decode_step(model, c.tokens[:, c.step], c.position, c.cache)
        return c.replace(step=c.step + 1, cache=cache, logits=logits, position=c.position + 1)

    carry = jax.lax.while_loop(cond, body, carry)
    # Last token (a no-op when the loop stopped early because every row had finished).
    carry = _select(carry, cfg, args, processors, rng)
    ended = jnp.cumsum(is_eos(carry.tokens, args.eos_ids), axis=-1) > 0
    # Length = index of the first EOS + 1 (pad may equal EOS or be a real token), else num_new.
    first_eos = jnp.argmax(ended, axis=-1)
    lengths = jnp.where(ended[:, -1], first_eos + 1, num_new).astype(jnp.int32)
    return GenerationOutput(sequences=carry.tokens, lengths=lengths, logprobs=carry.logprobs)


def build_generate(
    model: nnx.Module,
    input_ids: Any,
    attention_mask: Any = None,
    *,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    rng: jax.Array | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int = 0,
    logits_processor: Processor | Sequence[Processor] | None = None,
    inputs_embeds: Any = None,
) -> tuple[Callable[..., GenerationOutput], tuple]:
    """The jitted generation function and its arguments; `fn(*args)` is `generate(...)`.

    Benchmarks use it to time `fn.lower(*args).compile()` apart from the run.
    """
    if do_sample and temperature <= 0:
        raise ValueError(f"temperature must be > 0 when do_sample=True, got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 disables it), got {top_k}")
    if do_sample and rng is None:
        raise ValueError("do_sample=True needs an explicit `rng` key (reproducible sampling)")
    d = prepare_decode(model, input_ids, attention_mask, max_new_tokens, logits_processor)
    cfg = _SamplingStatic(
        max_new_tokens=int(max_new_tokens),
        do_sample=bool(do_sample),
        top_k=int(top_k),
        use_top_p=bool(do_sample and top_p < 1.0),
    )
    traced = _SamplingArgs(
        temperature=jnp.float32(temperature),
        top_p=jnp.float32(top_p),
        eos_ids=eos_array(eos_token_id),
        pad_token_id=jnp.int32(pad_token_id),
    )
    rng = jax.random.key(0) if rng is None else jnp.asarray(rng)
    if inputs_embeds is not None:
        inputs_embeds = jnp.asarray(inputs_embeds)
    hidden = getattr(getattr(model, "config", None), "hidden_size", None)
    _check_rng_and_embeds(rng, inputs_embeds, d.input_ids, hidden)
    args = (d.state, d.input_ids, d.attention_mask, rng, traced, d.proc_arrays)
    if inputs_embeds is not None:
        args = (*args, inputs_embeds)
    return jit_decode_program(_generate_impl, d.graphdef, d.proc_static, cfg), args


def generate(
    model: nnx.Module,
    input_ids: Any,
    attention_mask: Any = None,
    *,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    rng: jax.Array | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int = 0,
    logits_processor: Processor | Sequence[Processor] | None = None,
    inputs_embeds: Any = None,
) -> GenerationOutput:
    """Greedy or sampled continuation of a batch of left-padded prompts (one jitted program).

    Args:
      model: a decoder following the `DecoderLM` contract (called with a KV cache).
      input_ids: [B, T] int prompt ids, left padded.
      attention_mask: [B, T] 1 on prompt tokens, 0 on left padding (None: no padding).
      max_new_tokens: M, the number of tokens generated per row at most.
      do_sample: False = greedy argmax; True = sample from the warped distribution.
      temperature, top_k, top_p: sampling warpers, applied in that order (top_k=0 and
        top_p=1 disable them). Changing `top_k`, `max_new_tokens`, `do_sample`, whether
        top_p < 1, the number of EOS ids or the shapes recompiles; temperature, top_p, the EOS
        and pad ids are traced values.
      rng: key for sampling (required when do_sample); step s uses `fold_in(rng, s)`. A batch
        of [B] keys (`per_request_keys(seeds)`) gives every row its own stream.
      eos_token_id: one id or several (EOS and stop tokens alike); a row ends after emitting one.
      pad_token_id: emitted after a row has ended.
      logits_processor: one processor or a list, applied in order to the raw logits each step
        before the warpers (see `jaxmethods.generate.processors`).
      inputs_embeds: [B, T, H] prompt embeddings used at prefill instead of looking up
        `input_ids` (soft prompts); `input_ids` still gives the shape and is checked.
    Returns:
      GenerationOutput(sequences [B, M], lengths [B], logprobs [B, M]).
    """
    fn, args = build_generate(
        model, input_ids, attention_mask, max_new_tokens=max_new_tokens, do_sample=do_sample,
        temperature=temperature, top_k=top_k, top_p=top_p, rng=rng, eos_token_id=eos_token_id,
        pad_token_id=pad_token_id, logits_processor=logits_processor, inputs_embeds=inputs_embeds,
    )  # fmt: skip
    return fn(*args)
