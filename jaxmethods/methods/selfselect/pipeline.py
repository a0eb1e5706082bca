"""The three-prompt Self-Selection pipeline, batched over questions.

    answers = self_select(generate, items, prompts)   # closed-book, RAG, then selection

`generate(prompts, temperature=0.0, seed=0) -> list[str]` is either `LocalGenerator` (jaxmethods'
jitted `generate` over an in-memory decoder: one compiled program per (batch, prompt length),
reused for every prompt kind and every model state) or `ClientGenerator` (the shared LLM client,
for a model served remotely: `jaxmethods.llm.make_client`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import numpy as np

from jaxmethods.data.tofu import left_pad_prompts
from jaxmethods.generate import generate
from jaxmethods.methods.selfselect.prompts import PromptConfig, Shot, render


class Generator(Protocol):
    def __call__(
        self, prompts: Sequence[str], *, temperature: float = 0.0, seed: int = 0
    ) -> list[str]: ...


@dataclass
class QAItem:
    """One question with its retrieved passages [(title, text)], best first (may be empty)."""

    id: str
    question: str
    answers: list[str]
    passages: list[tuple[str, str]] = field(default_factory=list)


def clean_answer(text: str) -> str:
    """The first non-empty line of a completion, stripped (chat models go on explaining)."""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


class LocalGenerator:
    """Batched generation with `jaxmethods.generate` over an in-memory decoder.

    Prompts are tokenised, left padded to `prompt_length` and grouped in batches of
    `batch_size` (the last one padded with dummy rows), so one program is compiled. A prompt
    longer than `prompt_length` is an error naming it. `model` may be swapped (same structure:
    no recompilation) after training.
    """

    def __init__(self, model: Any, tokenizer: Any, *, prompt_length: int, max_new_tokens: int,
                 batch_size: int):  # fmt: skip
        self.model, self.tokenizer = model, tokenizer
        self.prompt_length, self.max_new_tokens = prompt_length, max_new_tokens
        self.batch_size = batch_size
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def __call__(
        self, prompts: Sequence[str], *, temperature: float = 0.0, seed: int = 0
    ) -> list[str]:
        ids = [self.tokenizer(p)["input_ids"] for p in prompts]
        for i, p in enumerate(ids):
            if len(p) > self.prompt_length:
                raise ValueError(
                    f"prompt {i} has {len(p)} tokens > generation.prompt_length="
                    f"{self.prompt_length}: raise it or retrieve fewer passages"
                )
        out: list[str] = []
        key = jax.random.key(seed)
        for b, start in enumerate(range(0, len(ids), self.batch_size)):
            chunk = ids[start : start + self.batch_size]
            x, mask = left_pad_prompts(
                chunk, length=self.prompt_length, pad_id=self.pad_id, batch_size=self.batch_size
            )
            res = generate(
                self.model, x, mask, max_new_tokens=self.max_new_tokens,
                do_sample=temperature > 0, temperature=max(temperature, 1e-6),
                rng=jax.random.fold_in(key, b), eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.pad_id,
            )  # fmt: skip
            seqs, lens = np.asarray(res.sequences), np.asarray(res.lengths)
            for row in range(len(chunk)):
                toks = seqs[row, : lens[row]]
                out.append(self.tokenizer.decode(toks, skip_special_tokens=True))
        return out


class ClientGenerator:
    """Generation through the shared LLM client (`complete(requests) -> list[Completion]`).

    Sampled requests get distinct seeds (`seed + i`), so repeated prompts are distinct requests
    (the client answers identical requests once) and a rerun hits the client's cache.
    """

    def __init__(self, client: Any, *, max_new_tokens: int, stop: tuple[str, ...] = ("\n",)):
        self.client, self.max_new_tokens, self.stop = client, max_new_tokens, stop

    def __call__(
        self, prompts: Sequence[str], *, temperature: float = 0.0, seed: int = 0
    ) -> list[str]:
        from jaxmethods.llm import Request

        reqs = [
            Request.from_prompt(
                p,
                max_tokens=self.max_new_tokens,
                temperature=temperature,
                stop=self.stop,
                seed=(seed + i) if temperature > 0 else None,
            )
            for i, p in enumerate(prompts)
        ]
        return [c.text for c in self.client.complete(reqs)]


def self_select(
    generate_fn: Generator,
    items: Sequence[QAItem],
    prompts: PromptConfig,
    *,
    shots: Sequence[Shot] = (),
    internal: Sequence[str] | None = None,
    external: Sequence[str] | None = None,
) -> list[dict]:
    """Greedy closed-book, RAG and selection answers for every item (three batched calls).

    `internal` / `external` reuse answers already generated (then only the selection runs).
    Returns per item {"id", "internal", "external", "final", "num_passages"} (cleaned answers).
    """
    cb_shots = [Shot(s.question, s.answer) for s in shots]
    rag_shots = [Shot(s.question, s.answer, s.passages) for s in shots]
    if internal is None:
        internal = generate_fn([render("closed_book", prompts, it.question, shots=cb_shots)
                                for it in items])  # fmt: skip
    if external is None:
        external = generate_fn([render("rag", prompts, it.question, it.passages, shots=rag_shots)
                                for it in items])  # fmt: skip
    internal = [clean_answer(a) for a in internal]
    external = [clean_answer(a) for a in external]
    final = generate_fn([
        render("select", prompts, it.question, it.passages, [a, b], shots=shots)
        for it, a, b in zip(items, internal, external)
    ])  # fmt: skip
    return [
        {"id": it.id, "internal": a, "external": b, "final": clean_answer(f),
         "num_passages": len(it.passages)}
        for it, a, b, f in zip(items, internal, external, final)
    ]  # fmt: skip


def retrieve(retriever: Any, questions: Sequence[str], k: int) -> list[list[tuple[str, str]]]:
    """Top-k passages [(title, text)] per question from any shared retriever
    (`search(queries, k) -> (scores, indices)` plus `docs`); empty slots (-1) are dropped, so a
    question may get no passages at all."""
    if not questions:
        return []
    _, indices = retriever.search(list(questions), k)
    out = []
    for row in np.asarray(indices):
        out.append([(retriever.docs[int(i)].title, retriever.docs[int(i)].text)
                    for i in row if i >= 0])  # fmt: skip
    return out
