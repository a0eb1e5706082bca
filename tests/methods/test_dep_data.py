"""DEP data side: DPL readers and selection, peer maps and difference rows (3-user toy against
hand-computed values), no leakage, prompts (verbatim templates, fitting, special tokens),
embedding files and the extractor on a tiny XLM-R encoder."""

import json
import os

import numpy as np
import pytest

from jaxmethods.methods.dep import data as D
from jaxmethods.methods.dep import prompts as P
from jaxmethods.methods.dep.dataset import build_examples
from jaxmethods.methods.dep.differences import (
    DiffOptions,
    build_peer_maps,
    peer_weights,
    soft_inputs,
)
from jaxmethods.methods.dep.embeddings import (
    EmbeddingStore,
    extract_embeddings,
    read_embedding_file,
    user_texts,
)
from jaxmethods.methods.dep.synthetic import synthetic_dpl

HERE = os.path.dirname(os.path.abspath(__file__))
TOY = os.path.join(HERE, "..", "data", "dep")
ENC = os.path.join(HERE, "..", "data", "hf", "xlm_roberta")

# Toy embeddings (D = 2), rows in chronological order: 4 profile reviews + the test target.
# Rows 3 and 4 (val and test targets) hold markers that must never reach a peer map.
EMB = {
    "A": [[1, 0], [0, 1], [2, 2], [100, 100], [200, 200]],  # mean of rows 0-2: (1, 1)
    "B": [[2, 0], [1, 0], [0, 0], [100, 100], [200, 200]],  # (1, 0): ||muA - muB|| = 1
    "C": [[0, -1], [3, -2], [0, -3], [100, 100], [200, 200]],  # (1, -2): ||muA - muC|| = 3
    "E": [[5, 5], [5, 5], [5, 5], [100, 100], [200, 200]],
}


@pytest.fixture(scope="module")
def toy():
    main = os.path.join(TOY, "main")
    splits = D.load_splits(main, ["Books"], num_val=512)
    meta = D.read_meta(os.path.join(TOY, "meta"), ["Books"])
    load = lambda s: np.asarray(EMB[s.user_id], np.float32)
    return splits, meta, load


@pytest.fixture(scope="module")
def tokenizer():
    from jaxmethods.data.tokenizer import build_tiny_tokenizer

    past = "[User's Past Reviews]:\n" + P.review_block(0, _REV, ("t", "d"))
    corpus = [P.qwen2_prompt(P.user_message(("t", "d"), _REV, past)), "0123456789 ABCDE Out"]
    tok = build_tiny_tokenizer(corpus, vocab_size=300, padding_side="left")
    P.add_dep_tokens(tok)
    return tok


_REV = {"rating": 4.0, "title": "Nice", "text": "good read", "asin": "x", "timestamp": 1}


def test_peer_weights_l1_then_softmax():
    w = peer_weights(np.array([[0.0, 1.0], [3.0, 0.0]]))  # norms 1, 3 -> [0.25, 0.75]
    e = np.exp([0.25, 0.75])
    np.testing.assert_allclose(w, e / e.sum(), atol=1e-6)
    np.testing.assert_allclose(w, [0.3775, 0.6225], atol=1e-4)


def test_selection_skips_and_counts(toy):
    splits, _, _ = toy
    train = splits["train"]
    # D has no test row, E's longest train sample is not i = 7; A keeps its longest (2 reviews).
    assert sorted(train.skipped.items()) == [
        ("train: no i = 7 sample (history too short)", 1),
        ("train: user has no test row", 1),
    ]
    assert sorted(s.user_id for s in train.samples) == ["A", "B", "C"]
    test_len = {s.user_id: len(s.profile) for s in splits["test"].samples}
    for s in train.samples:  # the i = 7 input: the test profile minus its last two reviews
        assert len(s.profile) == test_len[s.user_id] - 2


def test_three_user_toy_difference(toy):
    splits, _, load = toy
    maps = build_peer_maps(splits["test"].samples, load)
    a = next(s for s in splits["train"].samples if s.user_id == "A")  # profile [x, y]
    assert soft_inputs(a, load(a), maps) is None  # 2 reviews with peers < 8: skipped
    soft = soft_inputs(a, load(a), maps, DiffOptions(pad_missing=True))
    assert soft.count == 2 and soft.his_diff.shape == (16, 2)
    # Most recent first: y then x. y's only peer is C: diff = eA1 - eC1 = (0,1) - (3,-2).
    # x's peers B, C: weights softmax([1/4, 3/4]) = [1/(1+e^.5), e^.5/(1+e^.5)];
    # diff = wB * ((1,0) - (2,0)) + wC * ((1,0) - (0,-1)).
    wb = 1 / (1 + np.exp(0.5))
    expect_his = [[0, 1], [1, 0]]
    expect_diff = [[-3, 3], [-wb + (1 - wb), 1 - wb]]
    np.testing.assert_allclose(soft.his_diff[:2], expect_his, atol=1e-6)
    np.testing.assert_allclose(soft.his_diff[8:10], expect_diff, atol=1e-6)
    np.testing.assert_allclose(expect_diff[1], [0.244918, 0.622459], atol=1e-6)
    assert not soft.his_diff[2:8].any() and not soft.his_diff[10:].any()
    assert [r["asin"] for r in soft.reviews] == ["y", "x"]
    # The "history" mean (rows 0-1): muA (.5,.5), muB (1.5,0), muC (1.5,-1.5); norms
    # sqrt(1.25), sqrt(5) -> [1/3, 2/3] -> wB = 1/(1+e^(1/3)).
    maps_h = build_peer_maps(splits["test"].samples, load, DiffOptions(mean_rows="history"))
    soft_h = soft_inputs(a, load(a), maps_h, DiffOptions(mean_rows="history", pad_missing=True))
    wb = 1 / (1 + np.exp(1 / 3))
    np.testing.assert_allclose(soft_h.his_diff[9], [-wb + (1 - wb), 1 - wb], atol=1e-6)


def test_no_leakage(toy):
    splits, _, load = toy
    maps = build_peer_maps(splits["test"].samples, load)
    for s in splits["test"].samples:
        his = maps.his[s.key]
        assert his.shape[0] == len(s.profile) - 1  # emb[:-2]
        assert np.abs(his).max() < 100  # neither the val nor the test target row
    for entries in maps.reviewers.values():  # only reviews of the i = 7 train profile
        assert all(idx < 2 for _, idx in entries)
    assert maps.reviewers["x"] == {("A", 0), ("B", 0), ("C", 0)}
    assert "a3" not in maps.reviewers and "y" in maps.reviewers
    opts = DiffOptions(pad_missing=True)
    for split in ("train", "val", "test"):
        for s in splits[split].samples:
            soft = soft_inputs(s, load(s), maps, opts)
            if soft is not None:  # own rows come from the sample's profile only
                assert np.abs(soft.his_diff).max() < 100 or split == "test"
                assert s.target["asin"] not in {r["asin"] for r in soft.reviews}


def test_val_shuffle_matches_datasets():
    datasets = pytest.importorskip("datasets")
    rows = [D.Sample(f"u{i}", "Books", (), _REV) for i in range(40)]
    got = D.select_val({"Books": rows[:25], "CDs": rows[25:]}, num=30).samples
    ref = datasets.Dataset.from_dict({"i": list(range(40))}).shuffle(seed=42)["i"][:30]
    assert [s.user_id for s in got] == [f"u{i}" for i in ref]


def test_malformed_row_names_file_row_field(tmp_path):
    folder = tmp_path / "Books"
    folder.mkdir()
    bad = dict(_REV)
    del bad["timestamp"]
    rows = [{"user_id": "u", "profile": [], "data": _REV}, {"user_id": "v", "profile": [bad]}]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"test.jsonl:2\.profile\[0\]\.timestamp: missing"):
        D.read_main(str(tmp_path), "Books", "test")


def test_templates_verbatim():
    sys = (
        "Given the title and description of an item, along with the user's past reviews "
        "(including item title, item description, review rating, review title, review text, "
        "review embedding, review difference embedding), and the output review rating and "
        "review title, generate a personalized item review for the user.\nNote: [Review "
        "Embedding] denotes a soft prompt of the review text and [Review Difference Embedding] "
        "denotes a soft prompt showing the difference between the review text and other "
        "reviews on the same item. [Review Embedding] and [Review Difference Embedding] should "
        "serve as hints for personalized review text generation.\n"
    )
    assert P.qwen2_prompt("MSG") == (
        f"<|im_start|>system\n{sys}<|im_end|><|im_start|>user\nMSG<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert P.review_block(2, _REV, ("T", "Desc")) == (
        "- [Review 3]:\n  - [Item Title]: T\n  - [Item Description]: Desc\n"
        "  - [Review Rating]: 4.0\n  - [Review Title]: Nice\n  - [Review Text]: good read\n"
        "  - [Review Embedding]: <his_token_start>[HIS_TOKEN_2]<his_token_end>\n"
        "  - [Review Difference Embedding]: <diff_token_start>[DIFF_TOKEN_2]<diff_token_end>\n"
    )
    assert len(P.NEW_TOKENS) == len(set(P.NEW_TOKENS)) == 20


def test_special_tokens(tokenizer):
    from jaxmethods.data.tokenizer import build_tiny_tokenizer

    bare = build_tiny_tokenizer(["a b c"], vocab_size=40)
    with pytest.raises(ValueError, match=r"lacks the special token '\[HIS_TOKEN_0\]'"):
        P.placeholder_ids(bare)
    n = len(bare)
    assert P.add_dep_tokens(bare) == 20 and len(bare) == n + 20
    his, diff = P.placeholder_ids(tokenizer)
    assert len(set(his + diff)) == 16
    ids = tokenizer(P.review_block(0, _REV, ("t", "d")), add_special_tokens=False)["input_ids"]
    assert ids.count(his[0]) == 1 and ids.count(diff[0]) == 1


def test_prompt_fitting_and_labels(tokenizer):
    history = [
        (dict(_REV, text=f"text number {k} " + "x" * 20, timestamp=100 - k), (f"T{k}", "d"))
        for k in range(10)
    ]  # most recent first
    target = dict(_REV, title="Out", text="the target review")
    prompt, n = P.fit_prompt(tokenizer, ("T", "D"), target, history, max_length=100_000)
    assert n == 8 and prompt.index("text number 0") < prompt.index("text number 7")
    assert "text number 8" not in prompt
    count = lambda s: len(tokenizer(s, add_special_tokens=False)["input_ids"])
    base = count(P.qwen2_prompt(P.user_message(("T", "D"), target)))
    past = lambda k: (
        "[User's Past Reviews]:\n"
        + "".join(P.review_block(i, r, it) for i, (r, it) in enumerate(history[:k]))
    )
    budget = base + count(past(5))  # 5 reviews fit exactly, 6 do not
    prompt, n = P.fit_prompt(tokenizer, ("T", "D"), target, history, max_length=budget)
    assert n == 5 and "[Review 5]" in prompt and "[Review 6]" not in prompt
    prompt, n = P.fit_prompt(tokenizer, ("T", "D"), target, history, max_length=base)
    assert n == 1  # the authors keep one review even when it does not fit
    row = P.encode_example(tokenizer, prompt, target["text"], training=True, max_length=4000)
    ids, mask, labels = row["input_ids"], row["attention_mask"], row["labels"]
    assert ids.shape == (4000 + 2048 + 1,) and mask[0] == 0 and mask[-1] == 1
    assert (ids[mask == 0] == tokenizer.pad_token_id).all() and mask.argmax() > 0
    scored = labels[labels != -100]
    assert scored[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(scored[:-1]) == target["text"]
    assert (labels[: len(ids) - len(scored)] == -100).all()
    ev = P.encode_example(tokenizer, prompt, target["text"], training=False, max_length=4000)
    assert ev["input_ids"].shape == (4000,) and "labels" not in ev
    assert tokenizer.decode(ev["input_ids"][ev["attention_mask"] == 1]) == prompt


def test_embedding_dimension_error(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "Books" / "u1.safetensors"
    path.parent.mkdir()
    save_file({"embeddings": np.zeros((3, 5), np.float32)}, str(path))
    with pytest.raises(ValueError, match=r"u1.safetensors: embeddings of shape \(3, 5\).* is 4"):
        EmbeddingStore(str(tmp_path), dim=4)(D.Sample("u1", "Books", (), _REV))
    assert read_embedding_file(str(path), 5).shape == (3, 5)


def test_authors_emb_file(tmp_path):
    torch = pytest.importorskip("torch")
    ref = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    torch.save(torch.tensor(ref), str(tmp_path / "u.emb"))
    np.testing.assert_array_equal(read_embedding_file(str(tmp_path / "u.emb"), 6), ref)
    with pytest.raises(ValueError, match=r"u.emb: embeddings of shape \(4, 6\)"):
        read_embedding_file(str(tmp_path / "u.emb"), 1024)


class _FixedTokenizer:
    """Texts "t0".."t2" -> the ids of the fixture's reference batch (pad id 1, as XLM-R)."""

    pad_token_id = 1

    def __init__(self, ids, mask):
        self.table = {f"t{i}": [int(x) for x, m in zip(ids[i], mask[i]) if m] for i in range(3)}

    def __call__(self, texts, **kwargs):
        return {"input_ids": [self.table[t] for t in texts]}


def test_extractor_equals_encoder_cls_l2(tmp_path):
    """Against transformers' own last_hidden_state of the fixture (reference.npz)."""
    from jaxmethods.hf import load_pretrained
    from jaxmethods.models.text_encoder import TextEncoder

    ref = np.load(os.path.join(ENC, "reference.npz"))
    cls = ref["last_hidden_state"][:, 0]
    unit = cls / np.linalg.norm(cls, axis=1, keepdims=True)
    rev = lambda i, t: dict(_REV, text=f"t{i}", timestamp=t)
    samples = [
        D.Sample("u1", "Books", (rev(1, 30), rev(0, 10)), rev(2, 40)),  # texts t0, t1, t2
        D.Sample("u2", "Books", (rev(2, 5),), rev(0, 9)),  # texts t2, t0
    ]
    assert user_texts(samples[0]) == ["t0", "t1", "t2"]  # chronological, then the target
    model = load_pretrained(ENC, head="encoder")
    tok = _FixedTokenizer(ref["input_ids"], ref["attention_mask"])
    enc = TextEncoder(model, tok, pooling="cls", normalize=True, max_length=32)
    paths = extract_embeddings(enc, samples, str(tmp_path), batch_size=8)
    store = EmbeddingStore(str(tmp_path), dim=16)
    assert paths[1].endswith(os.path.join("Books", "u2.safetensors"))
    np.testing.assert_allclose(store(samples[0]), unit[[0, 1, 2]], atol=1e-4)
    np.testing.assert_allclose(store(samples[1]), unit[[2, 0]], atol=1e-4)


def test_prompt_history_modes(toy, tokenizer):
    splits, meta, load = toy
    maps = build_peer_maps(splits["test"].samples, load)
    opts = DiffOptions(pad_missing=True)
    a = [s for s in splits["test"].samples if s.user_id == "A"]
    sel = D.Selection(a)
    past = [r for r in a[0].profile]
    prompts = {}
    for mode in ("full", "items", "placeholders"):
        ex = build_examples(
            sel, meta, load, maps, tokenizer, training=False, options=opts, max_length=3000,
            prompt_history=mode,
        )  # fmt: skip
        prompts[mode] = ex.rows[0]["prompt"]
    head = prompts["full"].split("[User's Past Reviews]:")[0]
    for p in prompts.values():
        assert p.startswith(head) and p.endswith(prompts["full"][-80:])  # target kept
        assert p.count("[HIS_TOKEN_0]") == 1 and p.count("[DIFF_TOKEN_0]") == 1
    for r in past:
        assert f"[Review Text]: {r['text']}\n" in prompts["full"]
        assert r["text"] not in prompts["items"] and r["text"] not in prompts["placeholders"]
    past_items = [meta[r["asin"]][0] for r in past]
    assert all(t in prompts["items"] for t in past_items)
    blocks = prompts["placeholders"].split("[User's Past Reviews]:\n")[1]
    assert blocks.startswith(
        "- [Review 1]: <his_token_start>[HIS_TOKEN_0]<his_token_end> "
        "<diff_token_start>[DIFF_TOKEN_0]<diff_token_end>\n"
        "- [Review 2]: <his_token_start>[HIS_TOKEN_1]<his_token_end> "
    )
    assert "[Item Title]" not in blocks and "[Review Rating]" not in blocks
    short = build_examples(
        sel, meta, load, maps, tokenizer, training=False, options=opts, max_length=3000,
        prompt_history="placeholders", system_prompt=None,
    ).rows[0]["prompt"]  # fmt: skip
    assert short == prompts["placeholders"].replace(P.SYSTEM_PROMPT, "").replace(
        "<|im_start|>system\n<|im_end|>", P.QWEN_DEFAULT_SYSTEM
    )
    with pytest.raises(ValueError, match="prompt_history"):
        build_examples(sel, meta, load, maps, tokenizer, training=False, prompt_history="some")


def test_synthetic_runs_the_data_path(tmp_path, tokenizer):
    main, meta = synthetic_dpl(num_users=10, num_items=24, reviews_per_user=20, seed=1)
    mroot, metaroot = D.write_local(main, meta, str(tmp_path), "Books")
    splits = D.load_splits(mroot, ["Books"], num_val=4)
    assert len(splits["train"].samples) == 10 and not splits["train"].skipped
    for s in splits["train"].samples:  # i = 7: the target is the user's 8th input review
        mine = next(r for r in main["test"] if r["user_id"] == s.user_id)
        assert s.target == mine["profile"][-2] and len(s.profile) == len(mine["profile"]) - 2
    styles = {r["user_id"]: r["data"]["text"].split(",")[0] for r in main["test"]}
    assert len(set(styles.values())) > 2  # users open differently
    rng = np.random.default_rng(0)
    embs = {s.key: rng.normal(size=(len(s.profile) + 1, 4)) for s in splits["test"].samples}
    load = lambda s: embs[s.key]
    maps = build_peer_maps(splits["test"].samples, load)
    ex = build_examples(
        splits["train"], D.read_meta(metaroot, ["Books"]), load, maps, tokenizer,
        training=True, max_length=3000, total_length=3200,
    )  # fmt: skip
    assert len(ex.rows) == 10 and not ex.skipped
    assert ex.stack("his_diff_emb").shape == (10, 16, 4) and ex.stack("input_ids").shape == (
        10,
        3200,
    )
    assert all(r["num_history"] == 8 for r in ex.rows)


def _amazon_files(tmp_path):
    """Amazon-Reviews-2023-format JSONL: 8 users x 18 items that pass DPL's filters, plus rows
    each filter must remove."""
    long = lambda tag: f"{tag} " + "words of a long review " * 10  # >= 200 characters
    reviews = []

    def add(user, item, ts, text=None, title="t"):
        text = long(f"{user} {item}") if text is None else text
        row = {"rating": 4.0, "title": title, "text": text, "images": [], "asin": f"c{item}"}
        row.update(parent_asin=item, user_id=user, timestamp=ts, verified_purchase=True)
        reviews.append(row)

    for u in range(8):
        for k in range(18):
            add(
                f"u{u}",
                f"i{k}",
                10**6 + 1000 * k + u,
                text=long(f"u{u}  i{k}\n") if k == 0 else None,
            )
        add(f"u{u}", "bad", 10**7 + u)  # its item's description is too short
        if u < 7:
            add(f"u{u}", "i18", 10**7 + 100 + u)  # 7 users only
    add("u0", "i0", 10**8, text="too short")  # < 200 characters
    add("u1", "i3", 10, text=long("older duplicate"))  # deduplicated: the newer one stays
    for k in range(17):
        add("u8", f"i{k}", 10**6 + 1000 * k + 8)  # 17 reviews: fewer than 18
    for k in range(18):
        add(
            "u9", f"i{k}", 10**6 + 1000 * (17 - k) + 9
        )  # profile items nobody else has in a profile
    desc = ["Product Description", "A description " * 10]
    meta = [
        {"parent_asin": f"i{k}", "title": f"Item {k}", "description": desc, "categories": ["c"]}
        for k in range(19)
    ] + [{"parent_asin": "bad", "title": "B", "description": ["short"], "categories": ["c"]}]
    for m in meta:
        m["rating_number"] = 3
    paths = tmp_path / "Books.jsonl", tmp_path / "meta_Books.jsonl"
    for path, rows in zip(paths, (reviews, meta)):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [str(p) for p in paths]


def test_rebuild_follows_dpl_filters(tmp_path):
    from jaxmethods.methods.dep.rebuild import rebuild_dpl

    main, meta = rebuild_dpl(*_amazon_files(tmp_path))
    assert [m["asin"] for m in meta] == [f"i{k}" for k in range(18)]
    assert meta[0]["description"] == ("A description " * 10)  # "Product Description" dropped
    assert [r["user_id"] for r in main["test"]] == [f"u{u}" for u in range(8)]
    assert len(main["train"]) == 64 and len(main["val"]) == 8
    u1 = main["test"][1]
    assert [r["asin"] for r in u1["profile"]] == [f"i{k}" for k in range(17)]
    assert u1["data"]["asin"] == "i17" and "older duplicate" not in u1["profile"][3]["text"]
    assert main["test"][0]["profile"][0]["text"].startswith("u0 i0 words")  # whitespace
    train0 = [r for r in main["train"] if r["user_id"] == "u0"]
    assert [len(r["profile"]) for r in train0] == list(range(8, 16))
    assert [r["data"]["asin"] for r in train0] == [f"i{k}" for k in range(8, 16)]
    mroot, _ = D.write_local(main, [dict(m) for m in meta], str(tmp_path / "out"), "Books")
    assert len(D.load_splits(mroot, ["Books"])["train"].samples) == 8
