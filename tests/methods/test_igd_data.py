"""IGD prompt template (typos kept), target tokenisation, label layout and precomputed weights."""

import numpy as np
import pytest

from jaxmethods.data.amazon2018 import Sample
from jaxmethods.data.pipeline import PAD_INDEX, step_stream
from jaxmethods.data.synthetic_catalog import synthetic_amazon
from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.methods.igd import prompt as P
from jaxmethods.methods.igd.dataset import (
    assemble_batch,
    assemble_prompts,
    reweighted,
    tokenize_samples,
)
from jaxmethods.methods.igd.trie import ItemTrie

TITLES = ["Red Fox Saga Vol. 1", "Red Fox Saga Vol. 2", "Blue Owl Puzzle", "Unseen Title"]


def _sample(history, target):
    n = len(history)
    return Sample("u", ["a"] * n, "b", [0] * n, 1, list(history), target, [5.0] * n, 5.0,
                  list(range(n)), n)  # fmt: skip


@pytest.fixture(scope="module")
def setup():
    cat = "video games"
    texts = [P.prompt_text(TITLES[:2], cat), P.prompt_text(TITLES, cat, counterfactual=True)]
    tok = build_tiny_tokenizer(texts + [t + "\n" for t in TITLES], vocab_size=200)
    freq = {TITLES[0]: 3, TITLES[1]: 1, TITLES[2]: 2}
    trie, _ = ItemTrie.from_titles(freq, tok)
    samples = [
        _sample(TITLES[:2], TITLES[2]),
        _sample(TITLES[1:3], TITLES[0]),
        _sample([TITLES[2]], TITLES[3]),  # target outside the trie: all weights beta
    ]
    return tok, trie, samples, cat


def test_prompt_text_is_the_authors_template_with_typos():
    text = P.prompt_text(["A b", "C"], "video games")
    assert text == (
        "Below is an instruction that describes a task, paired with an input that provides "
        "further context. Write a response that appropriately completes the request. \n\n"
        "### Instruction:\nGiven a list of video games the user recetenly enjoy, please write a "
        "new video games that the user may bought\n"
        "### User Input: \nThe user has palyed the following video gamess before: A b, C\n\n"
        "### Response: \n"
    )
    cf = P.user_input_text(["A"], "musics", counterfactual=True)
    assert cf == "### User Input: \nUnknow\n\n### Response: \n"
    assert P.category_name("CDs_and_Vinyl") == "musics"
    assert P.category_name("toys and games") == "toys and games"
    with pytest.raises(ValueError, match="unknown category"):
        P.category_name("Garden")


def test_encoding_parts_bos_and_eos(setup):
    tok, _, _, cat = setup
    prompt = P.encode_prompts(tok, [TITLES[:2]], cat)[0]
    head = tok(P.instruction_text(cat), add_special_tokens=False)["input_ids"]
    tail = tok(P.user_input_text(TITLES[:2], cat), add_special_tokens=False)["input_ids"]
    assert prompt == [tok.bos_token_id, *head, *tail]  # parts tokenised separately
    target = P.encode_targets(tok, [TITLES[0]])[0]
    assert target == [
        *tok(TITLES[0] + "\n", add_special_tokens=False)["input_ids"],
        tok.eos_token_id,
    ]


def test_weights_labels_and_alignment(setup):
    tok, trie, samples, cat = setup
    ex = tokenize_samples(samples, tok, cat, trie=trie, weighting="igd", beta=0.1,
                          counterfactual=True)  # fmt: skip
    for i, target in enumerate(ex.targets):
        ig = trie.token_ig(target)
        np.testing.assert_array_equal(ex.ig[i], ig)
        np.testing.assert_allclose(ex.weights[i], np.where(ig == 0, 0.1, 1.0), rtol=1e-6)
    assert np.all(ex.ig[2] == 0) and np.allclose(ex.weights[2], 0.1)  # unseen target
    seq_len = ex.max_length(512) + 3
    batch = assemble_batch(ex, [0, 1, 2], seq_len, pad_id=tok.pad_token_id, counterfactual=True)
    for row, i in enumerate([0, 1, 2]):
        ids, labels, w = batch["input_ids"][row], batch["labels"][row], batch["weights"][row]
        tokens = ex.prompts[i] + ex.targets[i]
        np.testing.assert_array_equal(ids[-len(tokens) :], tokens)
        assert not batch["attention_mask"][row, : seq_len - len(tokens)].any()
        # HF causal-LM labels: the input ids themselves on the target tokens, -100 elsewhere
        n = len(ex.targets[i])
        np.testing.assert_array_equal(labels[-n:], ex.targets[i])
        np.testing.assert_array_equal(labels[-n:], ids[-n:])
        assert np.all(labels[:-n] == -100)
        # each weight sits at the position of its label token
        np.testing.assert_allclose(w[-n:], ex.weights[i])
        assert np.all(w[:-n] == 0)
        # the counterfactual row ends in the same target at the same positions
        cf = ex.counterfactual_prompts[i] + ex.targets[i]
        np.testing.assert_array_equal(batch["cf_input_ids"][row][-len(cf) :], cf)
    pos = reweighted(ex, "pos", 0.5)
    assert pos.weights[0][0] == 1.0 and pos.weights[0][-1] == pytest.approx(0.5)


def test_cutoff_keeps_the_last_tokens(setup):
    tok, trie, samples, cat = setup
    ex = tokenize_samples(samples, tok, cat, trie=trie)
    n = len(ex.targets[0])
    batch = assemble_batch(ex, [0], n + 4, pad_id=0)
    tokens = ex.prompts[0] + ex.targets[0]
    np.testing.assert_array_equal(batch["input_ids"][0], tokens[-(n + 4) :])
    assert (batch["labels"][0] != -100).sum() == n
    with pytest.raises(ValueError, match="does not fit"):
        assemble_batch(ex, [0], n, pad_id=0)
    ids, mask = assemble_prompts([[5, 6], [7]], 3, pad_id=0)
    np.testing.assert_array_equal(ids, [[0, 5, 6], [0, 0, 7]])
    np.testing.assert_array_equal(mask, [[0, 1, 1], [0, 0, 1]])


def test_padding_rows_carry_no_label(setup):
    tok, trie, samples, cat = setup
    ex = tokenize_samples(samples, tok, cat, trie=trie, counterfactual=True)
    seq_len = ex.max_length(512)
    batch = assemble_batch(ex, [2, PAD_INDEX, 0], seq_len, pad_id=0, counterfactual=True)
    assert np.all(batch["labels"][1] == -100) and np.all(batch["weights"][1] == 0)
    # a padding row attends to a real example's tokens, so its activations stay finite
    np.testing.assert_array_equal(batch["input_ids"][1], batch["input_ids"][0])
    assert batch["attention_mask"][1].any() and batch["cf_attention_mask"][1].any()
    np.testing.assert_array_equal(
        batch["labels"][[0, 2]], assemble_batch(ex, [2, 0], seq_len, pad_id=0)["labels"]
    )


def _stream(ex, seed=3):
    collate = lambda idx: assemble_batch(ex, idx, ex.max_length(512), pad_id=0) | {"idx": idx}
    return step_stream(len(ex), collate, micro_batch_size=2, grad_accum=2, seed=seed, prefetch=0)


def test_train_stream_is_a_dataloader_without_drop_last_and_resumes(setup):
    tok, trie, _, cat = setup
    _, meta = synthetic_amazon(num_franchises=2, items_per_franchise=4, num_users=20)
    titles = sorted({m["title"] for m in meta if "title" in m})
    samples = [_sample(titles[i : i + 2], titles[i + 2]) for i in range(5)]
    ex = tokenize_samples(samples, tok, cat, trie=trie)
    it = _stream(ex)
    first = [next(it) for _ in range(3)]  # 6 micro-batches of 2: epochs [2, 2, 1+pad] x 2
    idx = np.concatenate([b["idx"] for b in first]).reshape(6, 2)
    for epoch in (idx[:3], idx[3:]):
        real = epoch[epoch != PAD_INDEX]
        assert sorted(real.tolist()) == list(range(5))  # every record once per epoch
        assert epoch[2, 1] == PAD_INDEX  # the short last batch, padded
    assert not np.array_equal(idx[:3], idx[3:])  # reshuffled every epoch
    pad_rows = np.flatnonzero(np.concatenate([b["idx"] for b in first]) == PAD_INDEX)
    labels = np.concatenate([b["labels"] for b in first])
    assert np.all(labels[pad_rows] == -100)
    state = it.get_state()
    rest = [next(it)["input_ids"] for _ in range(3)]
    it2 = _stream(ex)
    it2.set_state(state)
    for a, b in zip(rest, [next(it2)["input_ids"] for _ in range(3)]):
        np.testing.assert_array_equal(a, b)


def test_synthetic_catalog_shares_prefixes_and_is_skewed():
    reviews, meta = synthetic_amazon(seed=1)
    titles = [m["title"] for m in meta if m["asin"].startswith("S")]
    assert len(titles) == len(set(titles)) == 96
    prefixes = {" ".join(t.split()[:3]) for t in titles}
    assert len(prefixes) == 8  # one shared 3-word prefix per franchise
    counts = np.bincount([int(r["asin"][1:]) for r in reviews if r["asin"].startswith("S")])
    top = np.sort(counts)[::-1]
    assert top[:10].sum() > 3 * top[-10:].sum()  # Zipf-skewed popularity
