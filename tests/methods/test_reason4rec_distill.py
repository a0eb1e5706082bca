"""Reason distillation with a mock teacher and a mock reward model: the tau filter on toy
numbers, hinted retries (up to 10), the forbidden-string filter, the JSONL with why, and resume
after a teacher failure."""

import json
import re

import numpy as np
import pytest

from jaxmethods.llm import FunctionClient, LLMRequestError
from jaxmethods.methods.reason4rec.distill import Target, distill_reasons, read_records


def make_targets():
    # The mock RM reads "guess=G" from the analysis slot, else says 3.0 (the base prediction).
    return [
        Target(key=k, rating=y, reason_prompt=f"reason {k}", hint_prompt=f"hint {k}",
               direct_prompt=f"direct {k}", predictor_prompt="pred {analysis}")
        for k, y in [("a", 5.0), ("b", 1.0), ("c", 3.0), ("d", 4.0)]
    ]  # fmt: skip


def rm_score(prompts):
    out = []
    for p in prompts:
        m = re.search(r"guess=([0-9.]+)", p)
        out.append(float(m.group(1)) if m else 3.0)
    return np.asarray(out)


def script(request):
    """Teacher: 'a' right at once; 'b' wrong, then a forbidden reply, then right; 'c' never
    beats the base (always guesses 4.2: |3-4.2| - 0 = 1.2 >= tau); 'd' neutral first try:
    |4-3| - |4-3| = 0 < tau -> kept (the authors' '< tau' keeps no-gain reasons)."""
    prompt = request.messages[-1]["content"]
    _kind, key = prompt.split()
    seed = request.seed
    attempt = seed - _base_seed(key)
    if key == "a":
        return "guess=5.0 fine"
    if key == "b":
        return {0: "guess=5.0 bad", 1: "it is 1.0 stars guess=1.0"}.get(attempt, "guess=1.2")
    if key == "c":
        return "guess=4.2 meh"
    return "no opinion"


def _base_seed(key):
    import hashlib

    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


def test_tau_retries_forbidden_and_jsonl(tmp_path):
    path = str(tmp_path / "reasons.jsonl")
    accepted, stats = distill_reasons(make_targets(), FunctionClient(script), rm_score, path,
                                      tau=0.1, max_retries=10, chunk_size=3)  # fmt: skip
    assert accepted == {"a": "guess=5.0 fine", "b": "guess=1.2", "d": "no opinion"}
    recs = read_records(path)
    b = [r for r in recs if r["key"] == "b" and not r.get("final")]
    assert [r["why"] for r in b] == ["no_gain", "forbidden:1.0", "tau"]
    assert [r["hinted"] for r in b] == [False, True, True]
    assert b[2]["delta"] == pytest.approx(abs(1 - 1.2) - abs(1 - 3.0))
    c = [r for r in recs if r["key"] == "c" and not r.get("final")]
    assert len(c) == 11 and all(r["why"] == "no_gain" for r in c)  # 1 + 10 hinted tries
    finals = {r["key"]: r for r in recs if r.get("final")}
    assert finals["c"]["accepted"] is False and finals["c"]["attempts"] == 11
    assert stats["accepted"] == 3 and stats["dropped"] == 1 and stats["rejected_forbidden"] == 1
    assert stats["first_try_rate"] == pytest.approx(2 / 4)


def test_teacher_failure_keeps_jsonl_and_rerun_continues(tmp_path):
    path = str(tmp_path / "reasons.jsonl")
    calls = {"n": 0}

    def flaky(request):
        calls["n"] += 1
        if calls["n"] == 6:
            raise ConnectionError("teacher down")
        return script(request)

    with pytest.raises(LLMRequestError):
        distill_reasons(make_targets(), FunctionClient(flaky), rm_score, path, tau=0.1,
                        chunk_size=2)  # fmt: skip
    before = read_records(path)
    assert before and all(isinstance(r, dict) for r in before)
    with open(path, "a") as f:  # a torn write from a killed process
        f.write('{"key": "b", "attem')
    done = {r["key"] for r in before if r.get("final")}
    calls_before = calls["n"]
    accepted, _ = distill_reasons(make_targets(), FunctionClient(script), rm_score, path,
                                  tau=0.1, chunk_size=2)  # fmt: skip
    assert accepted == {"a": "guess=5.0 fine", "b": "guess=1.2", "d": "no opinion"}
    recs = read_records(path)
    assert recs[: len(before)] == before  # the earlier records are intact
    for key in done:  # finished targets are not asked again
        assert sum(1 for r in recs if r["key"] == key and r.get("final")) == 1
    attempts = [r["attempt"] for r in recs if r["key"] == "c" and not r.get("final")]
    assert attempts == list(range(11)) and calls_before == 6
    with open(path) as f:
        json.loads(f.read().splitlines()[-1])
