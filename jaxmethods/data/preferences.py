"""Per-user preference corpora over precomputed response embeddings (MRM, mrm.md §4).

A `PreferenceCorpus` is the data MRM consumes: one embedding row per response and, per
preference pair, the user who judged it, the conversation it came from, whether it sits in the
user's train pool or test set, and the rows of the chosen and rejected responses.

On disk (`save_corpus` / `load_corpus`), a corpus is a folder:

    embeddings.npy   [N, D] float32 (or bfloat16 bits stored as uint16, see `corpus.json`)
    pairs.jsonl      one JSON object per pair, in corpus order:
                     {"user": "u1", "conversation": 3, "split": 0, "chosen": 10, "rejected": 11,
                      "meta": {"conversation_id": ..., "prompt": ..., "chosen": ..., ...}}
    corpus.json      {"format_version": 1, "users": [...], "user_seen": [...] | null,
                      "embedding_dtype": "float32" | "bfloat16"}  (optional: without it, users
                      are taken in order of first appearance in pairs.jsonl)

`TextPair` is the text-level record the dataset loaders (PRISM, Reddit TL;DR) produce and the
embedding extractor consumes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxmethods.data.jsonl import jsonl_objects

FORMAT_VERSION = 1
EMBEDDINGS_FILE = "embeddings.npy"
PAIRS_FILE = "pairs.jsonl"
HEADER_FILE = "corpus.json"
TRAIN, TEST = 0, 1  # values of `pair_split`


@dataclasses.dataclass(frozen=True)
class TextPair:
    """One preference judgement in text form.

    Attributes:
      user_id: the judge (PRISM `user_id`, Reddit `worker`).
      conversation_id: the group the pair belongs to (PRISM conversation; Reddit: one per pair).
      prompt: chat messages before the response, `[{"role": "user"|"assistant", "content": str}]`.
      chosen, rejected: the preferred and the other assistant response.
      chosen_score, rejected_score: the dataset's own ratings when it has them, else None.
      source_split: the split of the source dataset ("train", "validation"), informational.
    """

    user_id: str
    conversation_id: str
    prompt: list[dict[str, str]]
    chosen: str
    rejected: str
    chosen_score: float | None = None
    rejected_score: float | None = None
    source_split: str = "train"


@dataclasses.dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly
class PreferenceCorpus:
    """Response embeddings plus per-user preference pairs.

    Attributes:
      embeddings: [N, D] float32 response embeddings (bf16 or other float input is converted).
      users: U user ids; `pair_user` indexes into this list.
      pair_user: [P] int32 user index of each pair.
      pair_conv: [P] int32 conversation/group id (pairs of one conversation share it).
      pair_split: [P] int8, 0 = the user's train pool, 1 = the user's test set.
      chosen, rejected: [P] int32 rows of `embeddings`.
      meta: optional per-pair metadata dicts (conversation_id, prompt, chosen, rejected,
        chosen_idx, rejected_idx, chosen_score, rejected_score, ...), length P.
      user_seen: optional [U] bool, the seen (meta-train) / unseen assignment fixed by a split
        protocol (`user_splits.apply_conversation_split` / `apply_pair_split`); None means
        "not assigned", and `seen_unseen(seed)` then draws it with the authors' rule.

    The constructor converts dtypes and calls `validate()`, so an inconsistent corpus cannot exist.
    """

    embeddings: np.ndarray
    users: list[str]
    pair_user: np.ndarray
    pair_conv: np.ndarray
    pair_split: np.ndarray
    chosen: np.ndarray
    rejected: np.ndarray
    meta: list[dict[str, Any]] | None = None
    user_seen: np.ndarray | None = None

    def __post_init__(self) -> None:
        emb = np.asarray(self.embeddings)
        if emb.dtype != np.float32:
            if emb.dtype.kind != "f" and emb.dtype.name != "bfloat16":
                raise TypeError(
                    f"PreferenceCorpus.embeddings: float array expected, got {emb.dtype}"
                )
            emb = emb.astype(np.float32)
        set_ = lambda name, value: object.__setattr__(self, name, value)
        set_("embeddings", emb)
        set_("users", [str(u) for u in self.users])
        for name, dtype in (
            ("pair_user", np.int32),
            ("pair_conv", np.int32),
            ("pair_split", np.int8),
            ("chosen", np.int32),
            ("rejected", np.int32),
        ):
            arr = np.asarray(getattr(self, name))
            if arr.size and arr.dtype.kind not in "iu":
                raise TypeError(f"PreferenceCorpus.{name}: integer array expected, got {arr.dtype}")
            set_(name, arr.astype(dtype))
        if self.user_seen is not None:
            set_("user_seen", np.asarray(self.user_seen, dtype=bool))
        if self.meta is not None:
            set_("meta", list(self.meta))
        self.validate()

    @property
    def num_users(self) -> int:
        return len(self.users)

    @property
    def num_pairs(self) -> int:
        return int(self.pair_user.shape[0])

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def validate(self) -> None:
        """Raises ValueError naming the field when shapes, indices or values are inconsistent."""
        if self.embeddings.ndim != 2:
            raise ValueError(
                f"PreferenceCorpus.embeddings: expected [N, D], got shape {self.embeddings.shape}"
            )
        n_rows, num_pairs = self.embeddings.shape[0], self.pair_user.shape[0]
        for name in ("pair_user", "pair_conv", "pair_split", "chosen", "rejected"):
            arr = getattr(self, name)
            if arr.ndim != 1 or arr.shape[0] != num_pairs:
                raise ValueError(
                    f"PreferenceCorpus.{name}: expected shape [{num_pairs}] (one per pair, like "
                    f"pair_user), got {arr.shape}"
                )
        if len(set(self.users)) != len(self.users):
            dup = sorted({u for u in self.users if self.users.count(u) > 1})[:3]
            raise ValueError(f"PreferenceCorpus.users: duplicate user ids {dup}")
        _check_range("pair_user", self.pair_user, len(self.users), "users")
        _check_range("chosen", self.chosen, n_rows, "embedding rows")
        _check_range("rejected", self.rejected, n_rows, "embedding rows")
        bad = np.flatnonzero((self.pair_split != TRAIN) & (self.pair_split != TEST))
        if bad.size:
            raise ValueError(
                f"PreferenceCorpus.pair_split: values must be 0 (train) or 1 (test); pair {bad[0]} "
                f"has {self.pair_split[bad[0]]}"
            )
        if self.pair_conv.size and self.pair_conv.min() < 0:
            raise ValueError("PreferenceCorpus.pair_conv: conversation ids must be >= 0")
        if self.meta is not None and len(self.meta) != num_pairs:
            raise ValueError(
                f"PreferenceCorpus.meta: expected {num_pairs} entries (one per pair), "
                f"got {len(self.meta)}"
            )
        if self.user_seen is not None and self.user_seen.shape != (len(self.users),):
            raise ValueError(
                f"PreferenceCorpus.user_seen: expected shape [{len(self.users)}], "
                f"got {self.user_seen.shape}"
            )
        if not np.all(np.isfinite(self.embeddings)):
            row = int(np.argwhere(~np.isfinite(self.embeddings))[0, 0])
            raise ValueError(f"PreferenceCorpus.embeddings: row {row} has NaN or Inf values")

    def user_pairs(self) -> list[np.ndarray]:
        """Per user, the indices of its pairs in corpus order: U arrays of int64."""
        order = np.argsort(self.pair_user, kind="stable")
        bounds = np.searchsorted(self.pair_user[order], np.arange(self.num_users + 1))
        return [order[bounds[u] : bounds[u + 1]] for u in range(self.num_users)]

    def select_pairs(self, keep: np.ndarray) -> PreferenceCorpus:
        """A corpus with only the pairs at `keep` (bool mask [P] or index array), in that order.

        Embedding rows and users are kept as they are (row indices stay valid).
        """
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
        return dataclasses.replace(
            self,
            pair_user=self.pair_user[idx],
            pair_conv=self.pair_conv[idx],
            pair_split=self.pair_split[idx],
            chosen=self.chosen[idx],
            rejected=self.rejected[idx],
            meta=None if self.meta is None else [self.meta[i] for i in idx],
        )

    def seen_unseen(self, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
        """User indices of the seen (meta-train) and unseen users, in the authors' order.

        Uses `user_seen` when a split protocol fixed it (the order is then the corpus order, which
        the protocols set to the authors' shuffled order); otherwise applies
        `user_splits.split_seen_unseen(users, seed)`. The position of a user in the returned seen
        array is the `index` of the authors' `MetaDataset` (used by `support_query_split`).
        """
        if self.user_seen is not None:
            return np.flatnonzero(self.user_seen), np.flatnonzero(~self.user_seen)
        from jaxmethods.data.user_splits import split_seen_unseen

        position = {u: i for i, u in enumerate(self.users)}
        seen, unseen = split_seen_unseen(self.users, seed)
        return (
            np.array([position[u] for u in seen], dtype=np.int64),
            np.array([position[u] for u in unseen], dtype=np.int64),
        )


def _check_range(name: str, arr: np.ndarray, size: int, what: str) -> None:
    bad = np.flatnonzero((arr < 0) | (arr >= size))
    if bad.size:
        raise ValueError(
            f"PreferenceCorpus.{name}: pair {bad[0]} has index {arr[bad[0]]}, out of range for "
            f"{size} {what}"
        )


def save_corpus(
    corpus: PreferenceCorpus, directory: str | os.PathLike, *, embedding_dtype: str = "float32"
) -> Path:
    """Writes `embeddings.npy`, `pairs.jsonl` and `corpus.json` into `directory` (created).

    Args:
      embedding_dtype: "float32", or "bfloat16" to halve the file (stored as the uint16 bit
        pattern; `load_corpus` converts back, exactly for values that came from bf16).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if embedding_dtype == "float32":
        emb = corpus.embeddings
    elif embedding_dtype == "bfloat16":
        import ml_dtypes

        emb = corpus.embeddings.astype(ml_dtypes.bfloat16).view(np.uint16)
    else:
        raise ValueError(
            f"save_corpus: embedding_dtype must be float32 or bfloat16, got {embedding_dtype!r}"
        )
    np.save(directory / EMBEDDINGS_FILE, emb)
    with open(directory / PAIRS_FILE, "w", encoding="utf-8") as f:
        for i in range(corpus.num_pairs):
            row = {
                "user": corpus.users[corpus.pair_user[i]],
                "conversation": int(corpus.pair_conv[i]),
                "split": int(corpus.pair_split[i]),
                "chosen": int(corpus.chosen[i]),
                "rejected": int(corpus.rejected[i]),
            }
            if corpus.meta is not None:
                row["meta"] = corpus.meta[i]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    header = {
        "format_version": FORMAT_VERSION,
        "users": corpus.users,
        "user_seen": None if corpus.user_seen is None else corpus.user_seen.tolist(),
        "embedding_dtype": embedding_dtype,
        "num_pairs": corpus.num_pairs,
        "embedding_shape": list(corpus.embeddings.shape),
    }
    (directory / HEADER_FILE).write_text(json.dumps(header, indent=1), encoding="utf-8")
    return directory


_PAIR_FIELDS = ("user", "conversation", "split", "chosen", "rejected")


def load_corpus(directory: str | os.PathLike, *, mmap: bool = False) -> PreferenceCorpus:
    """Reads a corpus folder written by `save_corpus` (or by hand in the same format).

    Raises ValueError naming the file and line for a malformed line, a missing field, an unknown
    user or a row index out of range. `mmap=True` memory-maps a float32 `embeddings.npy`.
    """
    directory = Path(directory)
    emb_path, pairs_path, header_path = (
        directory / EMBEDDINGS_FILE,
        directory / PAIRS_FILE,
        directory / HEADER_FILE,
    )
    for path in (emb_path, pairs_path):
        if not path.is_file():
            raise FileNotFoundError(f"load_corpus: {path} does not exist")
    header: dict[str, Any] = {}
    if header_path.is_file():
        try:
            header = json.loads(header_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{header_path}: malformed JSON ({e})") from None
    emb = np.load(emb_path, mmap_mode="r" if mmap else None)
    dtype_name = header.get("embedding_dtype", "float32")
    if dtype_name == "bfloat16":
        import ml_dtypes

        if emb.dtype != np.uint16:
            raise ValueError(
                f"{emb_path}: corpus.json says bfloat16 (uint16 bits), file has {emb.dtype}"
            )
        emb = np.asarray(emb).view(ml_dtypes.bfloat16).astype(np.float32)
    elif dtype_name != "float32":
        raise ValueError(f"{header_path}: unknown embedding_dtype {dtype_name!r}")
    if emb.ndim != 2:
        raise ValueError(f"{emb_path}: expected a [N, D] array, got shape {emb.shape}")
    n_rows = emb.shape[0]

    users: list[str] = list(header.get("users") or [])
    user_index = {u: i for i, u in enumerate(users)}
    fixed_users = bool(users)
    cols: dict[str, list[int]] = {k: [] for k in _PAIR_FIELDS}
    metas: list[Any] = []
    for where, row in jsonl_objects(pairs_path):
        for key in _PAIR_FIELDS:
            if key not in row:
                raise ValueError(f"{where}: missing field {key!r}")
        user = str(row["user"])
        if user not in user_index:
            if fixed_users:
                raise ValueError(f"{where}: user {user!r} is not listed in {header_path}")
            user_index[user] = len(users)
            users.append(user)
        values = {}
        for key in ("conversation", "split", "chosen", "rejected"):
            value = row[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{where}: field {key!r} must be an integer, got {value!r}")
            values[key] = value
        for key in ("chosen", "rejected"):
            if not 0 <= values[key] < n_rows:
                raise ValueError(
                    f"{where}: {key} row {values[key]} is out of range for {emb_path} "
                    f"with {n_rows} rows"
                )
        if values["split"] not in (TRAIN, TEST):
            raise ValueError(f"{where}: split must be 0 (train) or 1 (test), got {values['split']}")
        if values["conversation"] < 0:
            raise ValueError(f"{where}: conversation must be >= 0, got {values['conversation']}")
        cols["user"].append(user_index[user])
        for key, value in values.items():
            cols[key].append(value)
        metas.append(row.get("meta"))
    has_meta = any(m is not None for m in metas)
    user_seen = header.get("user_seen")
    return PreferenceCorpus(
        embeddings=emb,
        users=users,
        pair_user=np.array(cols["user"], dtype=np.int32),
        pair_conv=np.array(cols["conversation"], dtype=np.int32),
        pair_split=np.array(cols["split"], dtype=np.int8),
        chosen=np.array(cols["chosen"], dtype=np.int32),
        rejected=np.array(cols["rejected"], dtype=np.int32),
        meta=[m if m is not None else {} for m in metas] if has_meta else None,
        user_seen=None if user_seen is None else np.asarray(user_seen, dtype=bool),
    )


def corpus_from_user_pairs(
    embeddings: np.ndarray,
    records: Sequence[dict[str, Any]],
) -> PreferenceCorpus:
    """Builds a corpus from flat per-pair records, keeping their order.

    Each record needs "user_id", "conversation_id" (any hashable), "chosen_idx", "rejected_idx"
    and optionally "split" ("train"/0 or "val"/"validation"/"test"/1; default train). Users and
    conversations are numbered in order of first appearance. The record itself becomes `meta`.
    """
    users: dict[str, int] = {}
    convs: dict[tuple[str, Any], int] = {}
    cols: dict[str, list[int]] = {k: [] for k in ("user", "conv", "split", "chosen", "rejected")}
    for i, rec in enumerate(records):
        for key in ("user_id", "conversation_id", "chosen_idx", "rejected_idx"):
            if key not in rec:
                raise ValueError(f"corpus_from_user_pairs: record {i} is missing field {key!r}")
        uid = str(rec["user_id"])
        users.setdefault(uid, len(users))
        conv_key = (uid, rec["conversation_id"])
        convs.setdefault(conv_key, len(convs))
        split = rec.get("split", TRAIN)
        if split in ("train", TRAIN):
            split = TRAIN
        elif split in ("val", "validation", "test", TEST):
            split = TEST
        else:
            raise ValueError(f"corpus_from_user_pairs: record {i} has unknown split {split!r}")
        cols["user"].append(users[uid])
        cols["conv"].append(convs[conv_key])
        cols["split"].append(split)
        cols["chosen"].append(int(rec["chosen_idx"]))
        cols["rejected"].append(int(rec["rejected_idx"]))
    return PreferenceCorpus(
        embeddings=embeddings,
        users=list(users),
        pair_user=np.array(cols["user"], dtype=np.int32),
        pair_conv=np.array(cols["conv"], dtype=np.int32),
        pair_split=np.array(cols["split"], dtype=np.int8),
        chosen=np.array(cols["chosen"], dtype=np.int32),
        rejected=np.array(cols["rejected"], dtype=np.int32),
        meta=[dict(r) for r in records],
    )
