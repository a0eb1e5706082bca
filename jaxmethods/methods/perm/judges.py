"""PERM's judge layer: four judge kinds over a batch -> `int | None` scores -> the `[B, R]` score
matrix the GRPO trainer composes (`reward_fn` of `jaxmethods.train.grpo`).

    resonation   the # Analysis section   analysis prompt + resonation rubric     Score: 1-5
    expression   the # Response section   response prompt + expression rubric     Score: 1-5
    reception    the # Response section   response prompt + reception rubric      Score: 1-5
    standby      the # Response section   bystander prompts (5 dims x 0-20)        Total Score: X/100

Prompts and parsers follow the authors' `perm/empathy_judge.py` and `perm/utils.py`; a score that
does not parse is None, replaced by the mean of the batch's valid scores of that kind (an
all-None batch is an error quoting the judge's reply). Every back-end is a
`jaxmethods.llm.LLMClient`: any OpenAI-compatible endpoint (gpt-4o-mini as in the paper, vLLM,
`python -m jaxmethods.serve`), the in-process engine, or `rule_judge_client()` (deterministic, for
tests and demos). All 4·B requests of a batch go out in one `complete` call (bounded concurrency).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jaxmethods.llm import LLMRequestError, Request, make_client
from jaxmethods.llm.config import LLMConfig
from jaxmethods.methods.perm import rubrics
from jaxmethods.methods.perm.prompts import parse_completion
from jaxmethods.methods.perm.rewards import EMPATHY_KINDS
from jaxmethods.train.config import positive

KINDS = (*EMPATHY_KINDS, "standby")
BACKENDS = ("rule", "llm")
CRITERIA = {
    "resonation": rubrics.RESONATION_CRITERIA,
    "expression": rubrics.EXPRESSION_CRITERIA,
    "reception": rubrics.RECEPTION_CRITERIA,
}
STANDBY_PATTERN = re.compile(r"total score:\s*(\d+)\s*/\s*\d+")


def _paper_llm() -> LLMConfig:
    # perm/api_call.py: 5 retries, 64 requests in flight (perm/empathy_judge.py's batch_size)
    return LLMConfig(backend="openai", model="gpt-4o-mini", max_concurrency=64, max_retries=5)


@dataclass(frozen=True)
class JudgeConfig:
    """The `judge` section. backend "rule": the deterministic rule-based judge; "llm": `llm`
    (an `LLMConfig`: OpenAI-compatible endpoint or in-process model). Sampling settings are the
    paper's (temperature 0.3, top_p 0.9, max_tokens 1024)."""

    backend: str = "llm"
    temperature: float = 0.3
    top_p: float = 0.9
    max_tokens: int = positive(1024)
    llm: LLMConfig = field(default_factory=_paper_llm)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"config.judge.backend: {self.backend!r} is not one of {BACKENDS}")


class JudgeError(RuntimeError):
    """A judge batch that cannot be scored (every reply unparseable, or the endpoint failing)."""


def parse_empathy_score(text: Any) -> int | None:
    """The int after "Score:" on the first line that starts with it (`extract_score`); None when
    there is no such line or its value is not an integer."""
    if not isinstance(text, str):
        return None
    for line in text.splitlines():
        if line.startswith("Score:"):
            try:
                return int(line.split(":")[1].strip())
            except ValueError:
                return None
    return None


def parse_standby_score(text: Any) -> int | None:
    """X of the first non-empty line matching `total score: X / N` (lower-cased), else None
    (`calculate_standby_reward`)."""
    if not isinstance(text, str):
        return None
    for line in text.splitlines():
        if line.strip():
            match = STANDBY_PATTERN.search(line.lower())
            if match:
                return int(match.group(1))
    return None


def parse_judge_reply(kind: str, text: Any) -> int | None:
    return parse_standby_score(text) if kind == "standby" else parse_empathy_score(text)


def fill_none(scores: Sequence[int | None], raw: Sequence[str], kind: str) -> np.ndarray:
    """[B] float32: None replaced by the mean of the valid scores (`replace_none_with_mean`).

    Raises JudgeError quoting the first reply when every score is None."""
    valid = [s for s in scores if s is not None]
    if not valid:
        first = raw[0] if raw else ""
        raise JudgeError(
            f"judge {kind!r}: none of the {len(scores)} replies has a score (expected "
            f"{'Total Score: X/100' if kind == 'standby' else 'a line starting with Score:'}); "
            f"first reply: {first[:400]!r}"
        )
    mean = float(np.mean(valid))
    return np.array([mean if s is None else s for s in scores], np.float32)


def judge_messages(
    kind: str, record: Mapping[str, Any], analysis: str, response: str
) -> list[dict[str, str]]:
    """The chat messages of one judge call (`prepare_prompt_analysis / _response / _standby`)."""
    ctx = {"scenario": record["scenario"], "persona": record["persona"], "query": record["query"]}
    if kind == "standby":
        user = rubrics.STANDBY_USER_PROMPT.format(**ctx, response=response)
        return [
            {"role": "system", "content": rubrics.STANDBY_SYSTEM_PROMPT},
            {"role": "user", "content": user},
        ]
    if kind not in CRITERIA:
        raise ValueError(f"judge kind {kind!r} is not one of {KINDS}")
    if kind == "resonation":
        user = rubrics.ANALYSIS_PROMPT.format(
            dimension=kind, criteria=CRITERIA[kind], **ctx, analysis=analysis
        )
    else:
        user = rubrics.RESPONSE_PROMPT.format(
            dimension=kind, criteria=CRITERIA[kind], **ctx, response=response
        )
    return [
        {"role": "system", "content": rubrics.JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]


class PERMJudge:
    """Scores completions with the judge kinds `kinds` through `client`.

    Args:
      client: any `LLMClient`.
      kinds: the score columns, in order (default all four).
      temperature, top_p, max_tokens: sampling settings of every judge request.
      endpoint: where the client sends requests, for error messages.
    """

    def __init__(
        self,
        client: Any,
        *,
        kinds: Sequence[str] = KINDS,
        temperature: float = 0.3,
        top_p: float = 0.9,
        max_tokens: int = 1024,
        endpoint: str = "",
    ):
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise ValueError(f"PERMJudge: unknown judge kinds {unknown}; choose from {KINDS}")
        self.client, self.kinds, self.endpoint = client, tuple(kinds), endpoint
        self.settings = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
        self.last_raw: dict[str, list[str]] = {}

    def requests(
        self, kind: str, records: Sequence[Mapping[str, Any]], completions: Sequence[str]
    ) -> list[Request]:
        parsed = [parse_completion(c) for c in completions]
        return [
            Request(tuple(judge_messages(kind, r, a, resp)), **self.settings)
            for r, (a, resp) in zip(records, parsed)
        ]

    def raw_scores(
        self, records: Sequence[Mapping[str, Any]], completions: Sequence[str]
    ) -> tuple[dict[str, list[int | None]], dict[str, list[str]]]:
        """({kind: [B] int | None}, {kind: [B] judge replies}); one `complete` call for all."""
        if len(records) != len(completions):
            raise ValueError(
                f"PERMJudge: {len(records)} records for {len(completions)} completions"
            )
        reqs = [q for k in self.kinds for q in self.requests(k, records, completions)]
        try:
            outs = self.client.complete(reqs)
        except LLMRequestError as e:
            where = self.endpoint or getattr(self.client, "model_name", "the judge")
            raise JudgeError(f"PERM judge at {where}: {e}") from e
        b = len(completions)
        raw = {k: [o.text for o in outs[i * b : (i + 1) * b]] for i, k in enumerate(self.kinds)}
        scores = {k: [parse_judge_reply(k, t) for t in raw[k]] for k in self.kinds}
        self.last_raw = raw
        return scores, raw

    def score_matrix(
        self, records: Sequence[Mapping[str, Any]], completions: Sequence[str]
    ) -> np.ndarray:
        """[B, len(kinds)] float32 scores, None filled per kind with the batch mean."""
        if not len(completions):
            return np.zeros((0, len(self.kinds)), np.float32)
        scores, raw = self.raw_scores(records, completions)
        return np.stack([fill_none(scores[k], raw[k], k) for k in self.kinds], axis=1)

    __call__ = score_matrix


def make_judge(cfg: JudgeConfig, kinds: Sequence[str] = KINDS, cache_dir: str = "") -> PERMJudge:
    """The judge `cfg` describes (the rule judge, or an LLM client from `cfg.llm`)."""
    settings = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens}
    if cfg.backend == "rule":
        from jaxmethods.methods.perm.rule_judge import rule_judge_client

        return PERMJudge(rule_judge_client(), kinds=kinds, **settings, endpoint="rule judge")
    llm = cfg.llm
    client = make_client(llm, cache_dir=cache_dir) if cache_dir else make_client(llm)
    endpoint = llm.base_url or ("api.openai.com" if llm.backend == "openai" else llm.model)
    return PERMJudge(client, kinds=kinds, **settings, endpoint=endpoint)
