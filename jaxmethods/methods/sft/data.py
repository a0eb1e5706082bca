"""SFT examples: prompt/response rows -> tokenised HF-layout examples (batched by
`jaxmethods.data.forget_retain.gather_examples`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxmethods.data.jsonl import jsonl_objects
from jaxmethods.data.synthetic_authors import synthetic_tofu
from jaxmethods.data.tofu import QATemplate, tokenize_qa
from jaxmethods.methods.sft.config import DataConfig


def load_rows(cfg: DataConfig) -> tuple[list[dict], list[dict]]:
    """(train rows, valid rows), each `{"prompt": str, "response": str}`."""
    if cfg.source == "synthetic":
        rows = synthetic_tofu(
            num_authors=cfg.num_authors, questions_per_author=cfg.questions_per_author,
            seed=cfg.seed,
        )["full"]  # fmt: skip
        rows = [{"prompt": r["question"], "response": r["answer"]} for r in rows]
        order = np.random.default_rng(cfg.seed).permutation(len(rows))
        n_valid = max(1, round(cfg.valid_frac * len(rows)))
        return [rows[i] for i in order[n_valid:]], [rows[i] for i in order[:n_valid]]
    train = _read(cfg.train_file, cfg)
    valid = _read(cfg.valid_file, cfg) if cfg.valid_file else []
    return train, valid


def _read(path: str, cfg: DataConfig) -> list[dict]:
    rows = []
    for where, obj in jsonl_objects(path):
        for key in (cfg.prompt_key, cfg.response_key):
            if not isinstance(obj.get(key), str):
                raise ValueError(f"{where}: field {key!r} is missing or not a string")
        rows.append({"prompt": obj[cfg.prompt_key], "response": obj[cfg.response_key]})
    if not rows:
        raise ValueError(f"{path}: no examples")
    return rows


def tokenize(tokenizer: Any, rows: Sequence[dict], cfg: DataConfig) -> list[dict]:
    """HF-layout examples: input_ids and labels (-100 on the prompt), unshifted."""
    template = QATemplate(cfg.user_start, cfg.user_end, cfg.asst_start, cfg.asst_end)
    return [
        tokenize_qa(tokenizer, template, r["prompt"], r["response"], max_length=cfg.max_length)
        for r in rows
    ]
