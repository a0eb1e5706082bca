"""Requests, cache keys and the `llm` config section."""

import pytest

from jaxmethods.llm import LLMConfig, Request, llm_config, request_key
from jaxmethods.llm.types import as_request
from jaxmethods.train.config import ConfigError

MSGS = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Rate: hi"})


def test_request_validation_names_the_field():
    with pytest.raises(ValueError, match=r"messages\[1\].role='robot'"):
        Request(messages=({"role": "user", "content": "a"}, {"role": "robot", "content": "b"}))
    with pytest.raises(ValueError, match=r"messages\[0\].content must be a string"):
        Request(messages=({"role": "user", "content": None},))
    with pytest.raises(ValueError, match="max_tokens must be >= 1"):
        Request(messages=MSGS, max_tokens=0)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        Request(messages=MSGS, top_p=0.0)
    with pytest.raises(ValueError, match="unknown"):
        as_request({"messages": list(MSGS), "n": 2})
    assert Request(messages=MSGS, stop="END").stop == ("END",)  # one string is one stop string


def test_request_key_depends_on_content_settings_and_model_only():
    base = Request(messages=MSGS, max_tokens=8)
    key = request_key(base, {"model": "m"})
    assert key == request_key(as_request({"messages": list(MSGS), "max_tokens": 8}), {"model": "m"})
    changed = [
        Request(messages=MSGS, max_tokens=9),
        Request(messages=MSGS, max_tokens=8, temperature=0.5),
        Request(messages=MSGS, max_tokens=8, seed=1),
        Request(messages=MSGS, max_tokens=8, stop=("x",)),
        Request(messages=MSGS[1:], max_tokens=8),
    ]
    keys = {request_key(r, {"model": "m"}) for r in changed} | {request_key(base, {"model": "n"})}
    assert key not in keys and len(keys) == len(changed) + 1


def test_config_from_dict_and_errors_name_the_field():
    cfg = llm_config({"backend": "openai", "model": "gpt-4o-mini", "max_concurrency": 4})
    assert cfg == LLMConfig(model="gpt-4o-mini", max_concurrency=4)
    with pytest.raises(ConfigError, match=r"config.llm.backend: 'opnai' is not one of"):
        llm_config({"backend": "opnai", "model": "m"})
    with pytest.raises(ConfigError, match=r"config.llm.max_concurrency"):
        llm_config({"model": "m", "max_concurrency": 0})
    with pytest.raises(ConfigError, match=r"config.llm.api_key: unknown field"):
        llm_config({"model": "m", "api_key": "sk-123"})  # keys never live in a config
    with pytest.raises(ConfigError, match=r"config.llm.model: required"):
        llm_config({"backend": "openai"})


def test_multimodal_content_parts_validate_key_and_preview():
    from jaxmethods.llm.types import content_text, has_images, image_part, request_key

    text = {"type": "text", "text": "What does the chart show?"}
    a = Request(messages=({"role": "user", "content": [text, image_part(b"png-a")]},))
    b = Request(messages=({"role": "user", "content": [text, image_part(b"png-b")]},))
    plain = Request(messages=({"role": "user", "content": [text]},))
    assert has_images(a) and not has_images(plain)
    assert a.preview() == "What does the chart show?"
    assert content_text(plain.messages[0]["content"]) == text["text"]
    ident = {"model": "m"}
    assert request_key(a, ident) != request_key(b, ident)  # the image is part of the cache key
    with pytest.raises(ValueError, match=r"messages\[0\]\.content\[1\]"):
        Request(messages=({"role": "user", "content": [text, {"type": "audio"}]},))
    with pytest.raises(ValueError, match=r"image_url\.url"):
        Request(messages=({"role": "user", "content": [{"type": "image_url", "image_url": {}}]},))
