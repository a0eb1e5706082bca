"""build_tiny_tokenizer (offline HF fast tokenizer) and load_tokenizer (AutoTokenizer)."""

from __future__ import annotations

import pytest

from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.hf import load_tokenizer

CORPUS = ["the cat sat on the mat.", "a quick brown fox jumps over the lazy dog!", "hello world"]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer(CORPUS, vocab_size=96)


def test_special_tokens_and_exact_round_trip(tokenizer):
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert tokenizer.unk_token_id == 3 and len(tokenizer) <= 96
    text = "the lazy cat jumps over a brown mat"  # unseen words, seen characters
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_chat_template_and_left_padding(tokenizer):
    messages = [{"role": "user", "content": "hello cat"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<s><|user|>\nhello cat</s>\n<|assistant|>\n"
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert ids[:2] == [1, tokenizer.convert_tokens_to_ids("<|user|>")] and 3 not in ids
    tokenizer.padding_side = "left"
    batch = tokenizer(["the cat", "hello world the cat sat"], padding=True)
    tokenizer.padding_side = "right"
    assert batch["attention_mask"][0][0] == 0 and batch["input_ids"][0][0] == 0


def test_save_and_load_through_auto_tokenizer(tokenizer, tmp_path):
    tokenizer.save_pretrained(str(tmp_path))
    loaded = load_tokenizer(str(tmp_path), padding_side="left")
    assert loaded.padding_side == "left"
    for text in CORPUS:
        assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.chat_template == tokenizer.chat_template


def test_errors():
    with pytest.raises(ValueError, match="`texts` is empty"):
        build_tiny_tokenizer([])
    with pytest.raises(ValueError, match="vocab_size=8 is smaller than"):
        build_tiny_tokenizer(CORPUS, vocab_size=8)
    with pytest.raises(ValueError, match="padding_side must be"):
        load_tokenizer("unused", padding_side="middle")
