"""`FunctionClient` (rule-based judges): the shared cache, accounting and error path, and
`submit` running a call in the background."""

import json

import pytest

from jaxmethods.llm import FunctionClient, LLMRequestError, Prices, Request, parse_score


def _judge(request: Request) -> str:
    text = request.messages[-1]["content"]
    if "crash" in text:
        raise RuntimeError("judge exploded")
    return f"Score: {min(5, len(text.split()))}"


def test_rule_judge_through_the_client(tmp_path):
    calls = []

    def counted(req):
        calls.append(req)
        return _judge(req)

    client = FunctionClient(
        counted, model="rule", cache_dir=str(tmp_path / "c"), metrics_dir=str(tmp_path),
        prices=Prices(2.0, 4.0),
    )  # fmt: skip
    reqs = ["one two", "a b c d e f g", "one two"]  # the duplicate is answered once
    outs = client.complete(reqs)
    assert [parse_score(o.text, 1, 5, integer=True) for o in outs] == [2, 5, 2]
    assert len(calls) == 2 and client.last_usage.prompt_tokens == 9
    assert client.last_usage.cost_usd == pytest.approx((9 * 2.0 + 4 * 4.0) / 1e6)
    future = client.submit(reqs)
    assert [o.cached for o in future.result(timeout=10)] == [True, True, True]
    assert len(calls) == 2
    with open(tmp_path / "metrics.jsonl") as f:
        rows = [json.loads(x) for x in f]
    assert [r["step"] for r in rows] == [0, 1] and rows[1]["llm/cache_hits"] == 3
    assert client.usage.requests == 6
    with pytest.raises(LLMRequestError, match=r"request #1 .*'please crash'.*judge exploded"):
        client.submit(["fine", "please crash"]).result(timeout=10)
    client.close()
