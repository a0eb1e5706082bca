"""MRM embedding extractor: tiny random reward model + tiny tokenizer, PRISM/Reddit fixtures."""

import json
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from jaxmethods.data.preferences import load_corpus, save_corpus
from jaxmethods.data.prism import load_prism_pairs
from jaxmethods.data.reddit_tldr import load_reddit_pairs
from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.data.user_splits import apply_protocol
from jaxmethods.methods.mrm import extract_embeddings as ex
from jaxmethods.models.decoder_config import DecoderConfig
from jaxmethods.models.heads import SequenceClassifier

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="module")
def prism_pairs():
    return load_prism_pairs(DATA / "prism")[0]


@pytest.fixture(scope="module")
def tokenizer(prism_pairs):
    reddit, _ = load_reddit_pairs(DATA / "reddit")
    texts = [m["content"] for p in prism_pairs + reddit for m in p.prompt] + [
        t for p in prism_pairs + reddit for t in (p.chosen, p.rejected)
    ]
    return build_tiny_tokenizer(texts, vocab_size=160)


@pytest.fixture(scope="module")
def model(tokenizer):
    return SequenceClassifier(DecoderConfig.tiny(vocab_size=len(tokenizer)), rngs=nnx.Rngs(0))


def test_tokenize_dedups_identical_conversations(tokenizer, prism_pairs):
    pairs = prism_pairs[:4]  # c00 turn 0 (three rejected share one chosen) and turn 1
    seqs, ch, rj = ex.tokenize_pairs(tokenizer, pairs)
    assert ch.tolist()[:3] == [0, 0, 0] and len(set(rj.tolist())) == 4
    assert len(seqs) == 2 + 4  # 2 distinct chosen chats (turn 0 shared by 3 pairs) + 4 rejected
    chat = ex.pair_conversations(pairs[3])[0]
    assert seqs[ch[3]] == list(
        tokenizer.apply_chat_template(chat, tokenize=True, return_dict=False)
    )
    assert chat[-1] == {"role": "assistant", "content": "c00 t1 good"} and len(chat) == 4
    with pytest.raises(
        ValueError, match=r"pair 0 \(user user0, conversation c00\): \d+ tokens > max_length=3"
    ):
        ex.tokenize_pairs(tokenizer, pairs, max_length=3)


def test_embeddings_equal_unbatched_last_token_state(model, tokenizer, prism_pairs):
    """hidden_states[-1][0, -1] of each unpadded sequence, as the authors compute it."""
    seqs, _, _ = ex.tokenize_pairs(tokenizer, prism_pairs[:4])
    assert len({len(s) for s in seqs}) > 1  # ragged lengths: padding and gathering matter
    emb, score = ex.embed_sequences(model, seqs, batch_size=4, pad_multiple=128)
    assert emb.shape == (len(seqs), 32) and emb.dtype == np.float32
    # The shortest sequence carries the most padding; compare with its unpadded forward pass.
    i = min(range(len(seqs)), key=lambda k: len(seqs[k]))
    ids = np.asarray(seqs[i], np.int32)[None]
    ref, ref_score = nnx.jit(lambda m, x: (m.hidden_states(x)[0, -1], m(x)[0, 0]))(model, ids)
    np.testing.assert_allclose(emb[i], np.asarray(ref), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(score[i], float(ref_score), rtol=1e-5, atol=1e-5)
    # batch size and padding do not change the result
    emb8, _ = ex.embed_sequences(model, seqs, batch_size=8, pad_multiple=128)
    np.testing.assert_allclose(emb8, emb, rtol=1e-5, atol=1e-5)


def test_sharded_batch_over_fake_devices_matches(model, tokenizer, prism_pairs):
    from jaxmethods.train.mesh import make_mesh

    seqs, _, _ = ex.tokenize_pairs(tokenizer, prism_pairs[:6])
    mesh = make_mesh({"data": 4, "fsdp": 1, "tensor": 1})
    emb, score = ex.embed_sequences(model, seqs, batch_size=4, pad_multiple=128, mesh=mesh)
    ref, ref_score = ex.embed_sequences(model, seqs, batch_size=8, pad_multiple=128)
    np.testing.assert_allclose(emb, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(score, ref_score, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="multiple of the mesh's data axes"):
        ex.embed_sequences(model, seqs, batch_size=6, mesh=mesh)


def test_extract_prism_corpus_round_trip(model, tokenizer, prism_pairs, tmp_path):
    corpus = ex.extract_corpus(model, tokenizer, prism_pairs, batch_size=8, pad_multiple=128)
    assert corpus.num_pairs == 48 and corpus.users == ["user0", "user3", "user5"]
    assert corpus.embeddings.shape[0] < 2 * 48  # shared chosen replies embedded once
    meta = corpus.meta[0]
    assert set(meta) >= {
        "conversation_id",
        "prompt",
        "chosen",
        "rejected",
        "chosen_idx",
        "rejected_idx",
        "chosen_score",
        "rejected_score",
    }
    assert meta["chosen_idx"] == corpus.chosen[0] and meta["chosen_rating"] == 90
    # scores are the reward head on the stored embedding (the authors' cls_score check)
    head = np.asarray(model.score.kernel[...])[:, 0]
    for m, ch, rj in zip(corpus.meta[:6], corpus.chosen, corpus.rejected):
        np.testing.assert_allclose(
            m["chosen_score"], corpus.embeddings[ch] @ head, rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            m["rejected_score"], corpus.embeddings[rj] @ head, rtol=1e-5, atol=1e-6
        )
    save_corpus(corpus, tmp_path / "full", embedding_dtype="float32")
    loaded = load_corpus(tmp_path / "full")
    np.testing.assert_array_equal(loaded.embeddings, corpus.embeddings)
    assert loaded.meta == json.loads(json.dumps(corpus.meta))
    split = apply_protocol(loaded, "prism", seed=42)
    assert split.user_seen.sum() == 1 and (split.pair_split == 1).any()


def test_extract_reddit_pairs_keep_source_split(model, tokenizer):
    pairs, _ = load_reddit_pairs(DATA / "reddit")
    corpus = ex.extract_corpus(model, tokenizer, pairs, batch_size=8, pad_multiple=128)
    np.testing.assert_array_equal(
        corpus.pair_split, [p.source_split == "validation" for p in pairs]
    )
    split = apply_protocol(corpus, "reddit", seed=42, seen_train_limit=2, unseen_train_limit=1)
    assert split.num_pairs == 2 + 1 + 1 + 2 + 3 + 1


def test_cli_extract_from_checkpoint_then_split(tmp_path, model, tokenizer, prism_pairs):
    from jaxmethods.hf import save_pretrained

    save_pretrained(model, str(tmp_path / "rm"), tokenizer=tokenizer)
    ex.main(
        [
            "extract",
            "--dataset",
            "prism",
            "--source",
            str(DATA / "prism"),
            "--model",
            str(tmp_path / "rm"),
            "--out",
            str(tmp_path / "full"),
            "--dtype",
            "float32",
            "--batch_size",
            "8",
            "--pad_multiple",
            "128",
            "--embedding_dtype",
            "float32",
        ]
    )
    full = load_corpus(tmp_path / "full")
    direct = ex.extract_corpus(model, tokenizer, prism_pairs, batch_size=8, pad_multiple=128)
    np.testing.assert_allclose(full.embeddings, direct.embeddings, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(full.chosen, direct.chosen)
    assert full.user_seen is None and (full.pair_split == 0).all()
    ex.main(
        [
            "split",
            "--corpus",
            str(tmp_path / "full"),
            "--out",
            str(tmp_path / "prism"),
            "--protocol",
            "prism",
            "--seed",
            "42",
        ]
    )
    out = load_corpus(tmp_path / "prism")
    expected = apply_protocol(full, "prism", seed=42)
    assert out.users == expected.users and out.user_seen.tolist() == expected.user_seen.tolist()
    np.testing.assert_array_equal(out.pair_split, expected.pair_split)


def test_read_authors_embeddings(tmp_path):
    torch = pytest.importorskip("torch")
    emb = torch.randn(6, 5).to(torch.bfloat16)
    torch.save(emb, tmp_path / "V1.pt")
    meta = {
        "uB": [
            {
                "conversation_id": "c1",
                "prompt": [],
                "chosen": "a",
                "rejected": "b",
                "chosen_idx": 0,
                "rejected_idx": 1,
                "chosen_score": 1.0,
                "rejected_score": 0.5,
            }
        ],
        "uA": [
            {"conversation_id": 7, "chosen_idx": 2, "rejected_idx": 3, "split": "train"},
            {"conversation_id": 8, "chosen_idx": 4, "rejected_idx": 5, "split": "val"},
        ],
    }
    (tmp_path / "V1.json").write_text(json.dumps(meta))
    corpus = ex.read_authors_embeddings(tmp_path / "V1.pt")
    np.testing.assert_array_equal(corpus.embeddings, emb.float().numpy())
    assert corpus.users == ["uB", "uA"] and corpus.pair_split.tolist() == [0, 0, 1]
    np.testing.assert_array_equal(corpus.rejected, [1, 3, 5])
    (tmp_path / "bad.json").write_text(json.dumps({"uA": [{"chosen_idx": 0, "rejected_idx": 1}]}))
    with pytest.raises(
        ValueError, match=r"bad\.json: user 'uA' entry 0: missing field 'conversation_id'"
    ):
        ex.read_authors_embeddings(tmp_path / "V1.pt", tmp_path / "bad.json")


def test_read_authors_embeddings_without_torch(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ImportError, match=r"needs PyTorch .*jaxmethods\[torch\]"):
        ex.read_authors_embeddings(tmp_path / "V1.pt")
