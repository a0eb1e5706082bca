"""`GenerationEngine` and `LocalClient` on a tiny saved checkpoint: greedy output against a
cache-free argmax loop, per-row max_tokens, stop strings, seeds independent of batch neighbours."""

import jax
import numpy as np
import pytest
from flax import nnx
from llm_testing import BUCKETS, make_tiny_checkpoint

from jaxmethods.llm import EngineRequest, GenerationEngine, Request, make_client

PROMPTS = ["the judge reads the reply", "a kind reply", "user asks about a movie; the judge"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny_chat")))


@pytest.fixture(scope="module")
def engine(folder):
    return GenerationEngine.from_pretrained(folder, name="tiny", **BUCKETS)


def _argmax_reference(model, prompts: list[list[int]], steps: int, eos: int) -> list[list[int]]:
    """Greedy decoding by full forward passes (no KV cache, no padding tricks): one
    [P, T + steps] buffer, the continuation written after each left-padded prompt."""
    graphdef, state = nnx.split(model)
    t0 = max(len(p) for p in prompts)
    ids = np.zeros((len(prompts), t0 + steps), np.int32)
    mask = np.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, t0 - len(p) : t0], mask[i, t0 - len(p) : t0] = p, 1
    forward = jax.jit(lambda s, x, m: nnx.merge(graphdef, s)(x, m))
    out: list[list[int]] = [[] for _ in prompts]
    for t in range(steps):
        logits = np.asarray(forward(state, ids, mask))[:, t0 - 1 + t]
        for i, tok in enumerate(logits.argmax(-1)):
            if out[i] and out[i][-1] == eos:
                continue
            out[i].append(int(tok))
            ids[i, t0 + t], mask[i, t0 + t] = tok, 1
    return out


@pytest.fixture(scope="module")
def greedy(engine):
    prompts = [engine.encode_chat([{"role": "user", "content": p}]) for p in PROMPTS]
    results = engine.generate([EngineRequest(tuple(p), max_tokens=16) for p in prompts])
    return prompts, results


def test_greedy_batch_equals_cache_free_argmax_loop(engine, greedy):
    prompts, results = greedy
    eos = engine.eos_ids[0]
    ref = _argmax_reference(engine.model, prompts, 16, eos)
    for r, want, p in zip(results, ref, prompts):
        ended = want[-1] == eos
        assert list(r.token_ids) == (want[:-1] if ended else want)
        assert r.finish_reason == ("stop" if ended else "length")
        assert r.completion_tokens == len(want) and r.prompt_tokens == len(p)
        assert r.text == engine.tokenizer.decode(r.token_ids, skip_special_tokens=True)
    assert {(b.batch, b.prompt_len, b.new_tokens) for b in engine.batches} == {(8, 64, 16)}


def test_max_tokens_per_row_and_stop_strings(engine, greedy):
    prompts, results = greedy
    full = results[0]
    assert len(full.token_ids) >= 6, "the tiny model should not stop this early"
    stop = full.text[len(full.text) // 2 :][:3]
    short, stopped = engine.generate(
        [
            EngineRequest(tuple(prompts[0]), max_tokens=3),
            EngineRequest(tuple(prompts[0]), 16, stop=(stop,)),
        ]
    )
    assert short.token_ids == full.token_ids[:3] and short.finish_reason == "length"
    assert short.completion_tokens == 3
    cut = full.text.find(stop)
    assert stopped.text == full.text[:cut] and stopped.finish_reason == "stop"
    prefix = engine.tokenizer.decode(stopped.token_ids, skip_special_tokens=True)
    assert stop in prefix and stop not in engine.tokenizer.decode(stopped.token_ids[:-1])


def test_seeded_samples_do_not_depend_on_batch_neighbours(engine, greedy):
    prompts, results = greedy
    row = EngineRequest(tuple(prompts[1]), max_tokens=16, temperature=1.0, seed=11)
    alone = engine.generate([row])[0]
    mixed = engine.generate(
        [
            EngineRequest(tuple(prompts[0]), max_tokens=16),  # greedy row in the sampled batch
            EngineRequest(tuple(prompts[2]), max_tokens=9, temperature=0.7, seed=3),
            row,
            EngineRequest(tuple(prompts[1]), max_tokens=16, temperature=1.0, seed=12),
        ]
    )
    assert mixed[2] == alone and mixed[0] == results[0]
    assert mixed[3].token_ids != alone.token_ids


def test_prompt_too_long_names_the_request(engine):
    with pytest.raises(ValueError, match=r"request #1: prompt \(70 tokens\)"):
        engine.generate([EngineRequest((5,) * 3, 4), EngineRequest((5,) * 70, 4)])


def test_local_client_matches_the_engine_and_caches(folder, engine, greedy, tmp_path):
    client = make_client(
        {"backend": "local", "model": folder, "cache_dir": str(tmp_path)}, max_batch_size=8
    )
    client.engine = GenerationEngine(
        client.engine.model, client.engine.tokenizer, name=folder, **BUCKETS
    )
    reqs = [Request.from_prompt(p, max_tokens=16) for p in PROMPTS]
    outs = client.complete(reqs)
    assert [o.text for o in outs] == [r.text for r in greedy[1]]
    assert [o.completion_tokens for o in outs] == [r.completion_tokens for r in greedy[1]]
    assert client.complete(reqs)[0].cached and client.last_usage.cache_hits == 3


def test_local_backend_refuses_image_parts_with_a_clear_message(engine):
    from jaxmethods.llm.local_backend import engine_request
    from jaxmethods.llm.types import image_part

    text = {"type": "text", "text": "hi"}
    ok = engine_request(engine, Request(messages=({"role": "user", "content": [text]},)))
    same = engine_request(engine, Request.from_prompt("hi"))
    assert ok.prompt_ids == same.prompt_ids
    with pytest.raises(ValueError, match="no image input"):
        engine_request(engine, Request(messages=({"role": "user", "content": [image_part(b"x")]},)))
