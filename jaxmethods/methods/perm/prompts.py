"""PERM's policy I/O: the JSONL reader, the exact system/user templates of the authors'
`perm/empathy_dataset.py`, the chat-templated prompt records the GRPO trainer consumes, and the
`# Analysis` / `# Response` completion parser of `perm/utils.py`.

A training record is `{"persona": {"identity": str, ...}, "scenario": str, "dialogue":
[first_user_query, ...]}`; only `persona.identity`, `scenario` and `dialogue[0]` are used. A
prompt record is `{"persona", "scenario", "query", "prompt"}` (plus `"user"` when the record has
one), where `"prompt"` is the chat-templated text (`add_generation_prompt=True`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from jaxmethods.data.jsonl import jsonl_objects

SYSTEM_PROMPT = (
    "You are a helpful, warm, and empathetic AI assistant.\n"
    "You will be provided with the user's basic profile (Persona) and their current context "
    "(Scenario). Your task is to generate a response to the user."
)
USER_PROMPT = (
    "\n**User Persona:** {persona}\n**Current scenario:** {scenario}\n\n**User Query:** {query}"
    "\n\n**Output Requirement:**\nRespond in exactly this output format:\n\n# Analysis\n"
    "<Analyze the current scenario and user's emotion>\n\n# Response\n"
    "<Write your response to the user here>\n"
)
COMPLETION_PATTERN = re.compile(r"#\s*Analysis\s*(.*?)\s*#\s*Response\s*(.*)", re.DOTALL | re.I)
NUM_TRAIN_SAMPLES = 3000  # grpo_train.sh: --num_train_samples 3000


def read_records(path: str, user_key: str = "") -> list[dict[str, Any]]:
    """`{"persona", "scenario", "query"}` (+ `"user"` from `user_key`) of every line of a PERM
    JSONL file. Errors name the file, line and field."""
    rows = []
    for where, obj in jsonl_objects(path):
        persona = obj.get("persona")
        if not isinstance(persona, Mapping) or not isinstance(persona.get("identity"), str):
            raise ValueError(f"{where}: field 'persona.identity' is missing or not a string")
        if not isinstance(obj.get("scenario"), str):
            raise ValueError(f"{where}: field 'scenario' is missing or not a string")
        dialogue = obj.get("dialogue")
        if not isinstance(dialogue, list) or not dialogue or not isinstance(dialogue[0], str):
            raise ValueError(f"{where}: field 'dialogue' must be a non-empty list of strings")
        row = {"persona": persona["identity"], "scenario": obj["scenario"], "query": dialogue[0]}
        if user_key:
            user = obj.get(user_key)
            if isinstance(user, bool) or not isinstance(user, (int, str)):
                raise ValueError(f"{where}: field {user_key!r} is missing or not a user id")
            row["user"] = obj[user_key]
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no records")
    return rows


def sample_records(records: Sequence[dict], num: int, seed: int) -> list[dict]:
    """`num` records drawn without replacement (all of them, in order, when `num` is 0 or not
    smaller than the file), as the authors' `random.sample`."""
    if not num or num >= len(records):
        return list(records)
    return random.Random(seed).sample(list(records), num)


def chat_messages(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The system + user messages of one record (the authors' `EmpathyDataset.__getitem__`)."""
    user = USER_PROMPT.format(
        persona=record["persona"], scenario=record["scenario"], query=record["query"]
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def prompt_records(records: Sequence[Mapping[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """Each record plus `"prompt"`: its messages through the tokenizer's chat template (Qwen2.5's
    for the paper's policy), ending with the assistant turn's opening."""
    out = []
    for r in records:
        text = tokenizer.apply_chat_template(
            chat_messages(r), tokenize=False, add_generation_prompt=True
        )
        out.append({**r, "prompt": text})
    return out


def parse_completion(text: str) -> tuple[str, str]:
    """`(analysis, response)`, both stripped, from `# Analysis ... # Response ...` (headers match
    case-insensitively; sections may span lines); `("", "")` when the headers are not there."""
    match = COMPLETION_PATTERN.search(text if isinstance(text, str) else "")
    if match is None:
        return "", ""
    return match.group(1).strip(), match.group(2).strip()
