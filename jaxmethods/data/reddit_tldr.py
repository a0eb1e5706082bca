"""Reddit TL;DR (`openai/summarize_from_feedback`, config `comparisons`) per-worker pairs.

Port of the authors' `scripts/preprocess_reddit.py` (mrm.md §4), text side only.

Fields relied on (one comparison per row, HF config `comparisons`, splits `train` and
`validation`): `worker` (str, the labeller = our user), `info.post` (the Reddit post = the prompt),
`summaries` (list of >= 2 objects with `text`), `choice` (0 or 1, index of the preferred summary).
Other fields (`info.id/title/subreddit`, `batch`, `split`, `extra`) are not used.

Rules: users are the workers present in both splits; a row gives the pair
(prompt = [{"role": "user", "content": post}], chosen = summaries[choice].text,
rejected = summaries[1 - choice].text); HF train rows go to the user's train pool and HF validation
rows to its test set; each comparison is its own conversation. The per-user shuffle and truncation
(seen 150 or 100, unseen 50) happen in `user_splits.apply_pair_split`.

Rows whose `info.post` is null (the CNN/DM comparisons) [reconstruction: verify that the
validation split holds such rows]: the authors' script passes None to the chat template, which
Jinja renders as the text "None"; `missing_post` chooses between that ("authors", the default),
the news article ("article") or dropping the row ("skip").
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jaxmethods.data.preferences import TextPair

HF_DATASET_ID = "openai/summarize_from_feedback"
HF_CONFIG = "comparisons"
SPLITS = ("train", "validation")
_LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")
MISSING_POST_MODES = ("authors", "article", "skip")


@dataclasses.dataclass
class RedditStats:
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    workers: dict[str, int] = dataclasses.field(default_factory=dict)
    common_workers: int = 0
    missing_post: int = 0
    pairs: int = 0


def _json_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of a JSON Lines file (OpenAI's batch files are JSONL even when named .json) or of a
    file holding one JSON array; yields ("file:line" or "file[i]", row)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
        for i, row in enumerate(rows):
            yield f"{path}[{i}]", row
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{lineno}", json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None


def _local_file(directory: Path, split: str) -> Path:
    for suffix in _LOCAL_SUFFIXES:
        if (directory / f"{split}{suffix}").is_file():
            return directory / f"{split}{suffix}"
    raise FileNotFoundError(
        f"Reddit TL;DR: no {split}.jsonl / {split}.json / {split}.parquet in {directory}"
    )


def _iter_split(source: Any, split: str, revision: str | None) -> Iterator[tuple[str, Any]]:
    if isinstance(source, Mapping):
        path = Path(source[split])
    elif Path(source).is_dir():
        path = _local_file(Path(source), split)
    else:
        import datasets

        ds = datasets.load_dataset(str(source), HF_CONFIG, split=split, revision=revision)
        for i, row in enumerate(ds):
            yield f"{source}[{split}] row {i}", row
        return
    if path.suffix == ".parquet":
        import datasets

        ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
        for i, row in enumerate(ds):
            yield f"{path} row {i}", row
    else:
        yield from _json_rows(path)


def _parse_row(where: str, row: Any, missing_post: str) -> tuple[str, str | None, str, str]:
    """(worker, post or None for a skipped row, chosen text, rejected text)."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in ("worker", "info", "summaries", "choice"):
        if key not in row:
            raise ValueError(f"{where}: missing field {key!r}")
    info, summaries, choice = row["info"], row["summaries"], row["choice"]
    if not isinstance(info, dict):
        raise ValueError(f"{where}: field 'info' must be an object")
    if isinstance(choice, bool) or choice not in (0, 1):
        raise ValueError(f"{where}: field 'choice' must be 0 or 1, got {choice!r}")
    if not isinstance(summaries, list) or len(summaries) < 2:
        raise ValueError(f"{where}: field 'summaries' must be a list of 2 summaries")
    texts = []
    for k in (choice, 1 - choice):
        s = summaries[k]
        if not isinstance(s, dict) or not isinstance(s.get("text"), str):
            raise ValueError(f"{where}: summaries[{k}].text is missing or not a string")
        texts.append(s["text"])
    post = info.get("post")
    if post is None:
        if missing_post == "authors":
            post = "None"
        elif missing_post == "article":
            post = info.get("article")
            if not isinstance(post, str):
                raise ValueError(f"{where}: info.post and info.article are both missing")
    elif not isinstance(post, str):
        raise ValueError(f"{where}: field 'info.post' must be a string, got {type(post).__name__}")
    return str(row["worker"]), post, texts[0], texts[1]


def load_reddit_pairs(
    source: str | os.PathLike | Mapping[str, str | os.PathLike] = HF_DATASET_ID,
    *,
    missing_post: str = "authors",
    revision: str | None = None,
) -> tuple[list[TextPair], RedditStats]:
    """Per-worker TL;DR comparison pairs of the workers present in both splits.

    Args:
      source: the HF dataset id (loaded with `datasets.load_dataset(id, "comparisons")`); a folder
        holding `train.{jsonl,json,parquet}` and `validation.{...}` in the same schema (e.g.
        `ds["train"].to_json("train.jsonl")`); or a mapping {"train": file, "validation": file}.
      missing_post: how to treat rows with a null `info.post` ("authors", "article", "skip").

    Returns:
      (pairs, stats): pairs grouped by worker (workers sorted), each worker's train rows then its
      validation rows in source order; `source_split` is "train" or "validation".
    """
    if missing_post not in MISSING_POST_MODES:
        raise ValueError(f"load_reddit_pairs: missing_post must be one of {MISSING_POST_MODES}")
    stats = RedditStats()
    per_split: dict[str, dict[str, list[tuple[str, str, str]]]] = {}
    for split in SPLITS:
        by_worker: dict[str, list[tuple[str, str, str]]] = {}
        n = 0
        for where, row in _iter_split(source, split, revision):
            n += 1
            worker, post, chosen, rejected = _parse_row(where, row, missing_post)
            if post is None:
                stats.missing_post += 1
                continue
            if row["info"].get("post") is None:
                stats.missing_post += 1
            by_worker.setdefault(worker, []).append((post, chosen, rejected))
        stats.rows[split] = n
        stats.workers[split] = len(by_worker)
        per_split[split] = by_worker
    common = sorted(set(per_split["train"]) & set(per_split["validation"]))
    stats.common_workers = len(common)
    pairs = []
    for worker in common:
        k = 0
        for split in SPLITS:
            for post, chosen, rejected in per_split[split][worker]:
                pairs.append(
                    TextPair(
                        user_id=worker,
                        conversation_id=f"conv_{k}",
                        prompt=[{"role": "user", "content": post}],
                        chosen=chosen,
                        rejected=rejected,
                        source_split=split,
                    )
                )
                k += 1
    stats.pairs = len(pairs)
    return pairs, stats
