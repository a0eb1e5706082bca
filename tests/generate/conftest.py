"""Shared tiny model, prompts and cache-free references for the generation tests.

The references live here (exposed through the `gen_ref` fixture) because tests are collected
with `--import-mode=importlib`, where a sibling helper module cannot be imported by name.
"""

from __future__ import annotations

import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmethods.models.decoder import DecoderConfig, DecoderLM

VOCAB = 32  # vocabulary of the shared tiny model (conftest.tiny_lm)
MAX_NEW = 6  # new tokens per test generation


class FullForward:
    """Next-token log-probs from a full forward pass (no KV cache) over prompt + continuation.

    One fixed [N, T + M] buffer, so a single compile serves every step: the continuation is
    written right after the left-padded prompt and the not-yet-generated tail is masked (causal
    attention makes the tail irrelevant for earlier positions anyway).
    """

    def __init__(self, model: nnx.Module, max_new_tokens: int):
        self.graphdef, self.state = nnx.split(model)
        self.max_new = max_new_tokens

    @functools.partial(jax.jit, static_argnums=(0,))
    def _logits(self, state, ids, mask):
        return nnx.merge(self.graphdef, state)(ids, mask)

    def _token_logprobs(self, prompt_ids, prompt_mask, continuation) -> np.ndarray:
        """log p of every next token after prompt + continuation[:, :j]: [N, t + 1, V] float64."""
        prompt_ids, prompt_mask = np.asarray(prompt_ids), np.asarray(prompt_mask)
        n, t_prompt = prompt_ids.shape
        t = continuation.shape[1]
        ids = np.zeros((n, t_prompt + self.max_new), np.int32)
        mask = np.zeros_like(ids)
        ids[:, :t_prompt], mask[:, :t_prompt] = prompt_ids, prompt_mask
        ids[:, t_prompt : t_prompt + t], mask[:, t_prompt : t_prompt + t] = continuation, 1
        logits = self._logits(self.state, jnp.asarray(ids), jnp.asarray(mask))
        last = np.asarray(logits[:, t_prompt - 1 : t_prompt + t], np.float64)
        shifted = last - last.max(-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))

    def continuation_logprob(self, prompt_ids, prompt_mask, continuation) -> np.ndarray:
        """Total log p(continuation | prompt) from one forward pass: [N, L] -> [N] float64."""
        cont = np.asarray(continuation)
        lp = self._token_logprobs(prompt_ids, prompt_mask, cont)[:, :-1]
        return np.take_along_axis(lp, cont[..., None], -1)[..., 0].sum(-1)

    def next_logprobs(self, prompt_ids, prompt_mask, continuation) -> np.ndarray:
        """prompt [N, T], continuation [N, t] (t < M) -> log p(next | ...) [N, V] float64."""
        return self._token_logprobs(prompt_ids, prompt_mask, np.asarray(continuation))[:, -1]


def greedy_reference(ff: FullForward, ids, mask, max_new, eos_ids=(), pad=0) -> np.ndarray:
    """Argmax loop without cache: [B, T] -> [B, max_new] (pad after a row's EOS)."""
    b = ids.shape[0]
    out = np.full((b, max_new), pad, np.int64)
    done = np.zeros(b, bool)
    for t in range(max_new):
        lp = ff.next_logprobs(ids, mask, out[:, :t])
        tok = np.where(done, pad, lp.argmax(-1))
        out[:, t] = tok
        done |= np.isin(tok, eos_ids)
    return out


def beam_search_reference(
    ff: FullForward, ids, mask, *, num_beams, max_new, length_penalty, early_stopping, eos_ids,
    pad=0,
):  # fmt: skip
    """Hugging Face beam search (transformers 5 `_beam_search` semantics) written with lists.

    One prompt (ids/mask [1, T]); returns the finished hypotheses [(score, tokens, length)],
    best first. Requires V >= the number of kept candidates (no -1e9 placeholder survives).
    """
    k = num_beams
    n_keep = max(2, 1 + len(eos_ids)) * k
    running = [([], 0.0)] + [([], -1e9)] * (k - 1)
    finished: list[tuple[float, list[int]]] = []
    improvable = True
    for t in range(max_new):
        cont = np.array([toks for toks, _ in running], np.int64).reshape(k, t)
        lp = ff.next_logprobs(np.repeat(ids, k, 0), np.repeat(mask, k, 0), cont)
        v = lp.shape[1]
        flat = [(running[b][1] + lp[b, tok], b * v + tok) for b in range(k) for tok in range(v)]
        flat.sort(key=lambda x: (-x[0], x[1]))
        cands = flat[:n_keep]
        full = len(finished) == k and early_stopping is True
        new_running, new_finished, hits = [], [], []
        for rank, (score, idx) in enumerate(cands):
            b, tok = divmod(idx, v)
            toks = running[b][0] + [tok]
            hit = tok in eos_ids or t == max_new - 1
            hits.append(hit)
            if hit:
                if rank < k and improvable and not full:
                    new_finished.append((score / (t + 1) ** length_penalty, toks))
            elif len(new_running) < k:
                new_running.append((toks, score))
        finished = sorted(finished + new_finished, key=lambda x: -x[0])[:k]
        running = new_running
        if len(finished) == k and running:
            if early_stopping == "never" and length_penalty > 0:
                best_len = max_new
            else:
                best_len = t + 1
            best = running[0][1] / best_len**length_penalty
            improvable = improvable and best > min(s for s, _ in finished)
        if not improvable or (early_stopping is True and len(finished) == k) or all(hits):
            break
    return [(s, toks + [pad] * (max_new - len(toks)), len(toks)) for s, toks in finished]


@pytest.fixture(scope="session")
def gen_ref() -> types.SimpleNamespace:
    """The references and constants above, for the test modules."""
    return types.SimpleNamespace(
        VOCAB=VOCAB,
        MAX_NEW=MAX_NEW,
        FullForward=FullForward,
        greedy_reference=greedy_reference,
        beam_search_reference=beam_search_reference,
    )


@pytest.fixture(scope="session")
def tiny_lm() -> DecoderLM:
    # initializer_range 0.2 gives peaked but non-degenerate next-token distributions, so argmax
    # margins are far above float noise and beams genuinely compete; scan_layers halves compiles.
    config = DecoderConfig.tiny(vocab_size=VOCAB, initializer_range=0.2, scan_layers=True)
    return DecoderLM(config, rngs=nnx.Rngs(0))


@pytest.fixture(scope="session")
def full_forward(tiny_lm) -> FullForward:
    """Cache-free reference forward of `tiny_lm` (one instance, so its compiles are shared)."""
    return FullForward(tiny_lm, MAX_NEW)


@pytest.fixture(scope="session")
def prompts() -> tuple[np.ndarray, np.ndarray]:
    """Three left-padded prompts of lengths 6, 4 and 2: ids, mask [3, 6]."""
    rng = np.random.default_rng(0)
    ids = rng.integers(3, VOCAB, size=(3, 6)).astype(np.int32)
    mask = np.ones((3, 6), np.int32)
    mask[1, :2] = 0
    mask[2, :4] = 0
    ids[mask == 0] = 0
    return ids, mask
