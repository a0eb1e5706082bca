"""The OpenAI-compatible backend against a real scripted HTTP server (no mocks): retries with
backoff, timeouts, garbled JSON, errors naming the request, the cache, accounting, key hygiene."""

import json
import os

import pytest
from llm_testing import ScriptedServer, files_containing

from jaxmethods.llm import LLMRequestError, Request, make_client

KEY = "sk-test-9f8e7d6c5b4a-SECRET"
FAST = dict(backoff_s=0.05, backoff_max_s=0.2, timeout_s=5.0)


@pytest.fixture(scope="module")
def server():
    s = ScriptedServer(slow_s=1.0)
    yield s
    s.close()


@pytest.fixture
def client_for(server, monkeypatch, tmp_path):
    monkeypatch.setenv("JM_TEST_KEY", KEY)
    made = []

    def make(scenario: str, **overrides):
        cfg = dict(
            backend="openai", model="fake-model", base_url=server.url(scenario),
            api_key_env="JM_TEST_KEY", max_concurrency=4, max_retries=3,
            cache_dir=str(tmp_path / "cache"), metrics_dir=str(tmp_path / "run"),
            price_input_per_1m=1.0, price_output_per_1m=2.0, **FAST,
        )  # fmt: skip
        cfg.update(overrides)
        c = make_client(cfg)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def _reqs(*texts, **settings):
    return [Request.from_prompt(t, max_tokens=8, **settings) for t in texts]


def test_answers_in_order_with_usage_cost_metrics_and_settings_sent(server, client_for, tmp_path):
    client = client_for("ok")
    outs = client.complete(_reqs("a", "b", "c", "d", "e", seed=7, stop=("END",)), step=3)
    assert [o.text for o in outs] == [f"echo: {t}" for t in "abcde"]
    assert all(o.attempts == 1 and not o.cached and o.finish_reason == "stop" for o in outs)
    u = client.last_usage
    assert (u.requests, u.prompt_tokens, u.completion_tokens) == (5, 55, 15)
    assert u.cost_usd == pytest.approx((55 * 1.0 + 15 * 2.0) / 1e6)
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        [row] = [json.loads(line) for line in f]
    assert row["step"] == 3 and row["llm/requests"] == 5 and row["llm/cache_hits"] == 0
    assert row["llm/cost_usd"] == pytest.approx(u.cost_usd)
    body = server.bodies[-1]
    assert body["model"] == "fake-model" and body["max_tokens"] == 8 and body["n"] == 1
    assert (body["seed"], body["stop"], body["temperature"]) == (7, ["END"], 0.0)
    assert server.auth[-1] == f"Bearer {KEY}"


def test_rerun_is_served_from_the_cache_without_any_http_call(server, client_for):
    first = client_for("ok").complete(_reqs("x1", "x2"))
    hits = server.hits["ok"]
    again = client_for("ok")  # a fresh client (a rerun) reading the same cache folder
    outs = again.complete(_reqs("x1", "x2"))
    assert server.hits["ok"] == hits
    assert [o.text for o in outs] == [o.text for o in first] and all(o.cached for o in outs)
    assert again.last_usage.cache_hits == 2 and again.last_usage.cost_usd == 0.0


@pytest.mark.parametrize("scenario, attempts", [("500then200", 2), ("garbled", 2), ("429", 3)])
def test_transient_failures_are_retried(server, client_for, scenario, attempts):
    [out] = client_for(scenario).complete(_reqs(f"retry me {scenario}"))
    assert out.text == f"echo: retry me {scenario}" and out.attempts == attempts
    assert server.hits[scenario] == attempts
    if scenario == "429":  # exponential backoff with jitter in [0.5, 1]: >= 0.025 s, 0.05 s
        t = server.times["429"]
        assert t[1] - t[0] >= 0.025 and t[2] - t[1] >= 0.05


def test_timeout_then_an_error_naming_the_request(server, client_for):
    client = client_for("slow", timeout_s=0.3, max_retries=1)
    with pytest.raises(LLMRequestError) as err:
        client.complete(_reqs("fine", "this one is too slow"))
    # Both time out; the error names the first failing request: index, key, preview, attempts.
    e = err.value
    assert e.index == 0 and e.attempts == 2 and "Timeout" in str(e)
    assert "request #0" in str(e) and "'fine'" in str(e) and e.key[:12] in str(e)
    assert "1 more requests failed" in str(e)
    assert server.hits["slow"] == 4


def test_persistent_5xx_fails_after_the_last_retry_and_4xx_at_once(server, client_for):
    with pytest.raises(LLMRequestError, match=r"request #0 .*after 3 attempts.*HTTP 500"):
        client_for("always500", max_retries=2).complete(_reqs("down"))
    assert server.hits["always500"] == 3
    with pytest.raises(LLMRequestError, match=r"after 1 attempt: BadRequestError \(HTTP 400\)"):
        client_for("400").complete(_reqs("bad"))
    assert server.hits["400"] == 1


def test_successes_of_a_failed_call_are_cached_so_a_rerun_redoes_only_the_failure(
    server, client_for
):
    reqs = _reqs("kept 1", "FAIL this", "kept 2")
    with pytest.raises(LLMRequestError, match=r"request #1 .*'FAIL this'.*after 2 attempts"):
        client_for("ok", max_retries=1).complete(reqs)
    hits = server.hits["ok"]
    with pytest.raises(LLMRequestError, match=r"request #1 "):
        client_for("ok", max_retries=1).complete(reqs)
    assert server.hits["ok"] == hits + 2  # only the failing request went out again (twice)


def test_the_key_is_in_no_file_and_no_repr(client_for, tmp_path):
    client = client_for("ok")
    client.complete(_reqs("secret?"))
    assert KEY not in repr(client) and "JM_TEST_KEY" in repr(client)
    assert os.listdir(tmp_path / "cache") and files_containing(str(tmp_path), KEY) == []


def test_missing_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("JM_ABSENT_KEY", raising=False)
    with pytest.raises(ValueError, match=r"'JM_ABSENT_KEY'.*not set"):
        make_client({"model": "m", "api_key_env": "JM_ABSENT_KEY"})


def test_image_parts_reach_the_endpoint_as_openai_content_parts(server, client_for):
    import base64

    from jaxmethods.llm.types import image_part

    png = b"\x89PNG\r\n\x1a\nfake-bytes"
    parts = [{"type": "text", "text": "Describe the chart."}, image_part(png, detail="low")]
    request = Request(messages=({"role": "user", "content": parts},), max_tokens=8)
    [out] = client_for("ok").complete([request])
    assert isinstance(out.text, str)
    [msg] = server.bodies[-1]["messages"]
    assert msg["content"][0] == {"type": "text", "text": "Describe the chart."}
    url = msg["content"][1]["image_url"]["url"]
    assert url == "data:image/png;base64," + base64.b64encode(png).decode()
    assert msg["content"][1]["image_url"]["detail"] == "low"
