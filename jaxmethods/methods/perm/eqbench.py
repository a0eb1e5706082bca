"""An EQ-Bench-3-style evaluation harness (offline, local files): the policy plays multi-turn
role-play scenarios, a judge scores its side of each transcript on rubric criteria from 0 to 20,
scaled to 0-100, and the harness reports per-criterion means and their overall mean.

This is a stand-in, not EQ-Bench 3: the scenarios are JSON files (`tests/data/perm/eqbench_*.json`
are a handful written in its style), the judge prompt is ours, and there is no pairwise Elo.
For the official benchmark, export the policy (`<workdir>/hf_export`, HF safetensors), serve it
with vLLM or `python -m jaxmethods.serve`, and run https://github.com/EQ-bench/eqbench3 against
that endpoint (docs/perm.md).

Scenario file: `{"criteria": [names...], "scenarios": [{"id": str, "category": str,
"system": str (optional), "turns": [user message, ...]}, ...]}`; `criteria` defaults to
`DEFAULT_CRITERIA`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxmethods.llm import LLMRequestError, Request

DEFAULT_CRITERIA = ("demonstrated_empathy", "pragmatic_ei", "depth_of_insight",
                    "social_dexterity", "emotional_reasoning", "message_tailoring")  # fmt: skip
JUDGE_MARKER = "You are an expert in assessing emotional intelligence in role-play transcripts."
JUDGE_PROMPT = (
    JUDGE_MARKER + " Score the ASSISTANT's turns only (the user's turns are scripted) on each "
    "criterion below, from 0 (absent) to 20 (exceptional).\n\n[TRANSCRIPT START]\n{transcript}\n"
    "[TRANSCRIPT END]\n\nCriteria: {criteria}\n\nAnswer with one JSON object mapping every "
    'criterion to its integer score, e.g. {{"{first}": 12, ...}}, and nothing else.'
)


@dataclass(frozen=True)
class Scenario:
    id: str
    category: str
    turns: tuple[str, ...]
    criteria: tuple[str, ...]
    system: str = ""


def read_scenarios(paths: Sequence[str]) -> list[Scenario]:
    """Every scenario of the JSON files; errors name the file, scenario index and field."""
    out = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: malformed JSON ({e.msg}, line {e.lineno})") from None
        criteria = tuple(data.get("criteria") or DEFAULT_CRITERIA)
        if not isinstance(data.get("scenarios"), list) or not data["scenarios"]:
            raise ValueError(f"{path}: field 'scenarios' must be a non-empty list")
        for i, s in enumerate(data["scenarios"]):
            where = f"{path}: scenarios[{i}]"
            turns = s.get("turns") if isinstance(s, dict) else None
            if (
                not isinstance(turns, list)
                or not turns
                or not all(isinstance(t, str) for t in turns)
            ):
                raise ValueError(f"{where}: field 'turns' must be a non-empty list of strings")
            if not isinstance(s.get("id"), str):
                raise ValueError(f"{where}: field 'id' is missing or not a string")
            out.append(Scenario(s["id"], str(s.get("category", "")), tuple(turns), criteria,
                                str(s.get("system", ""))))  # fmt: skip
    return out


def play(client: Any, scenarios: Sequence[Scenario], max_tokens: int) -> list[list[dict]]:
    """Each scenario's transcript (chat messages) with the policy's greedy answers, one batched
    `complete` call per turn index across scenarios."""
    chats = [[{"role": "system", "content": s.system}] if s.system else [] for s in scenarios]
    for turn in range(max(len(s.turns) for s in scenarios)):
        live = [i for i, s in enumerate(scenarios) if turn < len(s.turns)]
        for i in live:
            chats[i].append({"role": "user", "content": scenarios[i].turns[turn]})
        outs = client.complete([Request(tuple(chats[i]), max_tokens=max_tokens) for i in live])
        for i, o in zip(live, outs):
            chats[i].append({"role": "assistant", "content": o.text})
    return chats


def judge_request(chat: Sequence[dict], criteria: Sequence[str], max_tokens: int) -> Request:
    transcript = "\n\n".join(
        f"{m['role'].upper()}: {m['content']}" for m in chat if m["role"] != "system"
    )
    prompt = JUDGE_PROMPT.format(
        transcript=transcript, criteria=", ".join(criteria), first=criteria[0]
    )
    return Request.from_prompt(prompt, max_tokens=max_tokens)


def parse_rubric(text: Any, criteria: Sequence[str]) -> dict[str, float | None]:
    """criterion -> score in [0, 20] (None when missing or out of range): a JSON object in the
    reply, else `criterion: N` lines."""
    found: dict[str, Any] = {}
    if isinstance(text, str):
        match = re.search(r"\{.*\}", text, re.S)
        if match:
            try:
                obj = json.loads(match.group(0))
                found = obj if isinstance(obj, dict) else {}
            except json.JSONDecodeError:
                found = {}
        for c in criteria:
            if c not in found:
                m = re.search(rf"{re.escape(c)}\W*?(\d+(?:\.\d+)?)", text, re.I)
                found[c] = float(m.group(1)) if m else None
    out = {}
    for c in criteria:
        v = found.get(c)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 20
        out[c] = float(v) if ok else None
    return out


def evaluate(
    policy_client: Any,
    judge_client: Any,
    scenarios: Sequence[Scenario],
    *,
    max_new_tokens: int = 256,
    judge_max_tokens: int = 1024,
) -> tuple[dict[str, float], list[dict]]:
    """(metrics `eqbench/<criterion>` (0-100 means over scenarios) + `eqbench/rubric_score`,
    per-scenario rows with the transcript and the judge's reply)."""
    chats = play(policy_client, scenarios, max_new_tokens)
    reqs = [judge_request(c, s.criteria, judge_max_tokens) for c, s in zip(chats, scenarios)]
    try:
        replies = judge_client.complete(reqs)
    except LLMRequestError as e:
        raise RuntimeError(f"EQ-Bench-style judge failed: {e}") from e
    rows: list[dict] = []
    per: dict[str, list[float]] = {}
    for s, chat, r in zip(scenarios, chats, replies):
        scores = parse_rubric(r.text, s.criteria)
        for c, v in scores.items():
            if v is not None:
                per.setdefault(c, []).append(5.0 * v)  # 0-20 -> 0-100
        rows.append({"id": s.id, "category": s.category, "transcript": chat,
                     "judge": r.text, "scores": scores})  # fmt: skip
    if not per:
        raise ValueError(
            f"EQ-Bench-style judge: no reply had a parseable score; first: {replies[0].text!r:.400}"
        )
    metrics = {f"eqbench/{c}": float(np.mean(v)) for c, v in per.items()}
    metrics["eqbench/rubric_score"] = float(np.mean(list(metrics.values())))
    metrics["eqbench/scenarios"] = float(len(scenarios))
    return metrics, rows


def run_eqbench(cfg: Any, model: Any, tokenizer: Any, judge: Any, workdir: str):
    """The harness for a trained PERM policy with the run's judge client; writes
    `<workdir>/eqbench.json`; returns (metrics, markdown table)."""
    from jaxmethods.llm import GenerationEngine, LocalClient
    from jaxmethods.train.metrics import write_json_atomic

    scenarios = read_scenarios(cfg.eqbench.scenario_files)
    engine = GenerationEngine(model, tokenizer, name="perm-policy", max_batch_size=8)
    metrics, rows = evaluate(
        LocalClient(engine), judge.client, scenarios,
        max_new_tokens=cfg.eqbench.max_new_tokens, judge_max_tokens=cfg.eqbench.judge_max_tokens,
    )  # fmt: skip
    write_json_atomic(os.path.join(workdir, "eqbench.json"), {"metrics": metrics, "rows": rows})
    lines = ["| EQ-Bench-style criterion (0-100) | mean |", "|---|---|"]
    lines += [f"| {k.split('/', 1)[1]} | {v:.1f} |" for k, v in metrics.items()
              if k != "eqbench/scenarios"]  # fmt: skip
    return metrics, "\n".join(lines)
