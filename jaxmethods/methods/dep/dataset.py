"""DEP examples: selection + embeddings + peer maps + prompts -> tokenised rows with `his_diff`.

    splits = load_splits("SnowCharmQ/DPL-main")           # or a local folder
    meta = read_meta("SnowCharmQ/DPL-meta", CATEGORIES)
    store = EmbeddingStore("embeddings", dim=1024)
    maps = build_peer_maps(splits["test"].samples, store)
    train = build_examples(splits["train"], meta, store, maps, tokenizer, training=True)

Every sample uses its user's test-split embedding file, as the authors. A sample whose user has
fewer than 8 profile reviews with peers is skipped and counted (`skipped`), unless
`DiffOptions.pad_missing`. `align_prompt=True` lists in the prompt the reviews the soft tokens
come from (the paper's reading); the default lists the most recent reviews (the code's, §9.1).
`prompt_history` ("full", the authors' blocks) can blank the past reviews' title and text
("items": items and ratings stay listed) or list only the soft-token placeholders
("placeholders": one line per review with its two soft-token spans), so that a user's style reaches the LLM only through the soft tokens (the demo); `system_prompt` None uses Qwen's default
system turn instead of the authors' instruction (the demo, to save tokens).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jaxmethods.methods.dep.data import Sample, Selection
from jaxmethods.methods.dep.differences import (
    DEFAULT_OPTIONS,
    DiffOptions,
    PeerMaps,
    recent_first,
    soft_inputs,
)
from jaxmethods.methods.dep.prompts import MAX_LENGTH, SYSTEM_PROMPT, encode_example, fit_prompt

PROMPT_HISTORY = ("full", "items", "placeholders")


@dataclass
class Examples:
    """Rows (`input_ids`, `attention_mask`, [`labels`], `his_diff_emb` [16, D], `prompt`, `target`,
    `num_history`, `user_id`, `category`) and the skipped users by reason."""

    rows: list[dict[str, Any]]
    skipped: Counter = field(default_factory=Counter)

    def stack(self, name: str) -> np.ndarray:
        return np.stack([r[name] for r in self.rows])


def build_examples(
    selection: Selection,
    meta: dict[str, tuple[str, str]],
    load_embeddings: Callable[[Sample], np.ndarray],
    maps: PeerMaps,
    tokenizer: Any,
    *,
    training: bool,
    options: DiffOptions = DEFAULT_OPTIONS,
    align_prompt: bool = False,
    max_length: int = MAX_LENGTH,
    total_length: int | None = None,
    prompt_history: str = "full",
    system_prompt: str | None = SYSTEM_PROMPT,
) -> Examples:
    if prompt_history not in PROMPT_HISTORY:
        raise ValueError(
            f"build_examples: prompt_history {prompt_history!r} not in {PROMPT_HISTORY}"
        )
    out = Examples([], Counter(selection.skipped))
    lengths = {} if total_length is None else {"total_length": total_length}
    for s in selection.samples:
        soft = soft_inputs(s, load_embeddings(s), maps, options)
        if soft is None:
            out.skipped["fewer than 8 profile reviews with peers"] += 1
            continue
        reviews = soft.reviews if align_prompt else recent_first(s.profile)
        history = [_shown(r, _item(meta, r["asin"], s), prompt_history) for r in reviews]
        prompt, n = fit_prompt(
            tokenizer, _item(meta, s.target["asin"], s), s.target, history,
            max_length=max_length, placeholders_only=prompt_history == "placeholders",
            system_prompt=system_prompt,
        )  # fmt: skip
        row = encode_example(
            tokenizer, prompt, s.target["text"], training=training, max_length=max_length,
            **lengths,
        )  # fmt: skip
        row.update(
            his_diff_emb=soft.his_diff, prompt=prompt, target=s.target["text"], num_history=n,
            user_id=s.user_id, category=s.category,
        )  # fmt: skip
        out.rows.append(row)
    return out


def _shown(review: dict, item: tuple[str, str], mode: str) -> tuple[dict, tuple[str, str]]:
    """(review, item) as the prompt lists them under `prompt_history` = mode."""
    if mode == "full":
        return review, item
    review = {**review, "title": "", "text": ""}
    if mode == "items":
        return review, item
    return {**review, "rating": ""}, ("", "")


def _item(meta: dict[str, tuple[str, str]], asin: str, s: Sample) -> tuple[str, str]:
    if asin not in meta:
        raise KeyError(f"{s.where}: asin {asin} of user {s.user_id} is not in DPL-meta")
    return meta[asin]
