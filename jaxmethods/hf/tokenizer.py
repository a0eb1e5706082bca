"""Tokenizers through `transformers.AutoTokenizer` (fast, Rust), with chat templates."""

from __future__ import annotations

import os
from typing import Any


def load_tokenizer(
    path_or_id: str | os.PathLike,
    *,
    padding_side: str | None = None,
    revision: str | None = None,
    chat_template: str | None = None,
    **kwargs: Any,
):
    """`AutoTokenizer.from_pretrained` on a local folder or hub id.

    Args:
      path_or_id: model folder or hub id (the tokenizer files of a `load_pretrained` snapshot).
      padding_side: "left" for batched generation prompts; None keeps the tokenizer's own.
      revision: hub revision.
      chat_template: override the Jinja chat template used by `apply_chat_template`.
      **kwargs: passed to `AutoTokenizer.from_pretrained`.
    Returns:
      A transformers fast tokenizer. A missing pad token is set to the EOS token (common for
      Llama checkpoints), so batches can be padded.
    """
    from transformers import AutoTokenizer

    from jaxmethods.hf.pretrained import looks_like_local_path

    is_path_object = isinstance(path_or_id, os.PathLike)
    path_or_id = os.fspath(path_or_id)
    if os.path.exists(os.path.expanduser(path_or_id)):
        path_or_id = os.path.expanduser(path_or_id)
    elif is_path_object or looks_like_local_path(path_or_id):
        raise FileNotFoundError(f"load_tokenizer: tokenizer folder {path_or_id!r} does not exist")
    if padding_side not in (None, "left", "right"):
        raise ValueError(
            f"load_tokenizer: padding_side must be 'left' or 'right', got {padding_side!r}"
        )
    tok = AutoTokenizer.from_pretrained(path_or_id, revision=revision, **kwargs)
    if padding_side is not None:
        tok.padding_side = padding_side
    if chat_template is not None:
        tok.chat_template = chat_template
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok
