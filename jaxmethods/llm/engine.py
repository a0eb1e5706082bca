"""`GenerationEngine`: batched chat/text generation over a loaded checkpoint, shared by the
in-process `LocalClient` and the `jaxmethods.serve` server (one engine, two front ends).

`engine.generate(requests)` sorts the requests by prompt length, cuts them into batches of at
most `max_batch_size` rows and runs each through `jaxmethods.generate.generate` (KV cache, left
padding) with a `RowSampler`, so any mix of greedy/sampled settings, seeds and max_tokens
shares one call. Shapes are padded to buckets (batch rows: powers of two up to
`max_batch_size`; prompt length and new tokens: powers of two from 16), so a workload compiles a
handful of programs (one per padded shape, whatever the settings), not one per request. Stop
strings are applied on the host to the decoded text (the row keeps generating until EOS or
max_tokens inside the call; the text and token count are cut at the first stop string).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmethods.generate import generate
from jaxmethods.llm.batching import (
    BatchRecord,
    EngineRequest,
    EngineResult,
    bucket,
    eos_ids_of,
    first_stop,
    power_of_two_buckets,
)
from jaxmethods.llm.sampler import RowSampler


class GenerationEngine:
    """Batched generation for one model and tokenizer; thread-safe (calls are serialised).

    Args:
      model: a `DecoderLM` (e.g. from `jaxmethods.hf.load_pretrained`).
      tokenizer: its HF tokenizer (the chat template is applied for chat messages).
      name: the model name reported to clients.
      eos_token_ids: ids that end a row (default: the tokenizer's EOS).
      max_batch_size: rows per jitted call at most.
      batch_buckets / prompt_buckets / new_token_buckets: padded sizes (defaults: powers of two,
        up to `max_batch_size` / the context length).
      seed: seeds the keys of sampled requests without a seed.

    Attributes:
      batches: the last 10k jitted calls (`BatchRecord`: rows, padded shape, seconds).
      programs: the padded shapes (batch, prompt, new tokens) compiled so far.
      mesh: when given, the batch is split over its data axes (the model must already be
        placed on it, e.g. `load_pretrained(..., mesh=mesh)`).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str = "model",
        eos_token_ids: Sequence[int] | None = None,
        max_batch_size: int = 32,
        batch_buckets: Sequence[int] | None = None,
        prompt_buckets: Sequence[int] | None = None,
        new_token_buckets: Sequence[int] | None = None,
        seed: int = 0,
        mesh: jax.sharding.Mesh | None = None,
    ):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.context_length = int(model.config.max_position_embeddings)
        self.eos_ids = tuple(eos_token_ids or eos_ids_of(tokenizer))
        pad = tokenizer.pad_token_id
        self.pad_id = int(self.eos_ids[0] if pad is None else pad)
        self.mesh = mesh
        multiple = 1
        if mesh is not None:
            from jaxmethods.train.mesh import batch_size_multiple

            multiple = batch_size_multiple(mesh)
        self.batch_buckets = tuple(
            sorted(batch_buckets or power_of_two_buckets(multiple, max_batch_size))
        )
        bad = [b for b in self.batch_buckets if b % multiple]
        if bad:
            raise ValueError(f"batch buckets {bad} are not multiples of the mesh's {multiple}")
        self.max_batch_size = self.batch_buckets[-1]
        top = self.context_length
        self.prompt_buckets = tuple(sorted(prompt_buckets or power_of_two_buckets(16, top)))
        self.new_token_buckets = tuple(sorted(new_token_buckets or power_of_two_buckets(16, top)))
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self.batches: collections.deque[BatchRecord] = collections.deque(maxlen=10_000)
        self.programs: set[tuple] = set()

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str,
        *,
        dtype: Any = None,
        name: str | None = None,
        mesh: jax.sharding.Mesh | None = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> GenerationEngine:
        """Loads the checkpoint (`load_pretrained`) and its tokenizer (`load_tokenizer`)."""
        from jaxmethods.hf import load_pretrained, load_tokenizer, resolve_model_path

        folder = resolve_model_path(path_or_id)
        model = load_pretrained(folder, dtype, mesh=mesh)
        tokenizer = load_tokenizer(folder, padding_side="left", chat_template=chat_template)
        kwargs.setdefault("eos_token_ids", eos_ids_of(tokenizer, folder))
        return cls(model, tokenizer, name=name or os.fspath(path_or_id), mesh=mesh, **kwargs)

    # -- tokenisation ------------------------------------------------------------------------

    def encode_chat(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """The chat template applied with the generation prompt, tokenised (the template adds
        its own special tokens)."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"the tokenizer of {self.name!r} has no chat template; use a text completion or "
                "pass chat_template"
            )
        text = self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_text(self, prompt: str) -> list[int]:
        """A raw prompt with the tokenizer's special tokens (BOS), as `/v1/completions` does."""
        return list(self.tokenizer(prompt)["input_ids"])

    def check(self, request: EngineRequest) -> None:
        """ValueError when the prompt is empty, holds ids outside the vocabulary, or prompt +
        max_tokens exceeds the context or the largest bucket."""
        n = len(request.prompt_ids)
        if n == 0:
            raise ValueError("the prompt has no tokens")
        vocab = self.model.config.vocab_size
        bad = [t for t in request.prompt_ids if not 0 <= t < vocab]
        if bad:
            raise ValueError(f"prompt token ids {bad[:3]} are outside [0, {vocab})")
        if n + request.max_tokens > self.context_length:
            raise ValueError(
                f"prompt ({n} tokens) + max_tokens ({request.max_tokens}) exceeds the context "
                f"length of {self.name!r} ({self.context_length} tokens)"
            )
        if n > self.prompt_buckets[-1] or request.max_tokens > self.new_token_buckets[-1]:
            raise ValueError(
                f"prompt ({n} tokens) or max_tokens ({request.max_tokens}) exceeds the largest "
                f"bucket ({self.prompt_buckets[-1]} / {self.new_token_buckets[-1]})"
            )

    # -- generation --------------------------------------------------------------------------

    def generate(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        """Results in request order. Requests are checked first (`check`): ValueError naming the
        index of the first bad one."""
        for i, r in enumerate(requests):
            try:
                self.check(r)
            except ValueError as e:
                raise ValueError(f"request #{i}: {e}") from None
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids))
        results: list[EngineResult | None] = [None] * len(requests)
        with self._lock:
            draw = lambda r: r.seed if r.seed is not None else int(self._rng.integers(2**32))
            seeds = [draw(r) for r in requests]
            for start in range(0, len(order), self.max_batch_size):
                chunk = order[start : start + self.max_batch_size]
                outs = self._run_batch([requests[i] for i in chunk], [seeds[i] for i in chunk])
                for i, out in zip(chunk, outs):
                    results[i] = out
        return results  # type: ignore[return-value]

    def _run_batch(self, reqs: list[EngineRequest], seeds: list[int]) -> list[EngineResult]:
        rows = len(reqs)
        batch = bucket(rows, self.batch_buckets, "batch rows")
        prompt_len = bucket(max(len(r.prompt_ids) for r in reqs), self.prompt_buckets, "prompt")
        new = bucket(max(r.max_tokens for r in reqs), self.new_token_buckets, "max_tokens")
        ids = np.full((batch, prompt_len), self.pad_id, np.int32)
        mask = np.zeros((batch, prompt_len), np.int32)
        ids[rows:, -1], mask[rows:, -1] = self.pad_id, 1  # filler rows: one token, one step
        max_tokens = np.ones(batch, np.int32)
        temperature = np.zeros(batch, np.float32)
        top_p = np.ones(batch, np.float32)
        ignore_eos = np.zeros(batch, bool)
        seed_arr = np.zeros(batch, np.uint32)
        for j, r in enumerate(reqs):
            n = len(r.prompt_ids)
            ids[j, prompt_len - n :], mask[j, prompt_len - n :] = r.prompt_ids, 1
            max_tokens[j], temperature[j], top_p[j] = r.max_tokens, r.temperature, r.top_p
            ignore_eos[j], seed_arr[j] = r.ignore_eos, seeds[j] % 2**32
        sampler = RowSampler(
            temperature=jnp.asarray(temperature),
            top_p=jnp.asarray(top_p),
            keys=jax.vmap(jax.random.key)(jnp.asarray(seed_arr)),
            max_tokens=jnp.asarray(max_tokens),
            ignore_eos=jnp.asarray(ignore_eos),
            eos_ids=jnp.asarray(self.eos_ids, jnp.int32),
        )
        ids_in, mask_in = jnp.asarray(ids), jnp.asarray(mask)
        if self.mesh is not None:
            from jaxmethods.train.mesh import data_sharding

            ids_in = jax.device_put(ids_in, data_sharding(self.mesh))
            mask_in = jax.device_put(mask_in, data_sharding(self.mesh))
        start = time.perf_counter()
        out = generate(
            self.model, ids_in, mask_in, max_new_tokens=new, eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id, logits_processor=sampler,
        )  # fmt: skip
        tokens, lengths = jax.device_get((out.sequences, out.lengths))
        self.batches.append(BatchRecord(rows, batch, prompt_len, new, time.perf_counter() - start))
        self.programs.add((batch, prompt_len, new))
        return [self._finish(r, tokens[j, : lengths[j]]) for j, r in enumerate(reqs)]

    def _finish(self, request: EngineRequest, tokens: np.ndarray) -> EngineResult:
        """Strips EOS, tells a forced EOS ("length") from a chosen one ("stop"), cuts at the
        first stop string."""
        toks = [int(t) for t in tokens]
        ended = bool(toks) and toks[-1] in self.eos_ids
        if ended:
            finish = "length" if len(toks) - 1 >= request.max_tokens else "stop"
            toks = toks[:-1]
            count = len(toks) + (finish == "stop")  # a chosen EOS was generated (and billed)
        else:
            finish, count = "length", len(toks)
        text = self._decode(toks)
        if request.stop:
            cut = first_stop(text, request.stop)
            if cut is not None:
                text, finish = text[:cut], "stop"
                toks = self._tokens_through_stop(toks, request.stop)
                count = len(toks)
        return EngineResult(text, tuple(toks), finish, len(request.prompt_ids), count)

    def _decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True)

    def _tokens_through_stop(self, tokens: list[int], stop: tuple[str, ...]) -> list[int]:
        """The shortest prefix of `tokens` whose text holds a stop string (binary search)."""
        lo, hi = 1, len(tokens)
        while lo < hi:
            mid = (lo + hi) // 2
            if first_stop(self._decode(tokens[:mid]), stop) is None:
                lo = mid + 1
            else:
                hi = mid
        return tokens[:lo]
