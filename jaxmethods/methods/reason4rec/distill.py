"""Reason distillation (`2_Reasoner/4_distilling_possible_reason.py`), resumable.

For every target (u, i, y):

    base = RM(direct prompt)                                  # no analysis section
    r0 = teacher(reason prompt, T=1)                          # not string-filtered (as the code)
    keep r0 if |y - RM(prompt with r0)| - |y - base| < tau
    else up to `max_retries` hinted tries: reject a reply holding a forbidden string, keep the
    first whose tau test passes; none passes -> the target is dropped.

The teacher is any LLM client (`complete(requests)`: OpenAI-compatible, `jaxmethods.serve`, the
local engine, or a rule-based `FunctionClient`). Targets go in chunks: one `complete` call per
round of the chunk's pending targets, one batched RM call. Every candidate is appended to a JSONL
(accepted or rejected, with why), then a final line per target; the file is flushed after each
round. A teacher failure raises after what was done is on disk, and a rerun continues from the
recorded attempts (sampled requests carry the seed `hash(key) + attempt`, so with the client's
cache a rerun replays the same candidates).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from jaxmethods.methods.reason4rec.prompts import FORBIDDEN, has_forbidden

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """One distillation target: `key` unique (e.g. "user|item|time"), prompts already rendered;
    `predictor_prompt` has an `{analysis}` slot (use `str.replace`, the analysis is free text)."""

    key: str
    rating: float
    reason_prompt: str
    hint_prompt: str
    direct_prompt: str
    predictor_prompt: str


def _seed(key: str, attempt: int) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) + attempt


def read_records(path: str) -> list[dict]:
    """The JSONL's records; a torn or corrupt line is skipped with a warning naming it."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s:%d: skipped a corrupt line (an interrupted write?)", path, n)
    return out


class _Appender:
    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        torn = os.path.exists(path) and os.path.getsize(path) > 0
        if torn:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        if torn:
            self.f.write("\n")

    def write(self, records: Sequence[dict]) -> None:
        for r in records:
            self.f.write(json.dumps(r, ensure_ascii=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


def distill_reasons(
    targets: Sequence[Target],
    teacher,
    rm_score: Callable[[list[str]], np.ndarray],
    path: str,
    *,
    tau: float,
    max_retries: int = 10,
    temperature: float = 1.0,
    max_tokens: int = 1024,
    chunk_size: int = 64,
    forbidden: tuple[str, ...] = FORBIDDEN,
) -> tuple[dict[str, str], dict[str, float]]:
    """({key: accepted reason}, stats). `rm_score(prompts) -> [N] expected ratings` is the reward
    model; `teacher.complete(requests)` the teacher. Resumes from `path`."""
    from jaxmethods.llm import Request

    by_key: dict[str, list[dict]] = {}
    final: dict[str, dict] = {}
    for r in read_records(path):
        if r.get("final"):
            final[r["key"]] = r
        else:
            by_key.setdefault(r["key"], []).append(r)
    out = _Appender(path)
    try:
        for start in range(0, len(targets), chunk_size):
            chunk = [t for t in targets[start : start + chunk_size] if t.key not in final]
            if not chunk:
                continue
            base = dict(zip([t.key for t in chunk], rm_score([t.direct_prompt for t in chunk])))
            pending = list(chunk)
            while pending:
                attempts = [len(by_key.get(t.key, [])) for t in pending]
                reqs = [
                    Request.from_prompt(
                        t.hint_prompt if a > 0 else t.reason_prompt, max_tokens=max_tokens,
                        temperature=temperature, seed=_seed(t.key, a),
                    )
                    for t, a in zip(pending, attempts)
                ]  # fmt: skip
                replies = [c.text for c in teacher.complete(reqs)]
                records: list[dict] = []
                scored = [j for j, (a, txt) in enumerate(zip(attempts, replies))
                          if a == 0 or has_forbidden(txt, forbidden) is None]  # fmt: skip
                prompts = [pending[j].predictor_prompt.replace("{analysis}", replies[j])
                           for j in scored]  # fmt: skip
                with_r = dict(zip(scored, rm_score(prompts))) if prompts else {}
                still = []
                for j, (t, a, txt) in enumerate(zip(pending, attempts, replies)):
                    rec = {"key": t.key, "attempt": a, "hinted": a > 0, "reason": txt,
                           "rating": t.rating, "rm_base": float(base[t.key])}  # fmt: skip
                    if j not in with_r:
                        rec |= {"accepted": False,
                                "why": f"forbidden:{has_forbidden(txt, forbidden)}"}  # fmt: skip
                    else:
                        delta = abs(t.rating - with_r[j]) - abs(t.rating - base[t.key])
                        ok = bool(delta < tau)
                        rec |= {"accepted": ok, "rm_with": float(with_r[j]),
                                "delta": float(delta), "why": "tau" if ok else "no_gain"}  # fmt: skip
                    records.append(rec)
                    by_key.setdefault(t.key, []).append(rec)
                    if rec["accepted"] or a >= max_retries:
                        fin = {"key": t.key, "final": True, "accepted": rec["accepted"],
                               "attempts": a + 1,
                               "reason": txt if rec["accepted"] else None}  # fmt: skip
                        records.append(fin)
                        final[t.key] = fin
                    else:
                        still.append(t)
                out.write(records)
                pending = still
    finally:
        out.close()
    return _summarise(targets, final, by_key)


def _summarise(targets, final, by_key) -> tuple[dict[str, str], dict[str, float]]:
    keys = [t.key for t in targets]
    accepted = {k: final[k]["reason"] for k in keys if k in final and final[k]["accepted"]}
    cands = [r for k in keys for r in by_key.get(k, [])]
    scored = [r for r in cands if "delta" in r]
    first = [r for r in cands if r["attempt"] == 0]
    stats = {
        "targets": float(len(keys)),
        "accepted": float(len(accepted)),
        "accept_rate": len(accepted) / max(len(keys), 1),
        "first_try_rate": sum(r["accepted"] for r in first) / max(len(first), 1),
        "tau_pass_rate": sum(r["accepted"] for r in scored) / max(len(scored), 1),
        "candidates": float(len(cands)),
        "rejected_forbidden": float(sum(r["why"].startswith("forbidden") for r in cands)),
        "rejected_tau": float(sum(r["why"] == "no_gain" for r in cands)),
        "dropped": float(sum(1 for k in keys if k in final and not final[k]["accepted"])),
    }
    return accepted, stats
