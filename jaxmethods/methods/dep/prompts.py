"""DEP's prompt: the Qwen2 chat wrapping, the 20 added special tokens, history fitting, and the
tokenised example (left padding, labels only on the target).

Verbatim from `data/personal_dataset.py` and `utils/templates.py` (commit e371cc2):
- the system prompt `SYSTEM_PROMPT` (it ends in a newline);
- `qwen2_prompt`: `<|im_start|>system\\n{SYS}<|im_end|>` with NO newline before
  `<|im_start|>user\\n{msg}<|im_end|>\\n<|im_start|>assistant\\n` (Qwen's own template has one);
- the user message: item title and description, `[User's Past Reviews]:` with one block per
  review (most recent first, `[HIS_TOKEN_k]` / `[DIFF_TOKEN_k]` for review k+1), then the output
  rating and title;
- history fitting: the count goes 8, 7, ..., 1 until the history's tokens fit in
  `max_length - len(prompt without history)`; at 1 it is kept even if it does not fit, and the
  prompt is then cut to `max_length` tokens from the right (`truncation=True`), as the authors.
Training rows: prompt + target (truncated to `max_length` tokens) + EOS, left-padded to
`total_length` = 3072 + 2048 + 1; labels are -100 on the prompt and the padding. Evaluation rows
are the prompt left-padded to `max_length`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

HIS_TOKENS = tuple(f"[HIS_TOKEN_{i}]" for i in range(8))
DIFF_TOKENS = tuple(f"[DIFF_TOKEN_{i}]" for i in range(8))
BOUNDARY_TOKENS = ("<his_token_start>", "<his_token_end>", "<diff_token_start>", "<diff_token_end>")
NEW_TOKENS = HIS_TOKENS + DIFF_TOKENS + BOUNDARY_TOKENS  # the authors' order (20 tokens)
MAX_LENGTH, MAX_HISTORY, MAX_NEW_TOKENS = 3072, 8, 2048
IGNORE = -100

SYSTEM_PROMPT = (
    "Given the title and description of an item, "
    "along with the user's past reviews (including item title, item description, review rating, review title, review text, review embedding, review difference embedding), "
    "and the output review rating and review title, "
    "generate a personalized item review for the user.\n"
    "Note: [Review Embedding] denotes a soft prompt of the review text and [Review Difference Embedding] denotes a soft prompt showing the difference between the review text and other reviews on the same item. "
    "[Review Embedding] and [Review Difference Embedding] should serve as hints for personalized review text generation.\n"
)
QWEN_DEFAULT_SYSTEM = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\n"
)


def qwen2_prompt(user_message: str, system_prompt: str | None = SYSTEM_PROMPT) -> str:
    """The authors' `Qwen2PromptTemplate.build_prompt` (no newline after a given system turn)."""
    if system_prompt is not None:
        head = f"<|im_start|>system\n{system_prompt}<|im_end|>"
    else:
        head = QWEN_DEFAULT_SYSTEM
    return head + f"<|im_start|>user\n{user_message}<|im_end|>\n<|im_start|>assistant\n"


def add_dep_tokens(tokenizer: Any) -> int:
    """Adds the 20 tokens as additional special tokens (the authors' call); returns how many
    were new. Resize the decoder's embeddings to `len(tokenizer)` afterwards."""
    return tokenizer.add_special_tokens({"additional_special_tokens": list(NEW_TOKENS)})


def placeholder_ids(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(his ids [8], diff ids [8]); ValueError at setup if any of the 20 tokens is missing or
    does not encode to one id (it would otherwise be injected nowhere, silently)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = {}
    for tok in NEW_TOKENS:
        i = tokenizer.convert_tokens_to_ids(tok)
        enc = tokenizer(tok, add_special_tokens=False)["input_ids"]
        if i is None or i == unk or enc != [i]:
            raise ValueError(
                f"DEP: tokenizer lacks the special token {tok!r} (got id {i}, encodes to {enc}); "
                "call jaxmethods.methods.dep.prompts.add_dep_tokens(tokenizer) first"
            )
        ids[tok] = i
    return tuple(ids[t] for t in HIS_TOKENS), tuple(ids[t] for t in DIFF_TOKENS)


def review_block(
    k: int, review: dict, item: tuple[str, str], *, placeholders_only: bool = False
) -> str:
    """The k-th (0-based) past-review block; `item` = (title, description) of its asin.
    `placeholders_only`: one line with the two soft-token spans (a demo option, not the
    authors')."""
    if placeholders_only:
        return (
            f"- [Review {k + 1}]: <his_token_start>{HIS_TOKENS[k]}<his_token_end> "
            f"<diff_token_start>{DIFF_TOKENS[k]}<diff_token_end>\n"
        )
    return (
        f"- [Review {k + 1}]:\n"
        f"  - [Item Title]: {item[0]}\n"
        f"  - [Item Description]: {item[1]}\n"
        f"  - [Review Rating]: {review['rating']}\n"
        f"  - [Review Title]: {review['title']}\n"
        f"  - [Review Text]: {review['text']}\n"
        f"  - [Review Embedding]: <his_token_start>{HIS_TOKENS[k]}<his_token_end>\n"
        f"  - [Review Difference Embedding]: <diff_token_start>{DIFF_TOKENS[k]}<diff_token_end>\n"
    )


def user_message(item: tuple[str, str], target: dict, past_reviews: str = "") -> str:
    return (
        f"[Item Title]: {item[0]}\n"
        f"[Item Description]: {item[1]}\n"
        f"{past_reviews}"
        f"[Output Review Rating]: {target['rating']}\n"
        f"[Output Review Title]: {target['title']}\n"
    )


def _count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def fit_prompt(
    tokenizer: Any,
    item: tuple[str, str],
    target: dict,
    history: Sequence[tuple[dict, tuple[str, str]]],
    *,
    max_length: int = MAX_LENGTH,
    max_history: int = MAX_HISTORY,
    placeholders_only: bool = False,
    system_prompt: str | None = SYSTEM_PROMPT,
) -> tuple[str, int]:
    """(prompt, number of reviews listed). `history` = (review, its item) most recent first;
    `placeholders_only`: see `review_block`; `system_prompt`: see `qwen2_prompt`."""
    if not history:
        raise ValueError("DEP prompt: the history is empty (the authors' loop needs >= 1 review)")
    avail = max_length - _count(tokenizer, qwen2_prompt(user_message(item, target), system_prompt))
    for n in range(max_history, 0, -1):
        blocks = "".join(
            review_block(k, r, it, placeholders_only=placeholders_only)
            for k, (r, it) in enumerate(history[:n])
        )
        past = f"[User's Past Reviews]:\n{blocks}"
        if _count(tokenizer, past) <= avail:
            break
    return qwen2_prompt(user_message(item, target, past), system_prompt), min(n, len(history))


def encode_example(
    tokenizer: Any,
    prompt: str,
    target_text: str,
    *,
    training: bool,
    max_length: int = MAX_LENGTH,
    total_length: int | None = None,
) -> dict[str, np.ndarray]:
    """`input_ids`, `attention_mask` (+ `labels` when training), int32, left-padded.

    Training: [pad] + prompt + target + EOS to `total_length` (default `max_length` + 2048 +
    1 = 5121), labels on target + EOS only.
    Evaluation: [pad] + prompt to `max_length`. Deviation: a target that would overflow
    `total_length` is cut (the authors' rows of batch 1 simply grow past 5121).
    """
    if total_length is None:
        total_length = max_length + MAX_NEW_TOKENS + 1
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][:max_length]
    pad = tokenizer.pad_token_id
    if not training:
        ids = [pad] * (max_length - len(prompt_ids)) + prompt_ids
        mask = [0] * (max_length - len(prompt_ids)) + [1] * len(prompt_ids)
        return {"input_ids": np.array(ids, np.int32), "attention_mask": np.array(mask, np.int32)}
    target_ids = tokenizer(target_text, add_special_tokens=False)["input_ids"][:max_length]
    target_ids = [*target_ids[: total_length - 1 - len(prompt_ids)], tokenizer.eos_token_id]
    n_pad = total_length - len(prompt_ids) - len(target_ids)
    return {
        "input_ids": np.array([pad] * n_pad + prompt_ids + target_ids, np.int32),
        "attention_mask": np.array([0] * n_pad + [1] * (total_length - n_pad), np.int32),
        "labels": np.array([IGNORE] * (n_pad + len(prompt_ids)) + target_ids, np.int32),
    }
