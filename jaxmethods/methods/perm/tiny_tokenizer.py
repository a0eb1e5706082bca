"""Tiny BPE tokenizers for PERM's offline runs whose constant prompt blocks are single tokens.

PERM's prompts are long fixed templates (the policy's output requirement, the judges' rubrics)
around short variable fields. `block_tokenizer` trains a tiny BPE on the run's texts and adds
every constant block as one token: the text a model reads is exactly the authors' prompt, but a
tiny model reads it in tens of tokens instead of hundreds (decoding restores it exactly).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence

from jaxmethods.data.tokenizer import build_tiny_tokenizer


def template_blocks(*templates: str) -> list[str]:
    """The literal text between the `{placeholders}` of each `str.format` template."""
    return [text for t in templates for text, *_ in string.Formatter().parse(t) if text]


def block_tokenizer(texts: Iterable[str], blocks: Sequence[str], vocab_size: int):
    """A left-padding tiny BPE tokenizer over `texts` plus `blocks` as added tokens (longest
    first, so a block containing another wins)."""
    from tokenizers import AddedToken

    tok = build_tiny_tokenizer(list(texts), vocab_size=vocab_size, padding_side="left")
    unique = sorted({b for b in blocks if b}, key=len, reverse=True)
    tok.add_tokens([AddedToken(b, normalized=False) for b in unique])
    return tok
