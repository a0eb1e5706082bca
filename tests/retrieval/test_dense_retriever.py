"""DenseRetriever / build_dense_index with a deterministic stand-in encoder."""

import zlib

import jax
import numpy as np
import pytest

from jaxmethods.retrieval import (
    BM25Retriever,
    DenseRetriever,
    DocStore,
    HybridRetriever,
    Passage,
    TextEncoder,
    build_dense_index,
    passage_text,
    rrf_fuse,
)
from jaxmethods.train.mesh import make_mesh


class HashedBagOfWords:
    """Sum of a fixed random vector per lower-cased word (seeded by the word's CRC32)."""

    def __init__(self, dim):
        self.dim = dim
        self.calls = []

    def _word(self, w):
        return np.random.default_rng(zlib.crc32(w.encode())).normal(size=self.dim)

    def embed(self, texts, batch_size):
        self.calls.append(len(texts))
        assert len(texts) <= batch_size
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i] += self._word(w)
        return out

    def embed_queries(self, texts, batch_size):  # an E5-style query prefix
        return self.embed(["query: " + t for t in texts], batch_size)


WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
]


@pytest.fixture(scope="module")
def store():
    rng = np.random.default_rng(3)
    return DocStore(
        Passage(f"p{i}", " ".join(rng.choice(WORDS, size=6)), f"t{i}", {"year": 2000 + i % 9})
        for i in range(45)
    )


def test_build_and_search_equal_numpy(store):
    enc = HashedBagOfWords(16)
    assert isinstance(enc, TextEncoder)
    mesh = make_mesh({"corpus": 2}, devices=jax.devices()[:2])
    index = build_dense_index(
        store, enc, batch_size=8, metric="cosine", mesh=mesh, attribute_fields=("year",)
    )
    assert enc.calls == [8] * 5 + [5] and index.attribute_names == ["year"]
    emb = enc.embed([passage_text(p) for p in store], 64)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(index.embeddings)[:45], emb, atol=1e-6)

    retriever = DenseRetriever(enc, index, batch_size=4)
    queries = ["alpha beta gamma", "kappa kappa mu", "zeta"]
    scores, indices = retriever.search(queries, 5)
    q = enc.embed(["query: " + t for t in queries], 4)
    ref = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ emb.T
    want = np.argsort(-ref, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(indices, want)
    np.testing.assert_allclose(scores, np.take_along_axis(ref, want, 1), atol=1e-5)
    assert [p.id for p in index.passages(indices)[0]] == [f"p{i}" for i in want[0]]

    # Hybrid over BM25 and dense sharing the store equals RRF of the two result lists.
    bm25 = BM25Retriever(store, stopwords=None)
    fused = HybridRetriever([bm25, retriever]).search(queries, 5)
    want = rrf_fuse([bm25.search(queries, 5), (scores, indices)], 5)
    np.testing.assert_array_equal(fused[1], want[1])


def test_dimension_mismatch_names_both_shapes(store):
    index = build_dense_index(store, HashedBagOfWords(8), mesh=make_mesh({"corpus": 1}))
    with pytest.raises(ValueError, match=r"\[45, 8\].*HashedBagOfWords produces \[\*, 12\]"):
        DenseRetriever(HashedBagOfWords(12), index)

    class Broken(HashedBagOfWords):
        def embed(self, texts, batch_size):
            return super().embed(texts, batch_size)[:, :4]

    with pytest.raises(ValueError, match=r"Broken\.embed returned shape \(3, 4\).*\(3, 8\)"):
        build_dense_index(DocStore(list(store)[:3]), Broken(8))
