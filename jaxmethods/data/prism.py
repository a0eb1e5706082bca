"""PRISM (`HannahRoseKirk/prism-alignment`) preference pairs, as the MRM authors build them.

Port of the authors' `scripts/preprocess_prism.py` (mrm.md §4), text side only (the embeddings
come from `jaxmethods.methods.mrm.extract_embeddings`).

Raw files and the fields relied on (PRISM dataset card, HF dataset repo, files at the root):
  survey.jsonl         one participant per line: `user_id` (str), `num_completed_conversations`
                       (int). Other survey fields are not used (no demographic text is added).
  conversations.jsonl  one conversation per line: `conversation_id` (str), `user_id` (str),
                       `conversation_turns` (int, number of turns), `conversation_history`: a list
                       of utterances with `turn` (0-based int), `role` ("user" or "model"),
                       `content` (str), `score` (the participant's 1-100 rating, models only) and
                       `if_chosen` (bool, models only).

Rules (in the authors' order):
  1. Users with `num_completed_conversations == 0` are dropped (their conversations too).
  2. A turn is qualified when it has a user utterance, a chosen and >= 1 rejected response;
     dialogues with no qualified turn are dropped.
  3. Users with fewer than `min_dialogues` (6, "following LoRe") remaining dialogues are removed.
  4. For each qualified turn, one pair per rejected response; the prompt is the previous
     *qualified* turns (first user utterance + chosen reply) followed by the current first user
     utterance. Unqualified turns neither produce pairs nor enter the history.
Users come in survey order, dialogues in conversations.jsonl order, turns by index.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jaxmethods.data.jsonl import jsonl_objects
from jaxmethods.data.preferences import TextPair

HF_REPO_ID = "HannahRoseKirk/prism-alignment"
SURVEY_FILE = "survey.jsonl"
CONVERSATIONS_FILE = "conversations.jsonl"
MIN_DIALOGUES = 6


@dataclasses.dataclass
class PrismStats:
    """Counts after each filter (printed by the authors' script)."""

    survey_users: int = 0
    users_without_conversations: int = 0
    conversations: int = 0
    dialogues_without_qualified_turn: int = 0
    users_below_min_dialogues: int = 0
    users: int = 0
    dialogues: int = 0
    pairs: int = 0


def resolve_prism_files(
    source: str | os.PathLike, revision: str | None = None
) -> tuple[Path, Path]:
    """(survey.jsonl, conversations.jsonl) from a local folder, or downloaded from an HF repo id."""
    path = Path(source)
    if path.is_dir():
        files = (path / SURVEY_FILE, path / CONVERSATIONS_FILE)
        for f in files:
            if not f.is_file():
                raise FileNotFoundError(f"PRISM: {f} does not exist (expected the raw HF files)")
        return files
    if path.exists():
        raise ValueError(f"PRISM: {path} is a file; pass the folder holding {SURVEY_FILE}")
    from huggingface_hub import hf_hub_download

    return tuple(  # type: ignore[return-value]
        Path(hf_hub_download(str(source), name, repo_type="dataset", revision=revision))
        for name in (SURVEY_FILE, CONVERSATIONS_FILE)
    )


def _field(row: dict[str, Any], key: str, where: str, *kinds: type) -> Any:
    """row[key], checked to be one of `kinds` (bool is not accepted as a number)."""
    if key not in row:
        raise ValueError(f"{where}: missing field {key!r}")
    value = row[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ValueError(f"{where}: field {key!r} must be {names}, got {value!r}")
    return value


@dataclasses.dataclass
class _Turn:
    user: list[str] = dataclasses.field(default_factory=list)
    chosen: list[str] = dataclasses.field(default_factory=list)
    chosen_scores: list[float | None] = dataclasses.field(default_factory=list)
    rejected: list[str] = dataclasses.field(default_factory=list)
    rejected_scores: list[float | None] = dataclasses.field(default_factory=list)

    @property
    def qualified(self) -> bool:
        return bool(self.user and self.chosen and self.rejected)


def _parse_turns(row: dict[str, Any], where: str) -> list[_Turn]:
    num_turns = _field(row, "conversation_turns", where, int)
    turns = [_Turn() for _ in range(num_turns)]
    history = _field(row, "conversation_history", where, list)
    for k, utt in enumerate(history):
        at = f"{where}: conversation_history[{k}]"
        if not isinstance(utt, dict):
            raise ValueError(f"{at}: expected an object, got {type(utt).__name__}")
        t = _field(utt, "turn", at, int)
        if not 0 <= t < num_turns:
            raise ValueError(f"{at}: turn {t} is outside 0..{num_turns - 1} (conversation_turns)")
        role = _field(utt, "role", at, str)
        content = _field(utt, "content", at, str)
        if role == "user":
            turns[t].user.append(content)
            continue
        score = utt.get("score")
        if score is not None and not isinstance(score, int | float):
            raise ValueError(f"{at}: field 'score' must be a number or null, got {score!r}")
        if utt.get("if_chosen"):
            turns[t].chosen.append(content)
            turns[t].chosen_scores.append(score)
        else:
            turns[t].rejected.append(content)
            turns[t].rejected_scores.append(score)
    return turns


def load_prism_pairs(
    source: str | os.PathLike = HF_REPO_ID,
    *,
    min_dialogues: int = MIN_DIALOGUES,
    revision: str | None = None,
) -> tuple[list[TextPair], PrismStats]:
    """PRISM text pairs grouped by user and conversation, in the authors' order.

    Args:
      source: the HF dataset id (downloaded with `huggingface_hub`), or a local folder holding
        `survey.jsonl` and `conversations.jsonl` in the raw PRISM schema.
      min_dialogues: remove users with fewer remaining dialogues (6 in the paper).

    Returns:
      (pairs, stats). Each `TextPair` carries the PRISM 1-100 scores of the two responses.
    """
    survey_path, conv_path = resolve_prism_files(source, revision)
    stats = PrismStats()
    active: dict[str, list[str]] = {}  # user -> dialogue ids, survey order
    known: set[str] = set()
    for where, row in jsonl_objects(survey_path):
        uid = str(_field(row, "user_id", where, str, int))
        completed = _field(row, "num_completed_conversations", where, int, float)
        stats.survey_users += 1
        known.add(uid)
        if completed == 0:
            stats.users_without_conversations += 1
            continue
        active[uid] = []

    dialogues: dict[str, tuple[str, list[_Turn]]] = {}
    for where, row in jsonl_objects(conv_path):
        uid = str(_field(row, "user_id", where, str, int))
        cid = str(_field(row, "conversation_id", where, str, int))
        if uid not in known:
            raise ValueError(f"{where}: user_id {uid!r} does not appear in {survey_path}")
        stats.conversations += 1
        if uid not in active:
            continue
        if cid in dialogues:
            raise ValueError(f"{where}: duplicate conversation_id {cid!r}")
        turns = _parse_turns(row, where)
        if not any(t.qualified for t in turns):
            stats.dialogues_without_qualified_turn += 1
            continue
        dialogues[cid] = (uid, turns)
        active[uid].append(cid)

    pairs: list[TextPair] = []
    for uid, dialogue_ids in active.items():
        if len(dialogue_ids) < min_dialogues:
            stats.users_below_min_dialogues += 1
            continue
        stats.users += 1
        stats.dialogues += len(dialogue_ids)
        for cid in dialogue_ids:
            pairs.extend(_dialogue_pairs(uid, cid, dialogues[cid][1]))
    stats.pairs = len(pairs)
    return pairs, stats


def _dialogue_pairs(uid: str, cid: str, turns: list[_Turn]) -> Iterator[TextPair]:
    history: list[dict[str, str]] = []
    for turn in turns:
        if not turn.qualified:
            continue
        prompt = [*history, {"role": "user", "content": turn.user[0]}]
        chosen = turn.chosen[0]
        for k, rejected in enumerate(turn.rejected):
            yield TextPair(
                user_id=uid,
                conversation_id=cid,
                prompt=[dict(m) for m in prompt],
                chosen=chosen,
                rejected=rejected,
                chosen_score=turn.chosen_scores[0],
                rejected_score=turn.rejected_scores[k] if k < len(turn.rejected_scores) else None,
            )
        history += [
            {"role": "user", "content": turn.user[0]},
            {"role": "assistant", "content": chosen},
        ]
