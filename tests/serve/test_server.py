"""`jaxmethods.serve` for real: uvicorn on 127.0.0.1 in a thread, a tiny saved chat model, the
`openai` client (and our own OpenAI backend) talking to it; outputs equal the in-process
engine's."""

import threading
import time

import httpx
import openai
import pytest
from llm_testing import BUCKETS, make_tiny_checkpoint

from jaxmethods.llm import EngineRequest, GenerationEngine, LocalClient, Request, make_client
from jaxmethods.serve import build_server, parse_args

NAME = "tiny-chat"
PROMPTS = [
    "the judge reads the reply",
    "a kind reply names the feeling",
    "user asks about a movie",
    "Score: 4. The reply is warm",
    "the assistant recommends three films",
    "offers help",
    "gives a score from one to five",
    "clear and specific",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny_chat")))


@pytest.fixture(scope="module")
def reference(folder):
    """The in-process engine on the same checkpoint (a separate instance)."""
    return GenerationEngine.from_pretrained(folder, name=NAME, **BUCKETS)


@pytest.fixture(scope="module")
def server(folder):
    args = parse_args(
        ["--model", folder, "--served-model-name", NAME, "--port", "0", "--max-batch-size",
         "8", "--max-wait-ms", "150", "--log-level", "warning"]
    )  # fmt: skip
    engine = GenerationEngine.from_pretrained(folder, name=NAME, **BUCKETS)
    srv = build_server(args, engine=engine)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True  # what SIGTERM/SIGINT do: finish in-flight requests, then stop
    thread.join(timeout=15)
    assert not thread.is_alive(), "the server did not shut down"


@pytest.fixture(scope="module")
def client(server):
    c = openai.OpenAI(base_url=f"{server}/v1", api_key="EMPTY", max_retries=0, timeout=60)
    yield c
    c.close()


def _chat(client, prompt, **kw):
    kw = {"max_tokens": 16, "temperature": 0.0, **kw}
    return client.chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": prompt}], **kw
    )


def test_models_endpoint(client):
    assert [m.id for m in client.models.list().data] == [NAME]


def test_chat_greedy_equals_the_in_process_engine(client, server, reference, monkeypatch):
    resp = _chat(client, PROMPTS[0])
    [want] = LocalClient(reference).complete([Request.from_prompt(PROMPTS[0], max_tokens=16)])
    choice = resp.choices[0]
    assert resp.object == "chat.completion" and resp.model == NAME
    assert choice.message.role == "assistant" and choice.message.content == want.text
    assert choice.finish_reason == want.finish_reason
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (
        want.prompt_tokens,
        want.completion_tokens,
    )
    assert resp.usage.total_tokens == want.prompt_tokens + want.completion_tokens
    # Our own OpenAI backend against the server gets the same answer.
    ours = make_client(
        {"backend": "openai", "model": NAME, "base_url": f"{server}/v1", "api_key_env": ""}
    )
    [got] = ours.complete([Request.from_prompt(PROMPTS[0], max_tokens=16)])
    assert (got.text, got.completion_tokens) == (want.text, want.completion_tokens)


def test_text_completions_equal_the_in_process_engine(client, reference):
    resp = client.completions.create(model=NAME, prompt="the judge", max_tokens=12, temperature=0)
    [want] = reference.generate([EngineRequest(tuple(reference.encode_text("the judge")), 12)])
    assert resp.object == "text_completion" and resp.choices[0].text == want.text
    assert resp.usage.completion_tokens == want.completion_tokens


def test_concurrent_requests_are_batched_and_each_matches(client, server, reference):
    before = len(httpx.get(f"{server}/stats").json()["batch_sizes"])
    results: dict[int, str] = {}
    barrier = threading.Barrier(len(PROMPTS))

    def one(i):
        barrier.wait()
        results[i] = _chat(client, PROMPTS[i]).choices[0].message.content

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    want = LocalClient(reference).complete([Request.from_prompt(p, max_tokens=16) for p in PROMPTS])
    assert [results[i] for i in range(len(PROMPTS))] == [w.text for w in want]
    stats = httpx.get(f"{server}/stats").json()
    sizes = stats["batch_sizes"][before:]
    assert sum(sizes) == len(PROMPTS) and max(sizes) > 1 and len(sizes) < len(PROMPTS)
    assert stats["programs"] == [[8, 64, 16]]  # every call ran one compiled shape


def test_streaming_and_several_choices(client):
    full = _chat(client, PROMPTS[1]).choices[0].message.content
    chunks = list(_chat(client, PROMPTS[1], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == full
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    two = _chat(client, PROMPTS[1], n=2)
    assert [c.message.content for c in two.choices] == [full, full]


def test_bad_requests_get_clear_4xx_errors(client):
    with pytest.raises(openai.NotFoundError, match="'gpt-4o' is not served here"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="logprobs=True is not supported"):
        _chat(client, "x", logprobs=True)
    with pytest.raises(openai.BadRequestError, match="temperature"):
        _chat(client, "x", temperature=5.0)
    with pytest.raises(openai.BadRequestError, match=r"max_tokens \(300\) exceeds"):
        _chat(client, "x", max_tokens=300)
