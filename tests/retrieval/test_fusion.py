"""RRF and weighted score fusion against hand-computed values; HybridRetriever over stores."""

import numpy as np
import pytest

from jaxmethods.retrieval import DocStore, HybridRetriever, Passage, rrf_fuse, score_fuse

NEG = -np.inf
# One query, two retrievers. A: docs 3, 1, 2 (scores 9, 6, 3); B: docs 1, 5, empty slot.
A = (np.array([[9.0, 6.0, 3.0]]), np.array([[3, 1, 2]]))
B = (np.array([[0.8, 0.2, NEG]]), np.array([[1, 5, -1]]))


def test_rrf_hand_computed():
    scores, indices = rrf_fuse([A, B], 4)
    # doc 1: 1/62 + 1/61; doc 3: 1/61; doc 5: 1/62; doc 2: 1/63.
    np.testing.assert_array_equal(indices, [[1, 3, 5, 2]])
    np.testing.assert_allclose(scores, [[1 / 62 + 1 / 61, 1 / 61, 1 / 62, 1 / 63]], rtol=1e-12)
    scores, indices = rrf_fuse([A, B], 5, rrf_k=1, weights=[1.0, 3.0])
    # doc 1: 1/3 + 3/2; doc 5: 3/3; doc 3: 1/2; doc 2: 1/4; then an empty slot.
    np.testing.assert_array_equal(indices, [[1, 5, 3, 2, -1]])
    np.testing.assert_allclose(scores[0, :4], [1 / 3 + 3 / 2, 1.0, 0.5, 0.25], rtol=1e-12)
    assert np.isneginf(scores[0, 4])


def test_score_fusion_hand_computed():
    # minmax: A -> 3:1, 1:0.5, 2:0; B -> 1:1, 5:0; missing docs 0.
    scores, indices = score_fuse([A, B], 4, weights=[1.0, 2.0])
    np.testing.assert_array_equal(indices, [[1, 3, 2, 5]])  # 2 and 5 tie at 0: smaller index
    np.testing.assert_allclose(scores, [[0.5 + 2.0, 1.0, 0.0, 0.0]], atol=1e-12)
    # zscore: A scores 9, 6, 3 -> mean 6, std sqrt(6): z = 3/sqrt6, 0, -3/sqrt6.
    # B 0.8, 0.2 -> z = 1, -1; a doc missing from B gets B's lowest z, -1.
    scores, indices = score_fuse([A, B], 4, norm="zscore")
    z = 3 / np.sqrt(6)
    want = {1: 0 + 1, 3: z - 1, 2: -z - 1, 5: -z - 1}  # doc 5 missing from A: A's lowest, -z
    np.testing.assert_array_equal(indices, [[1, 3, 2, 5]])
    np.testing.assert_allclose(scores[0], [want[d] for d in (1, 3, 2, 5)], atol=1e-12)
    with pytest.raises(ValueError, match="norm must be one of"):
        score_fuse([A], 2, norm="rank")
    with pytest.raises(ValueError, match="2 weights for 1 results"):
        rrf_fuse([A], 2, weights=[1, 2])


class FixedRetriever:
    """Returns fixed (scores, indices) for every query."""

    def __init__(self, docs, scores, indices):
        self.docs, self.scores, self.indices = docs, np.array(scores), np.array(indices)
        self.calls = []

    def search(self, queries, k, **filters):
        self.calls.append((k, filters))
        reps = (len(queries), 1)
        return np.tile(self.scores[:k], reps), np.tile(self.indices[:k], reps)


def test_hybrid_maps_other_stores_by_id():
    main = DocStore(Passage(f"d{i}", f"text {i}") for i in range(6))
    # The second retriever's store lists the same passages in another order.
    other = DocStore([main[5], main[1], main[0], Passage("zz", "only in the other store")])
    a = FixedRetriever(main, [9.0, 6.0, 3.0], [3, 1, 2])
    b = FixedRetriever(other, [0.8, 0.2, NEG], [1, 0, -1])  # = d1, d5, empty
    hybrid = HybridRetriever([a, b], depth=3)
    scores, indices = hybrid.search(["q", "q2"], 2, mask="m")
    np.testing.assert_array_equal(indices, [[1, 3], [1, 3]])
    np.testing.assert_allclose(scores[0], [1 / 62 + 1 / 61, 1 / 61], rtol=1e-6)
    assert a.calls == [(3, {"mask": "m"})] and b.calls == [(3, {"mask": "m"})]
    scores, indices = HybridRetriever([a, b], method="score", weights=[1, 2]).search(["q"], 4)
    np.testing.assert_array_equal(indices, [[1, 3, 2, 5]])
    b.indices[0] = 3
    with pytest.raises(KeyError, match="no passage with id 'zz'"):
        hybrid.search(["q"], 2)
