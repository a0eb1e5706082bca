"""TOFU / MUSE loaders on small local files of the hub's schema, QA formatting, padding and the
MUSE chunking (the forget/retain stream is tested with the step arithmetic in
tests/methods/test_baldro_schedule.py)."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jaxmethods.data.forget_retain import gather_examples
from jaxmethods.data.muse import chunk_corpus, knowmem_examples, load_muse, verbmem_examples
from jaxmethods.data.synthetic_authors import synthetic_tofu, write_tofu_folder
from jaxmethods.data.tofu import (
    LLAMA2_CHAT_TEMPLATE,
    MUSE_QA_TEMPLATE,
    left_pad_prompts,
    load_tofu,
    pad_examples,
    tokenize_qa,
    warmup_steps,
)
from jaxmethods.data.tokenizer import build_tiny_tokenizer

SPLITS = synthetic_tofu(num_authors=10, questions_per_author=3, forget_percent=10, seed=0)
CORPUS = [
    t
    for rows in SPLITS.values()
    for r in rows
    for t in [r["question"], r["answer"], *r.get("perturbed_answer", [])]
] + ["[INST] [/INST] Question: Answer: the news story of the day. A B C"]
TOK = build_tiny_tokenizer(CORPUS, vocab_size=200)


def test_synthetic_generator_has_tofu_schema():
    assert {"full", "forget10", "retain90", "forget10_perturbed", "retain_perturbed",
            "real_authors_perturbed", "world_facts_perturbed"} <= set(SPLITS)  # fmt: skip
    assert len(SPLITS["full"]) == 30 and len(SPLITS["forget10"]) == 3
    assert SPLITS["full"][-3:] == SPLITS["forget10"]
    row = SPLITS["forget10_perturbed"][0]
    assert len(row["perturbed_answer"]) == 3 and row["answer"] not in row["perturbed_answer"]
    assert synthetic_tofu(num_authors=10, questions_per_author=3, seed=0) == SPLITS


def test_load_tofu_local_formats_and_errors(tmp_path):
    folder = write_tofu_folder(SPLITS, tmp_path / "tofu")
    rows = load_tofu("forget10_perturbed", folder)
    assert rows == SPLITS["forget10_perturbed"]
    # a JSON array and a parquet file of the same schema
    arr = tmp_path / "arr"
    arr.mkdir()
    (arr / "retain90.json").write_text(json.dumps(SPLITS["retain90"]))
    assert load_tofu("retain90", arr) == SPLITS["retain90"]
    pq.write_table(
        pa.Table.from_pylist(SPLITS["world_facts_perturbed"]), arr / "world_facts_perturbed.parquet"
    )
    assert load_tofu("world_facts_perturbed", arr) == SPLITS["world_facts_perturbed"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "forget01.json").write_text('{"question": "q", "answer": "a"}\n{"question": "q"\n')
    with pytest.raises(ValueError, match=r"forget01.json:2: invalid JSON"):
        load_tofu("forget01", bad)
    (bad / "forget05.json").write_text('{"question": "q"}\n')
    with pytest.raises(ValueError, match=r"forget05.json: row 0 has no field 'answer'"):
        load_tofu("forget05", bad)
    (bad / "forget10_perturbed.json").write_text(
        json.dumps(
            {"question": "q", "answer": "a", "paraphrased_answer": "p", "perturbed_answer": "x"}
        )
    )
    with pytest.raises(ValueError, match="perturbed_answer' must be a non-empty list"):
        load_tofu("forget10_perturbed", bad)
    with pytest.raises(ValueError, match="unknown TOFU config"):
        load_tofu("forget02", bad)
    with pytest.raises(FileNotFoundError, match="retain99"):
        load_tofu("retain99", bad)


def test_llama2_template_labels_cover_answer_and_eos():
    q, a = "Where was Aria Ashgrove born?", "Aria Ashgrove was born in Lisbon."
    ex = tokenize_qa(TOK, LLAMA2_CHAT_TEMPLATE, q, a, max_length=128)
    prompt = TOK("[INST] " + q + " [/INST]", add_special_tokens=True)["input_ids"]
    full = TOK("[INST] " + q + " [/INST]" + a, add_special_tokens=True)["input_ids"]
    assert ex["input_ids"] == [*full, TOK.eos_token_id]
    assert ex["prompt_ids"] == prompt and ex["input_ids"][0] == TOK.bos_token_id
    assert ex["labels"][: len(prompt)] == [-100] * len(prompt)
    assert ex["labels"][len(prompt) :] == ex["input_ids"][len(prompt) :]
    assert TOK.decode([t for t in ex["labels"] if t >= 0], skip_special_tokens=True).strip() == a
    short = tokenize_qa(TOK, LLAMA2_CHAT_TEMPLATE, q, a, max_length=12)
    assert len(short["input_ids"]) == 12 and short["input_ids"][-1] == TOK.eos_token_id
    fs = tokenize_qa(TOK, MUSE_QA_TEMPLATE, "Q2?", "A2", max_length=128, few_shot=[("Q1?", "A1")])
    assert TOK.decode(fs["prompt_ids"], skip_special_tokens=True) == (
        "Question: Q1?\nAnswer: A1\n\nQuestion: Q2?\nAnswer: "
    )


def test_padding_helpers():
    ex = [{"input_ids": [1, 5, 6], "labels": [-100, 5, 6]}]
    b = pad_examples(ex, length=5, pad_id=0, batch_size=2)
    np.testing.assert_array_equal(b["input_ids"], [[1, 5, 6, 0, 0], [0] * 5])
    np.testing.assert_array_equal(b["labels"], [[-100, 5, 6, -100, -100], [-100] * 5])
    np.testing.assert_array_equal(b["row_valid"], [True, False])
    with pytest.raises(ValueError, match="example 0 has 3 tokens > length 2"):
        pad_examples(ex, length=2, pad_id=0)
    ids, mask = left_pad_prompts([[7, 8]], length=4, pad_id=0, batch_size=2)
    np.testing.assert_array_equal(ids, [[0, 0, 7, 8], [0, 0, 0, 0]])
    np.testing.assert_array_equal(mask, [[0, 0, 1, 1], [0, 0, 0, 1]])


def test_tofu_warmup_rule():
    assert warmup_steps(40, 8, 2, 1) == 2  # forget01, bs 8, GA 2, 1 GPU: 40 // 16
    assert warmup_steps(200, 8, 4) == 6 and warmup_steps(400, 4, 8) == 12
    assert warmup_steps(40, 8, 2, warmup_epochs=0.5) == 1


def test_gather_examples_keeps_row_positions():
    ex = [{"input_ids": [1, 5, 6], "labels": [-100, 5, 6], "ref_nll": 2.5},
          {"input_ids": [1, 7], "labels": [-100, 7], "ref_nll": 1.0}]  # fmt: skip
    b = gather_examples(ex, np.array([1, -1, 0, -1]), length=4, pad_id=0, extra_fields=("ref_nll",))
    np.testing.assert_array_equal(b["row_valid"], [True, False, True, False])
    np.testing.assert_array_equal(b["input_ids"], [[1, 7, 0, 0], [0] * 4, [1, 5, 6, 0], [0] * 4])
    np.testing.assert_array_equal(b["labels"][2], [-100, 5, 6, -100])
    np.testing.assert_array_equal(b["attention_mask"].sum(1), [2, 0, 3, 0])
    np.testing.assert_array_equal(b["ref_nll"], [1.0, 0.0, 2.5, 0.0])
    with pytest.raises(ValueError, match="example 0 has 3 tokens > the padded length 2"):
        gather_examples(ex, np.array([0]), length=2, pad_id=0)


def authors_muse_chunks(tok, texts, max_length):
    """open-unlearning's PretrainingDataset._chunk_raw_text + preprocess_pretraining_instance
    (empty prefix), transcribed; the trailing empty chunk of an exact multiple is dropped."""
    ids = tok("\n\n".join(texts), add_special_tokens=False)["input_ids"]
    out = []
    for i in range(len(ids) // max_length + 1):
        piece = tok.decode(ids[i * max_length : (i + 1) * max_length])
        if not piece:
            continue
        full = tok(piece, add_special_tokens=True)["input_ids"]
        prefix_len = len(tok("", add_special_tokens=True)["input_ids"])
        full = full[: prefix_len + max_length]
        out.append((full, [-100] * max(prefix_len, 1) + full[max(prefix_len, 1) :]))
    return out


def test_muse_chunks_keep_bos_plus_max_length():
    texts = ["the news story of the day " * 9, "A B C the day " * 7]
    for n in (5, 8):
        chunks = chunk_corpus(TOK, texts, max_length=n)
        want = authors_muse_chunks(TOK, texts, n)
        assert [(c["input_ids"], c["labels"]) for c in chunks] == want
        # every full chunk holds BOS + n tokens (not BOS + n - 1)
        assert max(len(c["input_ids"]) for c in chunks) == n + 1
        assert all(c["input_ids"][0] == TOK.bos_token_id for c in chunks)


def test_muse_local_loading_chunking_and_qa(tmp_path):
    root = tmp_path / "muse"
    (root / "raw").mkdir(parents=True)
    (root / "knowmem").mkdir()
    (root / "verbmem").mkdir()
    texts = ["the news story of the day", "A B C the day"]
    with open(root / "raw" / "forget.json", "w") as f:
        f.write("\n".join(json.dumps({"text": t}) for t in texts))
    pq.write_table(
        pa.Table.from_pylist([{"question": "Q1?", "answer": "A1"}]),
        root / "knowmem" / "forget_qa-00000-of-00001.parquet",
    )
    (root / "knowmem" / "forget_qa_icl.json").write_text(
        json.dumps([{"question": "Q0?", "answer": "A0"}])
    )
    (root / "verbmem" / "forget.jsonl").write_text(
        json.dumps({"prompt": "the news", "gt": "story"})
    )
    rows = load_muse("News", "raw", "forget", root)
    assert [r["text"] for r in rows] == texts
    chunks = chunk_corpus(TOK, [r["text"] for r in rows], max_length=5)
    stream = TOK("\n\n".join(texts), add_special_tokens=False)["input_ids"]
    assert len(chunks) == -(-len(stream) // 5)
    for c in chunks:
        assert c["input_ids"][0] == TOK.bos_token_id and c["labels"][0] == -100
        assert c["labels"][1:] == c["input_ids"][1:] and len(c["input_ids"]) <= 6
    qa = knowmem_examples(
        TOK,
        load_muse("News", "knowmem", "forget_qa", root),
        load_muse("News", "knowmem", "forget_qa_icl", root),
    )
    assert TOK.decode(qa[0]["prompt_ids"], skip_special_tokens=True).startswith(
        "Question: Q0?\nAnswer: A0"
    )
    assert qa[0]["target"] == "A1"
    vm = verbmem_examples(TOK, load_muse("News", "verbmem", "forget", root))
    assert vm[0]["target"] == "story" and vm[0]["prompt_ids"][0] == TOK.bos_token_id
    with pytest.raises(ValueError, match="no split 'retain'"):
        load_muse("News", "knowmem", "retain", root)
    with pytest.raises(FileNotFoundError, match="privleak/forget"):
        load_muse("Books", "privleak", "forget", root)
    (root / "verbmem" / "forget.jsonl").write_text(json.dumps({"prompt": "p"}))
    with pytest.raises(ValueError, match="field 'gt'"):
        load_muse("News", "verbmem", "forget", root)
