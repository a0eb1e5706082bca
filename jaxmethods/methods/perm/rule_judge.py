"""A deterministic rule-based PERM judge for tests and demos (not a measure of empathy).

It reads the same judge requests an LLM judge gets (kind from the prompt, the judged text
between the prompt's markers) and answers in the LLM judge's format, so the whole judge layer
(prompts, parsers, None handling) runs unchanged. Scores grow with lexical cues a tiny policy
can learn to emit:

    resonation (analysis)  1 if empty, else 2 + min(2, emotion words) + 1 if 4-40 words
    expression (response)  1 if empty, else 2 + min(2, warm words) + 1 if no stock filler
    reception  (response)  1 if empty, else 2 + min(3, support phrases)
    standby    (response)  0 if empty, else 40 + 10 min(3, concrete words) + 30 if 4-60 words
"""

from __future__ import annotations

import json
import re

from jaxmethods.llm import FunctionClient, Request
from jaxmethods.methods.perm import rubrics
from jaxmethods.methods.perm.eqbench import JUDGE_MARKER

EMOTION = ("feel", "stress", "worr", "lonely", "frustrat", "tired", "sad", "anxious", "afraid",
           "overwhelm", "hurt", "proud", "nervous")  # fmt: skip
WARM = ("you", "your", "together", "with you", "hear you")
FILLER = ("i can understand why", "it is valid to feel", "it is understandable")
SUPPORT = ("not alone", "here for you", "proud of you", "it makes sense", "you deserve")
CONCRETE = ("try", "step", "plan", "today", "tomorrow", "call", "write", "walk")

_DIMENSION = re.compile(r"\*\*Dimension:\*\* (\w+)")
_SECTIONS = {
    "analysis": re.compile(r"\*\*Assistant Analysis:\*\*\n(.*?)\n\n---\n\n### 3\.", re.S),
    "response": re.compile(r"\*\*Assistant Response:\*\*\n(.*?)\n\n---\n\n### 3\.", re.S),
    "standby": re.compile(r"\nAI: (.*?)\n\n---\n\nEvaluate the AI response", re.S),
}


def _count(text: str, cues: tuple[str, ...]) -> int:
    low = text.lower()
    return sum(cue in low for cue in cues)


def rule_scores(kind: str, text: str) -> int:
    """The rule score of `text` (the judged section) for judge `kind`."""
    words = len(text.split())
    if kind == "standby":
        if not words:
            return 0
        return min(100, 40 + 10 * min(3, _count(text, CONCRETE)) + (30 if 4 <= words <= 60 else 0))
    if not words:
        return 1
    if kind == "resonation":
        return min(5, 2 + min(2, _count(text, EMOTION)) + (1 if 4 <= words <= 40 else 0))
    if kind == "expression":
        return min(5, 2 + min(2, _count(text, WARM)) + (0 if _count(text, FILLER) else 1))
    if kind == "reception":
        return min(5, 2 + min(3, _count(text, SUPPORT)))
    raise ValueError(f"rule judge: unknown kind {kind!r}")


def judged_text(request: Request) -> tuple[str, str]:
    """(kind, judged text) of a PERM judge request."""
    system, user = request.messages[0]["content"], request.messages[-1]["content"]
    if system == rubrics.STANDBY_SYSTEM_PROMPT:
        kind, section = "standby", "standby"
    else:
        match = _DIMENSION.search(user)
        if match is None:
            raise ValueError("rule judge: the request is not a PERM judge prompt (no Dimension)")
        kind = match.group(1)
        section = "analysis" if "**Assistant Analysis:**" in user else "response"
    found = _SECTIONS[section].search(user)
    if found is None:
        raise ValueError(f"rule judge: no {section} section in the {kind} prompt")
    return kind, found.group(1)


def eqbench_reply(prompt: str) -> str:
    """A JSON verdict for an EQ-Bench-style rubric prompt (`eqbench.JUDGE_PROMPT`): every
    criterion gets 4 + 4 x (emotion, warm, support and concrete cues present in the assistant's
    turns), at most 20."""
    transcript = prompt.split("[TRANSCRIPT START]", 1)[-1].split("[TRANSCRIPT END]", 1)[0]
    turns = " ".join(re.findall(r"ASSISTANT: (.*?)(?=\n\nUSER: |\n$|$)", transcript, re.S))
    cues = sum(_count(turns, c) > 0 for c in (EMOTION, WARM, SUPPORT, CONCRETE))
    criteria = re.search(r"Criteria: (.*)", prompt).group(1).split(", ")
    return json.dumps({c: min(20, 4 + 4 * cues) for c in criteria})


def rule_judge_reply(request: Request) -> str:
    """The reply an LLM judge would write, in PERM's format, with the rule score (or an
    EQ-Bench-style JSON verdict for the harness's prompts)."""
    if request.messages[-1]["content"].startswith(JUDGE_MARKER):
        return eqbench_reply(request.messages[-1]["content"])
    kind, text = judged_text(request)
    score = rule_scores(kind, text)
    if kind == "standby":
        return (
            f"1. Overall Assessment:\nRule-based: {len(text.split())} words.\n\n"
            f"3. Total Score: {score} / 100"
        )
    return f"Reason: rule-based ({len(text.split())} words).\nScore: {score}"


def rule_judge_client(cache_dir: str = "") -> FunctionClient:
    """The rule judge as an `LLMClient` (no network, deterministic)."""
    return FunctionClient(rule_judge_reply, model="perm-rule-judge", cache_dir=cache_dir)
