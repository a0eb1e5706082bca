"""The engine's request/result records, its padding buckets, EOS ids and stop strings."""

from __future__ import annotations

import bisect
import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class EngineRequest:
    """One prompt, already tokenised, with its settings (see `jaxmethods.llm.Request`)."""

    prompt_ids: tuple[int, ...]
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False


@dataclasses.dataclass(frozen=True)
class EngineResult:
    """text (stop string and EOS excluded), token_ids (the completion's tokens, EOS excluded),
    finish_reason ("stop" | "length"), prompt_tokens, completion_tokens."""

    text: str
    token_ids: tuple[int, ...]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclasses.dataclass(frozen=True)
class BatchRecord:
    """One jitted generation call: real rows and the padded shape it ran with."""

    rows: int
    batch: int
    prompt_len: int
    new_tokens: int
    seconds: float


def power_of_two_buckets(low: int, high: int) -> tuple[int, ...]:
    """low, 2 low, 4 low, ... up to the first value >= high (and `high` itself when it is not a
    power-of-two multiple of `low`, capped there)."""
    out, b = [], low
    while b < high:
        out.append(b)
        b *= 2
    out.append(high)
    return tuple(out)


def bucket(value: int, buckets: Sequence[int], what: str) -> int:
    """The smallest bucket >= value (ValueError naming `what` above the largest)."""
    i = bisect.bisect_left(buckets, value)
    if i == len(buckets):
        raise ValueError(f"{what}={value} exceeds the largest bucket {buckets[-1]}")
    return buckets[i]


def eos_ids_of(tokenizer: Any, folder: str | None = None) -> tuple[int, ...]:
    """The tokenizer's EOS plus the `eos_token_id`(s) of `generation_config.json` in `folder`
    (chat models end a turn with their own token, e.g. Llama 3's <|eot_id|>)."""
    ids = [] if tokenizer.eos_token_id is None else [int(tokenizer.eos_token_id)]
    path = os.path.join(folder, "generation_config.json") if folder else ""
    if path and os.path.exists(path):
        with open(path) as f:
            extra = json.load(f).get("eos_token_id")
        extra = [] if extra is None else [extra] if isinstance(extra, int) else list(extra)
        ids += [int(t) for t in extra if int(t) not in ids]
    if not ids:
        raise ValueError("the tokenizer has no eos_token_id and generation_config.json none")
    return tuple(ids)


def first_stop(text: str, stop: Sequence[str]) -> int | None:
    """Index of the earliest occurrence of any stop string in `text`, or None."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(hits) if hits else None
