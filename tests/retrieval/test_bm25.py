"""BM25Retriever against bm25s called directly; persistence; the document mask."""

import bm25s
import numpy as np
import pytest

from jaxmethods.retrieval import BM25Retriever, DocStore, Passage

WORDS = [
    "cat",
    "dog",
    "bird",
    "fish",
    "lion",
    "tiger",
    "wolf",
    "bear",
    "horse",
    "mouse",
    "the",
    "a",
    "of",
    "and",
    "river",
    "mountain",
]


@pytest.fixture(scope="module")
def store():
    rng = np.random.default_rng(0)
    return DocStore(
        Passage(f"p{i}", " ".join(rng.choice(WORDS, size=rng.integers(3, 12))), f"T{i % 4}")
        for i in range(40)
    )


QUERIES = ["cat and dog", "river mountain lion", "the of", "zebra", "bear bear T2"]


def direct(store, queries, k, method="lucene", weight_mask=None):
    corpus = [f"{p.title}\n{p.text}" for p in store]
    model = bm25s.BM25(method=method)
    model.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(queries, stopwords="en", show_progress=False)
    res = model.retrieve(tokens, k=k, show_progress=False, weight_mask=weight_mask)
    return res.scores, res.documents


@pytest.mark.parametrize("method", ["lucene", "bm25+"])
def test_equals_bm25s(store, method):
    bm25 = BM25Retriever(store, method=method)
    scores, indices = bm25.search(QUERIES, 5)
    want_s, want_i = direct(store, QUERIES, 5, method)
    np.testing.assert_array_equal(indices, want_i)
    np.testing.assert_allclose(scores, want_s, rtol=1e-6)
    assert scores.dtype == np.float32 and indices.dtype == np.int64
    # k beyond the corpus: bm25s's full ranking, then empty slots.
    scores, indices = bm25.search(QUERIES[:1], 45)
    np.testing.assert_array_equal(indices[:, :40], direct(store, QUERIES[:1], 40, method)[1])
    assert (indices[:, 40:] == -1).all() and np.isneginf(scores[:, 40:]).all()


def test_mask_and_save_load(store, tmp_path):
    bm25 = BM25Retriever(store)
    mask = np.arange(40) % 3 == 0
    scores, indices = bm25.search(QUERIES, 20, mask=mask)
    want_s, want_i = direct(store, QUERIES, 20, weight_mask=mask.astype(np.float32))
    for q in range(len(QUERIES)):
        keep = mask[want_i[q]]
        n = int(keep.sum())
        np.testing.assert_array_equal(indices[q, :n], want_i[q][keep])
        np.testing.assert_allclose(scores[q, :n], want_s[q][keep], rtol=1e-6)
        assert (indices[q, n:] == -1).all()
    bm25.save(tmp_path / "bm25")
    loaded = BM25Retriever.load(tmp_path / "bm25")
    assert list(loaded.docs) == list(store)
    for got, want in zip(loaded.search(QUERIES, 5), bm25.search(QUERIES, 5)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(FileNotFoundError, match="not a saved BM25Retriever"):
        BM25Retriever.load(tmp_path)
    with pytest.raises(ValueError, match=r"mask must be bool of shape \(40,\)"):
        bm25.search(QUERIES, 5, mask=np.ones(3, bool))
