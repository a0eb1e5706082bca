"""PERM prompts: the templates equal the authors' text (`perm/empathy_dataset.py`, commit
6c0e858), the chat template is applied by the tokenizer, the JSONL reader's errors, the 3000
sample, and the `# Analysis` / `# Response` parser."""

import os
import random
import re

import pytest

from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.methods.perm.prompts import (
    SYSTEM_PROMPT,
    USER_PROMPT,
    chat_messages,
    parse_completion,
    prompt_records,
    read_records,
    sample_records,
)

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "perm")

# Verbatim from the authors' perm/empathy_dataset.py.
AUTHORS_SYSTEM = """You are a helpful, warm, and empathetic AI assistant.
You will be provided with the user's basic profile (Persona) and their current context (Scenario). Your task is to generate a response to the user."""

AUTHORS_USER = """
**User Persona:** {persona}
**Current scenario:** {scenario}

**User Query:** {query}

**Output Requirement:**
Respond in exactly this output format:

# Analysis
<Analyze the current scenario and user's emotion>

# Response
<Write your response to the user here>
"""


def test_templates_are_the_authors():
    assert SYSTEM_PROMPT == AUTHORS_SYSTEM
    assert USER_PROMPT == AUTHORS_USER


def test_reader_uses_identity_scenario_and_first_turn():
    rows = read_records(os.path.join(DATA, "train_small.jsonl"))
    assert len(rows) == 3
    assert rows[0] == {
        "persona": "a 34-year-old night-shift nurse who rarely talks about herself",
        "scenario": "She just finished three night shifts in a row and her sister forgot her "
        "birthday.",
        "query": "Honestly it's fine, I'm used to being forgotten.",
    }


def test_reader_errors_name_file_line_and_field(tmp_path):
    with pytest.raises(ValueError, match=r"bad_dialogue\.jsonl:2: field 'dialogue'"):
        read_records(os.path.join(DATA, "bad_dialogue.jsonl"))
    p = tmp_path / "x.jsonl"
    p.write_text('{"persona": {"name": "x"}, "scenario": "s", "dialogue": ["q"]}\n')
    with pytest.raises(ValueError, match=r"x\.jsonl:1: field 'persona\.identity'"):
        read_records(str(p))
    p.write_text('{"persona": {"identity": "x"}, "dialogue": ["q"]}\n')
    with pytest.raises(ValueError, match=r"x\.jsonl:1: field 'scenario'"):
        read_records(str(p))
    p.write_text('{"persona": {"identity": "x"}, "scenario": "s", "dialogue": ["q"]}\n')
    with pytest.raises(ValueError, match=r"x\.jsonl:1: field 'user'"):
        read_records(str(p), user_key="user")


def test_sample_is_random_sample_without_replacement():
    rows = [{"i": i} for i in range(5000)]
    got = sample_records(rows, 3000, seed=42)
    assert got == random.Random(42).sample(rows, 3000)
    assert len({r["i"] for r in got}) == 3000
    assert sample_records(rows[:10], 3000, seed=0) == rows[:10]


def test_prompt_goes_through_the_tokenizers_chat_template():
    rec = {"persona": "P", "scenario": "S", "query": "Q", "user": 3}
    tok = build_tiny_tokenizer(["hello world"], vocab_size=64)
    [out] = prompt_records([rec], tok)
    user = AUTHORS_USER.format(persona="P", scenario="S", query="Q")
    # The tiny tokenizer's template: BOS, "<|role|>\n" + content + EOS + "\n" per turn.
    want = f"<s><|system|>\n{AUTHORS_SYSTEM}</s>\n<|user|>\n{user}</s>\n<|assistant|>\n"
    assert out["prompt"] == want and out["user"] == 3 and out["query"] == "Q"
    assert chat_messages(rec)[1] == {"role": "user", "content": user}


@pytest.mark.parametrize(
    "text, want",
    [
        ("# Analysis\nshe is tired\n# Response\nI hear you.", ("she is tired", "I hear you.")),
        ("#analysis  a\nb\n\n#   RESPONSE\n r1\nr2 \n", ("a\nb", "r1\nr2")),
        ("no headers at all", ("", "")),
        ("# Response only\n# Analysis later", ("", "")),
        ("", ("", "")),
        ("# Analysis\n# Response\n", ("", "")),
        ("pre # Analysis x # Response y # Response z", ("x", "y # Response z")),
    ],
)
def test_parser(text, want):
    assert parse_completion(text) == want
    # Independent check with the authors' regex as written in perm/utils.py.
    m = re.search(r"#\s*Analysis\s*(.*?)\s*#\s*Response\s*(.*)", text, re.DOTALL | re.IGNORECASE)
    assert want == ((m.group(1).strip(), m.group(2).strip()) if m else ("", ""))
