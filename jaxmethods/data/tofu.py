"""TOFU (Maini et al., 2024) loading and QA tokenisation as open-unlearning does it.

Sources: the hub dataset `locuslab/TOFU` (one config per split file: `forget01`, `retain99`,
`forget01_perturbed`, ...) or a local folder holding files of the same schema, one per config:
`<dir>/<config>.json` (JSON lines or a JSON array, as on the hub), `.jsonl` or `.parquet`.

QA formatting (`tokenize_qa`) follows open-unlearning's `preprocess_chat_instance` without a
chat template: prompt = [few-shot turns] + user_start + question + user_end + asst_start, the
sequence is tokenizer(prompt + answer) with special tokens (BOS) and EOS appended, and labels
are -100 on the prompt tokens and the ids on the answer tokens (+ EOS).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxmethods.losses.unlearning import IGNORE_INDEX

HF_ID = "locuslab/TOFU"

TOFU_CONFIGS = (
    "full",
    "forget01", "forget05", "forget10",
    "retain90", "retain95", "retain99",
    "holdout01", "holdout05", "holdout10",
    "forget01_perturbed", "forget05_perturbed", "forget10_perturbed",
    "retain_perturbed", "real_authors_perturbed", "world_facts_perturbed",
)  # fmt: skip

# Fields each config must provide (extra fields are kept).
_QA = ("question", "answer")
_PERTURBED = ("question", "answer", "paraphrased_answer", "perturbed_answer")
_OPTIONS = ("question", "answer", "perturbed_answer")


def required_fields(config: str) -> tuple[str, ...]:
    if config in ("real_authors_perturbed", "world_facts_perturbed"):
        return _OPTIONS
    if config.endswith("_perturbed"):
        return _PERTURBED
    return _QA


@dataclass(frozen=True)
class QATemplate:
    """Tag strings around user and assistant turns (open-unlearning's `template_args`)."""

    user_start: str
    user_end: str
    asst_start: str
    asst_end: str


# configs/model/Llama-2-7b-chat-hf.yaml of the authors' code: "[INST] " + q + " [/INST]" + a.
LLAMA2_CHAT_TEMPLATE = QATemplate("[INST] ", " [/INST]", "", " ")
# configs/model/Llama-2-7b-hf.yaml (MUSE): "Question: " + q + "\n" + "Answer: " + a.
MUSE_QA_TEMPLATE = QATemplate("Question: ", "\n", "Answer: ", "\n\n")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a local JSON-lines, JSON-array or parquet file, with errors naming file and line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON array ({e})") from e
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON line ({e.msg})") from e
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: row {i} is a {type(row).__name__}, expected an object")
    return rows


def _find_local(folder: Path, config: str) -> Path:
    candidates = [folder / f"{config}{ext}" for ext in (".json", ".jsonl", ".parquet")]
    candidates += sorted((folder / config).glob("*.parquet")) if (folder / config).is_dir() else []
    for c in candidates:
        if c.exists():
            return c
    raise FileNotFoundError(
        f"no file for TOFU config '{config}' in {folder} (looked for {config}.json/.jsonl/.parquet)"
    )


def validate_rows(rows: Sequence[Mapping[str, Any]], fields: Sequence[str], where: str) -> None:
    """Checks every row has the fields, strings where expected and non-empty answer lists."""
    for i, row in enumerate(rows):
        for f in fields:
            if f not in row:
                raise ValueError(f"{where}: row {i} has no field '{f}' (has {sorted(row)})")
            value = row[f]
            if f == "perturbed_answer":
                if not isinstance(value, (list, tuple)) or not value:
                    raise ValueError(f"{where}: row {i} field '{f}' must be a non-empty list")
                if not all(isinstance(v, str) for v in value):
                    raise ValueError(f"{where}: row {i} field '{f}' must hold strings")
            elif not isinstance(value, str):
                raise ValueError(f"{where}: row {i} field '{f}' must be a string, got {value!r}")


def load_tofu(config: str, source: str | Path = HF_ID, split: str = "train") -> list[dict]:
    """Rows of one TOFU config, from the hub id or a local folder of the same files.

    Args:
      config: one of `TOFU_CONFIGS`.
      source: `locuslab/TOFU` (needs network or the HF cache) or a local folder.
      split: the hub split (TOFU has only "train").
    """
    if config not in TOFU_CONFIGS:
        raise ValueError(f"unknown TOFU config '{config}'; known: {TOFU_CONFIGS}")
    folder = Path(source)
    if folder.is_dir():
        path = _find_local(folder, config)
        rows = read_rows(path)
        where = str(path)
    else:
        import datasets

        rows = list(datasets.load_dataset(str(source), name=config, split=split))
        where = f"{source}:{config}"
    validate_rows(rows, required_fields(config), where)
    return rows


def tokenize_qa(
    tokenizer: Any,
    template: QATemplate,
    question: str,
    answer: str,
    *,
    max_length: int,
    few_shot: Sequence[tuple[str, str]] = (),
) -> dict[str, list[int]]:
    """One QA example -> {"input_ids", "labels", "prompt_ids"} (HF layout, labels not shifted).

    `prompt_ids` are the tokens up to the answer (the generation prompt); `labels` cover the
    answer tokens and the appended EOS. When tokenisation merges the prompt border so that no
    answer token remains, every label is -100 (open-unlearning warns and keeps the row).
    """
    prompt = ""
    for fs_q, fs_a in few_shot:
        prompt += template.user_start + fs_q + template.user_end
        prompt += template.asst_start + fs_a + template.asst_end
    prompt += template.user_start + question + template.user_end + template.asst_start
    full = tokenizer(
        prompt + answer, add_special_tokens=True, max_length=max_length, truncation=True
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=True, max_length=max_length, truncation=True)
    ids = list(full["input_ids"])
    prompt_ids = list(prompt_ids["input_ids"])
    if ids[-1] != tokenizer.eos_token_id:
        ids.append(tokenizer.eos_token_id)
    # The authors append EOS after truncating (max_length + 1 tokens); keep within max_length.
    if len(ids) > max_length:
        ids = [*ids[: max_length - 1], tokenizer.eos_token_id]
    n = len(prompt_ids)
    labels = [IGNORE_INDEX] * n + ids[n:]
    return {"input_ids": ids, "labels": labels[: len(ids)], "prompt_ids": prompt_ids}


def tokenize_rows(
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    *,
    template: QATemplate = LLAMA2_CHAT_TEMPLATE,
    max_length: int = 512,
    answer_key: str = "answer",
    question_key: str = "question",
) -> list[dict[str, list[int]]]:
    """`tokenize_qa` over rows; `answer_key` may name a string or a list field (one per item)."""
    out = []
    for row in rows:
        answers = row[answer_key]
        if isinstance(answers, str):
            answers = [answers]
        for a in answers:
            out.append(
                tokenize_qa(tokenizer, template, row[question_key], a, max_length=max_length)
            )
    return out


def pad_examples(
    examples: Sequence[Mapping[str, Sequence[int]]],
    *,
    length: int,
    pad_id: int,
    batch_size: int | None = None,
) -> dict[str, np.ndarray]:
    """Right-pads examples to `length` (and the batch to `batch_size` with empty rows).

    Returns {"input_ids" [B, L] int32, "attention_mask" [B, L] int32, "labels" [B, L] int32
    (HF layout, -100 on prompt and padding), "row_valid" [B] bool}.
    """
    b = len(examples) if batch_size is None else batch_size
    if len(examples) > b:
        raise ValueError(f"pad_examples: {len(examples)} examples exceed batch_size {b}")
    ids = np.full((b, length), pad_id, np.int32)
    mask = np.zeros((b, length), np.int32)
    labels = np.full((b, length), IGNORE_INDEX, np.int32)
    valid = np.zeros((b,), bool)
    for i, ex in enumerate(examples):
        n = len(ex["input_ids"])
        if n > length:
            raise ValueError(f"pad_examples: example {i} has {n} tokens > length {length}")
        ids[i, :n] = ex["input_ids"]
        mask[i, :n] = 1
        labels[i, :n] = ex["labels"]
        valid[i] = True
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "row_valid": valid}


def left_pad_prompts(
    prompts: Sequence[Sequence[int]], *, length: int, pad_id: int, batch_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Left-pads generation prompts: -> (ids [B, L] int32, mask [B, L] int32); empty rows get
    one pad token marked valid so every row has a prompt (their outputs are discarded)."""
    b = len(prompts) if batch_size is None else batch_size
    ids = np.full((b, length), pad_id, np.int32)
    mask = np.zeros((b, length), np.int32)
    for i in range(b):
        p = list(prompts[i]) if i < len(prompts) else [pad_id]
        if len(p) > length:
            raise ValueError(f"left_pad_prompts: prompt {i} has {len(p)} tokens > length {length}")
        ids[i, length - len(p) :] = p
        mask[i, length - len(p) :] = 1
    return ids, mask


def warmup_steps(
    num_examples: int,
    batch_size: int,
    grad_accum: int,
    num_devices: int = 1,
    *,
    warmup_epochs: float = 1.0,
) -> int:
    """TOFU's `warmup_epochs` rule (the authors' `load_trainer_args`):
    int(warmup_epochs * |forget|) // (bs * GA * n_devices)."""
    return int(warmup_epochs * num_examples) // (batch_size * grad_accum * num_devices)
