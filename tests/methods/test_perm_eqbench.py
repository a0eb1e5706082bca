"""The EQ-Bench-3-style harness: scenario files, the rubric parser, and a scripted policy scored
by the rule judge through the judge layer's client (expected means computed by hand)."""

import json
import os

import pytest

from jaxmethods.llm import FunctionClient
from jaxmethods.methods.perm.eqbench import evaluate, parse_rubric, read_scenarios
from jaxmethods.methods.perm.rule_judge import rule_judge_client

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "perm")
FILES = [os.path.join(DATA, f) for f in ("eqbench_roleplay.json", "eqbench_workplace.json")]


def test_scenario_files_read():
    scenarios = read_scenarios(FILES)
    assert [s.id for s in scenarios][:2] == ["rp_friend_borrowed_money", "rp_teen_skipping_school"]
    assert len(scenarios) == 4 and len(scenarios[0].turns) == 2
    assert scenarios[3].criteria[0] == "demonstrated_empathy"  # the default criteria


def test_scenario_errors_name_file_and_index(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"scenarios": [{"id": "a", "turns": ["x"]}, {"id": "b", "turns": []}]}))
    with pytest.raises(ValueError, match=r"bad\.json: scenarios\[1\]: field 'turns'"):
        read_scenarios([str(p)])
    p.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: malformed JSON"):
        read_scenarios([str(p)])


def test_rubric_parser():
    crit = ["demonstrated_empathy", "pragmatic_ei", "depth_of_insight"]
    text = 'Here: {"demonstrated_empathy": 14, "pragmatic_ei": 25, "depth_of_insight": "x"}'
    assert parse_rubric(text, crit) == {
        "demonstrated_empathy": 14.0, "pragmatic_ei": None, "depth_of_insight": None,
    }  # fmt: skip
    lines = "demonstrated_empathy: 12\nPragmatic_EI = 7.5\n"
    assert parse_rubric(lines, crit) == {
        "demonstrated_empathy": 12.0, "pragmatic_ei": 7.5, "depth_of_insight": None,
    }  # fmt: skip
    assert parse_rubric(None, crit) == dict.fromkeys(crit)


def test_scripted_policy_scored_by_the_rule_judge():
    scenarios = read_scenarios(FILES)
    # Warm, emotion-naming answers for the role-play file, flat ones for the workplace file.
    warm = "I feel hurt, but I hear you and you are not alone. Let's talk today."

    def policy(request):
        first_user = next(m["content"] for m in request.messages if m["role"] == "user")
        return warm if any(first_user == s.turns[0] for s in scenarios[:2]) else "Noted."

    metrics, rows = evaluate(FunctionClient(policy), rule_judge_client(), scenarios)
    # Rule verdict: 4 + 4 x (cue families present): warm answers have all 4 -> 20, "Noted." 0 -> 4.
    assert [r["scores"]["demonstrated_empathy"] for r in rows] == [20.0, 20.0, 4.0, 4.0]
    assert metrics["eqbench/demonstrated_empathy"] == pytest.approx((100 + 100 + 20 + 20) / 4)
    assert metrics["eqbench/rubric_score"] == pytest.approx(60.0)
    assert len(rows[0]["transcript"]) == 5  # system, user, assistant, user, assistant
