"""MUSE (Shi et al., 2024) loading: raw text in 2048-token chunks, knowmem QA, verbmem, privleak.

Hub datasets `muse-bench/MUSE-News` and `muse-bench/MUSE-Books`, configs and splits:
  raw:      forget, retain1, retain2, holdout      field "text"   (training corpora)
  knowmem:  forget_qa, retain_qa, forget_qa_icl, retain_qa_icl   fields "question", "answer"
  verbmem:  forget                               fields "prompt", "gt"
  privleak: forget, retain, holdout              field "text"
A local folder of the same schema is read as `<dir>/<config>/<split>.{json,jsonl,parquet}`
(or `<dir>/<config>/<split>-*.parquet`, the hub's parquet shards).

Formatting follows open-unlearning: the raw corpus is joined with "\\n\\n", tokenised once
without special tokens and cut into `max_length`-token chunks, each chunk decoded and re-encoded
as a pretraining instance (BOS + text, labels on every token but the first); QA uses the
"Question: ... \\nAnswer: ..." template (`MUSE_QA_TEMPLATE`), with the *_icl rows as few-shot
turns for knowmem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxmethods.data.tofu import MUSE_QA_TEMPLATE, QATemplate, read_rows, tokenize_qa
from jaxmethods.losses.unlearning import IGNORE_INDEX

HF_IDS = {"News": "muse-bench/MUSE-News", "Books": "muse-bench/MUSE-Books"}

MUSE_SPLITS = {
    "raw": ("forget", "retain1", "retain2", "holdout"),
    "knowmem": ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl"),
    "verbmem": ("forget",),
    "privleak": ("forget", "retain", "holdout"),
}
_FIELDS = {
    "raw": ("text",),
    "knowmem": ("question", "answer"),
    "verbmem": ("prompt", "gt"),
    "privleak": ("text",),
}


def _local_file(folder: Path, config: str, split: str) -> Path:
    sub = folder / config
    for ext in (".json", ".jsonl", ".parquet"):
        if (sub / f"{split}{ext}").exists():
            return sub / f"{split}{ext}"
    shards = sorted(sub.glob(f"{split}-*.parquet"))
    if shards:
        return shards[0]
    raise FileNotFoundError(f"no file for MUSE {config}/{split} in {folder}")


def load_muse(corpus: str, config: str, split: str, source: str | Path | None = None) -> list[dict]:
    """Rows of one MUSE config/split from the hub or a local folder of the same schema.

    Args:
      corpus: "News" or "Books" (picks the hub id when `source` is None).
      config: "raw", "knowmem", "verbmem" or "privleak".
      split: one of `MUSE_SPLITS[config]`.
      source: a hub id or a local folder; None = `HF_IDS[corpus]`.
    """
    if corpus not in HF_IDS:
        raise ValueError(f"unknown MUSE corpus '{corpus}'; expected one of {sorted(HF_IDS)}")
    if config not in MUSE_SPLITS:
        raise ValueError(f"unknown MUSE config '{config}'; expected one of {sorted(MUSE_SPLITS)}")
    if split not in MUSE_SPLITS[config]:
        raise ValueError(f"MUSE config '{config}' has no split '{split}': {MUSE_SPLITS[config]}")
    source = HF_IDS[corpus] if source is None else source
    folder = Path(source)
    if folder.is_dir():
        path = _local_file(folder, config, split)
        rows, where = read_rows(path), str(path)
        if len(shards := sorted(path.parent.glob(f"{split}-*.parquet"))) > 1:
            rows = [r for s in shards for r in read_rows(s)]
    else:
        import datasets

        rows = list(datasets.load_dataset(str(source), name=config, split=split))
        where = f"{source}:{config}/{split}"
    for i, row in enumerate(rows):
        for f in _FIELDS[config]:
            if not isinstance(row.get(f), str):
                raise ValueError(f"{where}: row {i} field '{f}' is missing or not a string")
    return rows


def pretraining_instance(tokenizer: Any, text: str, max_length: int) -> dict[str, list[int]]:
    """open-unlearning's `preprocess_pretraining_instance` with an empty prefix.

    ids = tokenizer(text) with special tokens, cut to 1 + max_length; labels = -100 on the first
    token (never predicted) and the ids elsewhere.
    """
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    prefix = len(tokenizer("", add_special_tokens=True)["input_ids"])
    ids = ids[: prefix + max_length]
    skip = max(prefix, 1)
    return {"input_ids": ids, "labels": [IGNORE_INDEX] * skip + ids[skip:]}


def chunk_corpus(
    tokenizer: Any, texts: Sequence[str], *, max_length: int = 2048
) -> list[dict[str, list[int]]]:
    """Joins texts with "\\n\\n", cuts the token stream into `max_length` pieces, re-encodes each.

    The authors compute `len // max_length + 1` chunks, so an exact multiple yields a final empty
    chunk with no label; it is dropped here.
    """
    if not texts:
        raise ValueError("chunk_corpus: no text")
    ids = tokenizer("\n\n".join(texts), add_special_tokens=False)["input_ids"]
    out = []
    for start in range(0, len(ids), max_length):
        piece = tokenizer.decode(ids[start : start + max_length])
        out.append(pretraining_instance(tokenizer, piece, max_length))
    return out


def knowmem_examples(
    tokenizer: Any,
    rows: Sequence[Mapping[str, str]],
    icl_rows: Sequence[Mapping[str, str]] = (),
    *,
    template: QATemplate = MUSE_QA_TEMPLATE,
    max_length: int = 512,
) -> list[dict[str, list[int]]]:
    """Knowmem QA with the ICL rows as few-shot turns; keeps "answer" text for ROUGE."""
    shots = [(r["question"], r["answer"]) for r in icl_rows]
    out = []
    for r in rows:
        ex = tokenize_qa(
            tokenizer, template, r["question"], r["answer"], max_length=max_length, few_shot=shots
        )
        ex["target"] = r["answer"]
        out.append(ex)
    return out


def verbmem_examples(
    tokenizer: Any, rows: Sequence[Mapping[str, str]], *, max_length: int = 2048
) -> list[dict[str, Any]]:
    """Verbmem: prompt ids (BOS + prompt) to continue, and the ground-truth continuation text."""
    out = []
    for r in rows:
        prompt_ids = list(tokenizer(r["prompt"], add_special_tokens=True)["input_ids"])[:max_length]
        out.append({"prompt_ids": prompt_ids, "target": r["gt"]})
    return out
