"""PERM judges: rubric texts and filled prompts equal the authors' (`perm/empathy_judge.py` at
commit 6c0e858, hashed here from the authors' own functions), the score parsers agree with the
authors' `extract_score` / `calculate_standby_reward` (outputs recorded from their code), the
None -> batch-mean and all-None rules, the rule judge, an unreachable endpoint."""

import hashlib
import json
import socket

import numpy as np
import pytest

from jaxmethods.llm import FunctionClient, make_client
from jaxmethods.methods.perm import rubrics
from jaxmethods.methods.perm.judges import (
    JudgeConfig,
    JudgeError,
    PERMJudge,
    fill_none,
    judge_messages,
    make_judge,
    parse_empathy_score,
    parse_standby_score,
)
from jaxmethods.methods.perm.rule_judge import judged_text, rule_scores

# sha256 of the authors' module-level strings (ast-extracted from perm/empathy_judge.py).
RUBRIC_SHA256 = {
    "RESONATION_CRITERIA": "c0d3e99a1fb5943d9f8bd51aa23032fc6d2e5852b87c5db3aada0208d0b2d137",
    "EXPRESSION_CRITERIA": "2a47e9a35a04c796536f6ce74ccf8de3314401dd023ef63338a7333055a4189b",
    "RECEPTION_CRITERIA": "158dab8fe7bb45cca7bf5d4ee4f19a2a197db3a312402fa8706fd427c81529d9",
    "JUDGE_SYSTEM_PROMPT": "0529d9c61408237b182b1fec172e9cdd21eec2772719cd39a3130d3817866009",
    "RESPONSE_PROMPT": "f2adb5d928dbf5803ac832e6f1d3b1b7e36b5628273a94091a36f7be056cf648",
    "ANALYSIS_PROMPT": "721daf11935f7ecc9aa83dd58066187a2bfff26a4a9b7418c6da43b435ae5dd2",
    "STANDBY_SYSTEM_PROMPT": "6d3b33cc92050998bbf20c7af18b49ff04044cec16ce9dd0dde24f1714c48548",
    "STANDBY_USER_PROMPT": "f5778e1e04d436477b0213d200aa48d7b0ba8e9e1d91e593826b79658839e270",
}
# sha256 of json.dumps(messages) from the authors' prepare_prompt_analysis / _response /
# _standby with scenario "S1 night shift", persona "P1 nurse", query "Q1 I am fine",
# analysis "A1 tired", response "R1 hear you".
MESSAGES_SHA256 = {
    "resonation": "6fd61b316319f8f3795321a192520c81e4c282d7622eb7fc873986669fba11c8",
    "expression": "35195d0ea9ca965f22ea16d9caeced0d59eb71460e58aad9902260557344b34f",
    "reception": "9e5d6c3667a67d06af2a27adf647e6326c3263e587e7f7ddbd721e74621558ae",
    "standby": "e8c3ff4d0fc12eee56672bbf2856ef74638b7251dcd850ad6ac4a3d19db12e31",
}
RECORD = {"scenario": "S1 night shift", "persona": "P1 nurse", "query": "Q1 I am fine"}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_rubric_texts_are_verbatim():
    assert {name: _sha(getattr(rubrics, name)) for name in RUBRIC_SHA256} == RUBRIC_SHA256
    assert rubrics.JUDGE_SYSTEM_PROMPT.startswith("You are an expert Psychologist and Empathy")
    assert "**5 Points: Value-Level Resonance" in rubrics.RESONATION_CRITERIA


@pytest.mark.parametrize("kind", sorted(MESSAGES_SHA256))
def test_filled_prompts_equal_the_authors(kind):
    msgs = judge_messages(kind, RECORD, "A1 tired", "R1 hear you")
    assert _sha(json.dumps(msgs)) == MESSAGES_SHA256[kind]


# (reply, the authors' extract_score) as their code returns it (float(int(...)) or None).
EMPATHY_CASES = [
    ("Reason: ok\nScore: 4", 4), ("Score: 3\nScore: 5", 3), ("reason\n  Score: 4", None),
    ("Score: four", None), ("Score: 4/5", None), ("score: 4", None), ("Reason: x\nScore:5 ", 5),
    ("Score: 2\n", 2), ("", None), ("no score here", None), ("Score: 4.0", None), ("Score: 7", 7),
    (None, None),
]  # fmt: skip
STANDBY_CASES = [
    ("3. Total Score: 85/100", 85), ("Total Score: 85 / 100", 85),
    ("**Total score: 72/100**", 72), ("TOTAL SCORE:90/100\nTotal Score: 10/100", 90),
    ("Total Score: [0-100] / 100", None), ("Total Score: 85", None),
    ("- Content Effectiveness: 16 / 20\n3. Total Score: 77 / 100", 77), ("", None), (None, None),
]  # fmt: skip


def test_parsers_agree_with_the_authors():
    assert [parse_empathy_score(t) for t, _ in EMPATHY_CASES] == [w for _, w in EMPATHY_CASES]
    assert [parse_standby_score(t) for t, _ in STANDBY_CASES] == [w for _, w in STANDBY_CASES]


def test_none_is_the_batch_mean_and_all_none_quotes_the_reply():
    np.testing.assert_allclose(fill_none([4, None, 1, None], ["", "", "", ""], "expression"),
                               [4, 2.5, 1, 2.5])  # fmt: skip
    with pytest.raises(JudgeError, match=r"judge 'reception'.*I refuse to grade"):
        fill_none([None, None], ["I refuse to grade this.", "?"], "reception")


def test_score_matrix_with_a_mock_judge_fills_per_kind():
    replies = iter(["Score: 5", "Score: x", "Score: 2", "Score: 1", "Total Score: 80/100", "x"])
    answer = {}

    def mock(request):
        key = json.dumps(request.messages)
        if key not in answer:
            answer[key] = next(replies, "Score: 3")
        return answer[key]

    judge = PERMJudge(FunctionClient(mock), kinds=("resonation", "expression", "standby"))
    recs = [RECORD, {**RECORD, "query": "other"}]
    got = judge.score_matrix(recs, ["# Analysis a # Response r", "no headers"])
    # resonation: 5, None -> 5; expression: 2, 1; standby: 80, None -> 80
    np.testing.assert_allclose(got, [[5, 2, 80], [5, 1, 80]])
    assert judge.last_raw["standby"][0] == "Total Score: 80/100"
    reqs = judge.requests("resonation", recs, ["# Analysis a # Response r", "no headers"])
    assert reqs[0].temperature == 0.3 and reqs[0].top_p == 0.9 and reqs[0].max_tokens == 1024
    assert "**Assistant Analysis:**\n\n\n---" in reqs[1].messages[1]["content"]  # ("", "")


def test_rule_judge_reads_the_judged_section():
    judge = make_judge(JudgeConfig(backend="rule"))
    good = "# Analysis\nShe feels tired and stressed.\n# Response\nI hear you. You are not alone."
    scores = judge.score_matrix([RECORD] * 2, [good, "no headers"])
    assert scores.shape == (2, 4)
    np.testing.assert_array_equal(scores[1], [1, 1, 1, 0])  # empty sections score lowest
    assert (scores[0] > scores[1]).all()
    req = judge.requests("expression", [RECORD], [good])[0]
    assert judged_text(req) == ("expression", "I hear you. You are not alone.")
    assert rule_scores("resonation", "She feels tired and stressed.") == 5


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint_retries_then_names_it():
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    llm = {"backend": "openai", "model": "gpt-4o-mini", "base_url": url, "api_key_env": "",
           "max_retries": 2, "backoff_s": 0.0, "timeout_s": 5.0}  # fmt: skip
    judge = PERMJudge(make_client(llm), endpoint=url, kinds=("expression",))
    with pytest.raises(JudgeError, match=rf"{url}.*3 attempts"):
        judge.score_matrix([RECORD], ["# Analysis a # Response r"])
