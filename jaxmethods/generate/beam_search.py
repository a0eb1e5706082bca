"""Beam search with a KV cache, Hugging Face semantics, one jitted program.

Per batch item K = `num_beams` running beams and K finished hypotheses are kept. At step t
(generated length L = t + 1), with s_k the running sum of log-probs of beam k:

  cand[k, v] = s_k + processors(log_softmax(logits_k))[v]        (K * V candidates)
  keep the top 2K (K * max(2, 1 + #eos)) candidates, best first;
  a candidate ending in EOS (or any candidate at the last step) is *finished*: if it ranks in
    the top K of those candidates it enters the finished set with score cand / L**length_penalty,
    and the finished set keeps its best K;
  the best K unfinished candidates become the running beams (cache and processor states follow).

The search stops (HF `early_stopping`):
  True:    once every batch item holds K finished hypotheses;
  False:   once, for every item, the best running beam cannot beat the worst finished
           hypothesis when scored at the current length (HF's default heuristic);
  "never": as False, but with a positive length_penalty the best running beam is scored at
           `max_new_tokens` (canonical beam search: no early stop while improvement is possible).
At the first step only beam 0 is live (the others start at -1e9) so beams do not duplicate.
Returned hypotheses are sorted by score; sequences hold generated tokens only, pad after EOS.
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
    take_rows,
    update_processor_states,
)

_NEG = -1.0e9  # HF's additive "removed" score (keeps arithmetic finite, unlike -inf)


@struct.dataclass
class BeamSearchOutput:
    """Result of `beam_search`.

    Attributes:
      sequences: [B, R, max_new_tokens] int32 generated tokens, best first, pad after EOS.
      scores: [B, R] float32 sum of (processed) log-probs / length**length_penalty.
      lengths: [B, R] int32 generated tokens, EOS included.
    """

    sequences: jax.Array
    scores: jax.Array
    lengths: jax.Array


@dataclasses.dataclass(frozen=True)
class _BeamStatic:
    max_new_tokens: int
    num_beams: int
    num_return_sequences: int
    num_eos: int


@struct.dataclass
class _BeamArgs:
    """Traced settings: changing them reuses the compiled program."""

    length_penalty: jax.Array  # float32 scalar
    stop_when_full: jax.Array  # bool scalar: early_stopping is True
    never_stop_early: jax.Array  # bool scalar: early_stopping == "never"
    eos_ids: jax.Array  # [n_eos] int32
    pad_token_id: jax.Array  # int32 scalar


@struct.dataclass
class _Carry:
    step: jax.Array
    cache: Any
    logits: jax.Array  # [B*K, V] float32 for the token chosen at `step`
    position: jax.Array  # [B*K]
    run_tokens: jax.Array  # [B, K, M]
    run_scores: jax.Array  # [B, K] sum of log-probs, sorted best first
    fin_tokens: jax.Array  # [B, K, M]
    fin_scores: jax.Array  # [B, K] length-penalised
    fin_lengths: jax.Array  # [B, K]
    fin_valid: jax.Array  # [B, K] bool (HF `is_sent_finished`)
    improvable: jax.Array  # [B] bool (HF `is_early_stop_heuristic_unsatisfied`)
    all_hit_stop: jax.Array  # bool scalar: every kept candidate finished at the last step
    proc_states: Any


def _gather_beams(x: jax.Array, idx: jax.Array) -> jax.Array:
    """x [B, K, ...], idx [B, K'] -> [B, K', ...]."""
    idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=1)


def _select(c: _Carry, cfg: _BeamStatic, args: _BeamArgs, processors) -> _Carry:
    """One beam step: extend, split finished/running, update the finished set and stop flags."""
    batch, k, m = c.run_tokens.shape
    vocab = c.logits.shape[-1]
    t = c.step
    logp = jax.nn.log_softmax(c.logits, axis=-1)
    logp = apply_processors(processors, c.proc_states, logp, t, c.run_tokens.reshape(batch * k, m))
    cand = (c.run_scores[:, :, None] + logp.reshape(batch, k, vocab)).reshape(batch, k * vocab)
    n_keep = min(max(2, 1 + cfg.num_eos) * k, k * vocab)
    top_scores, top_idx = jax.lax.top_k(cand, n_keep)  # [B, 2K], best first
    src_beam, token = top_idx // vocab, (top_idx % vocab).astype(jnp.int32)
    top_tokens = _gather_beams(c.run_tokens, src_beam).at[:, :, t].set(token)  # [B, 2K, M]
    hits = is_eos(token, args.eos_ids) | (t == cfg.max_new_tokens - 1)

    # Running beams for the next step: the best K candidates that did not finish.
    run_cand = top_scores + hits * _NEG
    _, next_idx = jax.lax.top_k(run_cand, k)
    run_tokens = _gather_beams(top_tokens, next_idx)
    run_scores = _gather_beams(run_cand, next_idx)
    parent = _gather_beams(src_beam, next_idx)  # [B, K]
    flat_parent = (jnp.arange(batch)[:, None] * k + parent).reshape(-1)
    chosen = _gather_beams(token, next_idx).reshape(-1)

    # Finished hypotheses: only candidates ranked in the top K may enter.
    just_finished = hits & (jnp.arange(n_keep) < k)[None, :]
    fin_cand = top_scores / (t + 1).astype(jnp.float32) ** args.length_penalty
    full = jnp.all(c.fin_valid, axis=-1, keepdims=True) & args.stop_when_full
    fin_cand = fin_cand + full * _NEG + (~c.improvable[:, None]) * _NEG + (~just_finished) * _NEG
    merged_scores = jnp.concatenate([c.fin_scores, fin_cand], axis=1)
    merged_tokens = jnp.concatenate([c.fin_tokens, top_tokens], axis=1)
    merged_lengths = jnp.concatenate(
        [c.fin_lengths, jnp.full(token.shape, t + 1, jnp.int32)], axis=1
    )
    merged_valid = jnp.concatenate([c.fin_valid, just_finished], axis=1)
    fin_scores, fin_idx = jax.lax.top_k(merged_scores, k)
    fin_valid = _gather_beams(merged_valid, fin_idx)

    # Can a running beam still beat the worst finished hypothesis?
    best_len = jnp.where(
        args.never_stop_early & (args.length_penalty > 0.0),
        jnp.float32(cfg.max_new_tokens),
        (t + 1).astype(jnp.float32),
    )
    best_running = run_scores[:, :1] / best_len**args.length_penalty
    worst_finished = jnp.where(fin_valid, jnp.min(fin_scores, axis=1, keepdims=True), _NEG)
    improvable = c.improvable & jnp.any(best_running > worst_finished, axis=-1)

    proc_states = take_rows(c.proc_states, flat_parent)
    return c.replace(
        cache=c.cache.take(flat_parent),
        position=c.position[flat_parent],
        run_tokens=run_tokens,
        run_scores=run_scores,
        fin_tokens=_gather_beams(merged_tokens, fin_idx),
        fin_scores=fin_scores,
        fin_lengths=_gather_beams(merged_lengths, fin_idx),
        fin_valid=fin_valid,
        improvable=improvable,
        all_hit_stop=jnp.all(hits),
        proc_states=update_processor_states(processors, proc_states, chosen),
    )


def _searching(c: _Carry, args: _BeamArgs) -> jax.Array:
    """HF `_beam_search_has_unfinished_sequences`."""
    open_beam = ~(jnp.all(c.fin_valid) & args.stop_when_full)
    return jnp.any(c.improvable) & open_beam & ~c.all_hit_stop


def _beam_search_impl(
    graphdef, proc_static, cfg: _BeamStatic, state, input_ids, attention_mask, args: _BeamArgs,
    proc_arrays,
) -> BeamSearchOutput:  # fmt: skip
    model = nnx.merge(graphdef, state)
    processors = combine_arrays(proc_arrays, proc_static)
    batch, prompt_len = input_ids.shape
    k, m = cfg.num_beams, cfg.max_new_tokens
    logits, cache, position = prefill(model, input_ids, attention_mask, prompt_len + m - 1)
    # The prompt is prefilled once per batch item, then copied to its K beams.
    rows = jnp.repeat(jnp.arange(batch), k)
    pad_tokens = jnp.full((batch, k, m), args.pad_token_id, jnp.int32)
    carry = _Carry(
        step=jnp.zeros((), jnp.int32),
        cache=cache.take(rows),
        logits=logits[rows],
        position=position[rows],
        run_tokens=pad_tokens,
        run_scores=jnp.zeros((batch, k), jnp.float32).at[:, 1:].set(_NEG),
        fin_tokens=pad_tokens,
        fin_scores=jnp.full((batch, k), _NEG, jnp.float32),
        fin_lengths=jnp.zeros((batch, k), jnp.int32),
        fin_valid=jnp.zeros((batch, k), bool),
        improvable=jnp.ones((batch,), bool),
        all_hit_stop=jnp.zeros((), bool),
        proc_states=init_processor_states(processors, batch * k),
    )

    def cond(c: _Carry) -> jax.Array:
        return (c.step < m - 1) & _searching(c, args)

    def body(c: _Carry) -> _Carry:
        c = _select(c, cfg, args, processors)
        tokens = c.run_tokens[:, :, c.step].reshape(-1)
        logits, cache = decode_step(model, tokens, c.position, c.cache)
        return c.replace(step=c.step + 1, cache=cache, logits=logits, position=c.position + 1)

    carry = jax.lax.while_loop(cond, body, carry)
    # The last step finalises every top-K candidate; after an early stop it changes nothing.
    carry = jax.lax.cond(
        _searching(carry, args), lambda c: _select(c, cfg, args, processors), lambda c: c, carry
    )
    r = cfg.num_return_sequences
    scores = carry.fin_scores[:, :r]
    lengths = carry.fin_lengths[:, :r]
    # A hypothesis built from a -1e9 placeholder beam does not exist (fewer than R continuations
    # were possible, e.g. under a constraint): report it as -inf rather than a huge negative.
    raw = scores * jnp.maximum(lengths, 1).astype(jnp.float32) ** args.length_penalty
    scores = jnp.where(raw > _NEG / 2, scores, -jnp.inf)
    return BeamSearchOutput(sequences=carry.fin_tokens[:, :r], scores=scores, lengths=lengths)


def build_beam_search(
    model: nnx.Module,
    input_ids: Any,
    attention_mask: Any = None,
    *,
    max_new_tokens: int,
    num_beams: int,
    num_return_sequences: int = 1,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int = 0,
    logits_processor: Processor | Sequence[Processor] | None = None,
) -> tuple[Callable[..., BeamSearchOutput], tuple]:
    """The jitted beam-search function and its arguments; `fn(*args)` is `beam_search(...)`."""
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    if not 1 <= num_return_sequences <= num_beams:
        raise ValueError(
            f"num_return_sequences must be in [1, num_beams={num_beams}], "
            f"got {num_return_sequences}"
        )
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    d = prepare_decode(model, input_ids, attention_mask, max_new_tokens, logits_processor)
    cfg = _BeamStatic(
        max_new_tokens=int(max_new_tokens),
        num_beams=int(num_beams),
        num_return_sequences=int(num_return_sequences),
        num_eos=len(eos_array(eos_token_id)),
    )
    traced = _BeamArgs(
        length_penalty=jnp.float32(length_penalty),
        stop_when_full=jnp.asarray(early_stopping is True),
        never_stop_early=jnp.asarray(early_stopping == "never"),
        eos_ids=eos_array(eos_token_id),
        pad_token_id=jnp.int32(pad_token_id),
    )
    args = (d.state, d.input_ids, d.attention_mask, traced, d.proc_arrays)
    return jit_decode_program(_beam_search_impl, d.graphdef, d.proc_static, cfg), args


def beam_search(
    model: nnx.Module,
    input_ids: Any,
    attention_mask: Any = None,
    *,
    max_new_tokens: int,
    num_beams: int,
    num_return_sequences: int = 1,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int = 0,
    logits_processor: Processor | Sequence[Processor] | None = None,
) -> BeamSearchOutput:
    """Beam search over a batch of left-padded prompts (HF `num_beams > 1, do_sample=False`).

    Args:
      model: a decoder following the `DecoderLM` contract (called with a KV cache).
      input_ids: [B, T] int prompt ids, left padded; attention_mask: [B, T] or None.
      max_new_tokens: M, generated tokens per hypothesis at most.
      num_beams: K beams per prompt; num_return_sequences: R <= K hypotheses returned.
      length_penalty: finished score = sum of log-probs / length**length_penalty (length counts
        generated tokens, EOS included); > 0 favours longer, < 0 shorter hypotheses.
      early_stopping: True, False (HF default) or "never"; see the module docstring.
      eos_token_id: one id or several; pad_token_id: fills hypotheses after their EOS.
      logits_processor: applied each step to the [B*K, V] log-softmax log-probs (e.g. a
        `PrefixTrieConstraint`); its state follows the beams.
      Shapes, `max_new_tokens`, `num_beams`, `num_return_sequences`, the number of EOS ids and
      the processors' static fields are compiled in; length_penalty, early_stopping and the
      EOS/pad ids are traced (no recompile).
    Returns:
      BeamSearchOutput(sequences [B, R, M], scores [B, R], lengths [B, R]), best first.
      Hypotheses that do not exist (a constraint admits fewer than R) score -inf.
    """
    fn, args = build_beam_search(
        model, input_ids, attention_mask, max_new_tokens=max_new_tokens, num_beams=num_beams,
        num_return_sequences=num_return_sequences, length_penalty=length_penalty,
        early_stopping=early_stopping, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
        logits_processor=logits_processor,
    )  # fmt: skip
    return fn(*args)
