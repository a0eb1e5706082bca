"""The JSONL completion cache: round trip, first line wins, corrupt lines skipped with a warning."""

import json
import logging

from jaxmethods.llm import Completion, CompletionCache


def _completion(text: str) -> Completion:
    return Completion(text, "stop", prompt_tokens=5, completion_tokens=2, model="m")


def test_round_trip_and_reload(tmp_path):
    cache = CompletionCache(tmp_path)
    cache.put("k1", _completion("one"))
    cache.put("k1", _completion("other"))  # first answer wins, no second line
    cache.put("k2", _completion("two"))
    again = CompletionCache(tmp_path)
    assert len(again) == 2 and again.get("k1").text == "one" and again.get("k1").cached
    assert again.get("missing") is None
    with open(cache.path) as f:
        assert len(f.read().splitlines()) == 2


def test_corrupt_lines_are_skipped_with_a_warning(tmp_path, caplog):
    cache = CompletionCache(tmp_path)
    cache.put("good", _completion("fine"))
    with open(cache.path, "a") as f:
        f.write("{not json\n")
        f.write(json.dumps({"key": "nofields", "completion": {"text": "x"}}) + "\n")
        f.write('{"key": "torn", "completion": {"te')  # a killed writer's last line
    with caplog.at_level(logging.WARNING):
        reloaded = CompletionCache(tmp_path)
    assert reloaded.skipped_lines == 3 and reloaded.get("good").text == "fine"
    warnings = [r.getMessage() for r in caplog.records if "corrupt cache line" in r.getMessage()]
    assert len(warnings) == 3 and f"{cache.path}:2" in warnings[0]
    reloaded.put("after", _completion("new"))  # appended on its own line after the torn one
    assert CompletionCache(tmp_path).get("after").text == "new"
