"""DenseIndex against brute-force NumPy top-k: filters, sharding, bf16, save/load."""

import jax
import ml_dtypes
import numpy as np
import pytest

from jaxmethods.retrieval import DenseIndex, DocStore, Passage
from jaxmethods.train.mesh import make_mesh

N, D, Q, K = 203, 24, 10, 7  # N is not a multiple of the shard counts: padding is exercised


def brute_topk(queries, emb, k, keep=None):
    """NumPy reference: scores [Q, N] fp32, -inf where not kept, stable top-k, -1 for -inf."""
    scores = queries.astype(np.float32) @ emb.astype(np.float32).T
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(scores, order, 1)
    order = np.where(np.isneginf(top), -1, order)
    if k > scores.shape[1]:
        pad = k - scores.shape[1]
        top = np.pad(top, ((0, 0), (0, pad)), constant_values=-np.inf)
        order = np.pad(order, ((0, 0), (0, pad)), constant_values=-1)
    return top, order


def assert_same(got, want, atol=1e-5):
    (gs, gi), (ws, wi) = got, want
    np.testing.assert_array_equal(gi, wi)
    finite = np.isfinite(ws)
    np.testing.assert_array_equal(np.isfinite(gs), finite)
    np.testing.assert_allclose(gs[finite], ws[finite], atol=atol, rtol=atol)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(N, D)).astype(np.float32)
    queries = rng.normal(size=(Q, D)).astype(np.float32)
    dates = rng.integers(0, 100, size=N)
    return emb, queries, dates


@pytest.fixture(scope="module")
def mesh2():
    return make_mesh({"corpus": 2}, devices=jax.devices()[:2])


@pytest.fixture(scope="module")
def index(data, mesh2):
    emb, _, dates = data
    return DenseIndex(emb, mesh=mesh2, attributes={"date": dates}, query_batch=4)


def test_unfiltered_topk_equals_numpy_and_compiles_once(index, data):
    emb, queries, _ = data
    assert index.shards == 2 and index.padded == 204
    assert_same(index.search(queries, K), brute_topk(queries, emb, K))
    # Q=10 in batches of 4: three calls of one executable.
    assert index._fns[(K, None, ())]._cache_size() == 1
    # k larger than the corpus: the padded row is never returned, the extra slots are empty.
    scores, indices = index.search(queries[:2], N + 3)
    assert_same((scores, indices), brute_topk(queries[:2], emb, N + 3))
    assert (indices[:, N:] == -1).all() and sorted(indices[0, :N]) == list(range(N))


def test_filters_inside_search_per_query(index, data):
    emb, queries, dates = data
    rng = np.random.default_rng(1)
    lo = rng.integers(0, 90, size=Q)
    hi = lo + rng.integers(0, 12, size=Q)  # narrow windows: some queries have < K passing docs
    keep_range = (dates[None] >= lo[:, None]) & (dates[None] <= hi[:, None])
    got = index.search(queries, K, ranges={"date": (lo, hi)})
    want = brute_topk(queries, emb, K, keep_range)
    assert (want[1] == -1).any(), "the test should cover fewer than k passing documents"
    assert_same(got, want)
    # Open lower end, scalar upper end.
    got = index.search(queries, K, ranges={"date": (None, 20)})
    assert_same(got, brute_topk(queries, emb, K, (dates <= 20)[None]))
    # A shared [N] mask, and a per-query [Q, N] mask combined with the range.
    doc_mask = rng.random(N) < 0.3
    assert_same(
        index.search(queries, K, mask=doc_mask), brute_topk(queries, emb, K, doc_mask[None])
    )
    q_mask = rng.random((Q, N)) < 0.5
    got = index.search(queries, K, mask=q_mask, ranges={"date": (lo, hi)})
    assert_same(got, brute_topk(queries, emb, K, q_mask & keep_range))


def test_sharded_equals_unsharded_and_cosine(data):
    emb, queries, dates = data
    ranges = {"date": (10, 60)}
    results = []
    for mesh in (
        make_mesh({"corpus": 1}, devices=jax.devices()[:1]),
        make_mesh({"a": 2, "b": 2}, devices=jax.devices()[:4]),  # two corpus axes, 4 shards
    ):
        index = DenseIndex(emb, mesh=mesh, metric="cosine", attributes={"date": dates})
        results.append(index.search(queries, K, ranges=ranges))
    normed = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    want = brute_topk(qn, normed, K, ((dates >= 10) & (dates <= 60))[None])
    assert_same(results[0], want)
    assert_same(results[1], want)


def test_bfloat16_index(data, mesh2):
    emb, queries, _ = data
    index = DenseIndex(emb, mesh=mesh2, dtype="bfloat16")
    assert index.embeddings.dtype == np.dtype(ml_dtypes.bfloat16)
    scores, indices = index.search(queries, K)
    # Exact on bf16-rounded inputs with fp32 accumulation ...
    rounded = [x.astype(ml_dtypes.bfloat16).astype(np.float32) for x in (queries, emb)]
    assert_same((scores, indices), brute_topk(*rounded, K), atol=1e-4)
    # ... and close to the fp32 ranking.
    fs, fi = brute_topk(queries, emb, K)
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(indices, fi)])
    assert recall >= 0.85
    np.testing.assert_allclose(scores[:, 0], fs[:, 0], rtol=2e-2, atol=5e-2)


def test_save_load_round_trip(tmp_path, data, mesh2):
    emb, queries, dates = data
    docs = DocStore(Passage(id=f"d{i}", text=f"text {i}") for i in range(N))
    index = DenseIndex(emb, mesh=mesh2, metric="cosine", attributes={"date": dates}, docs=docs)
    index.save(tmp_path / "idx")
    # Loaded onto another mesh (4 shards over two axes), shard by shard from the file.
    loaded = DenseIndex.load(tmp_path / "idx", mesh=make_mesh({"a": 2, "b": 2}))
    assert (loaded.num_docs, loaded.dim, loaded.metric, loaded.shards) == (N, D, "cosine", 4)
    assert loaded.attribute_names == ["date"]
    np.testing.assert_array_equal(
        np.asarray(loaded.embeddings)[:N], np.asarray(index.embeddings)[:N]
    )
    normed = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    got = loaded.search(queries, K, ranges={"date": (10, 60)})
    assert_same(got, brute_topk(qn, normed, K, ((dates >= 10) & (dates <= 60))[None]))
    assert [p.id for p in loaded.passages(got[1])[0]] == [f"d{i}" for i in got[1][0]]
    assert loaded.passages(np.array([[-1]])) == [[None]]
    as_bf16 = DenseIndex.load(tmp_path / "idx", mesh=mesh2, dtype="bfloat16")
    assert as_bf16.embeddings.dtype == np.dtype(ml_dtypes.bfloat16)


def test_input_errors(index):
    with pytest.raises(ValueError, match=r"queries have shape \(2, 5\).*\[203, 24\]"):
        index.search(np.zeros((2, 5)), 3)
    with pytest.raises(KeyError, match="no attribute 'year'"):
        index.search(np.zeros((2, D)), 3, ranges={"year": (0, 1)})
    with pytest.raises(ValueError, match=r"mask has shape \(5,\)"):
        index.search(np.zeros((2, D)), 3, mask=np.ones(5, bool))
    with pytest.raises(ValueError, match=r"lo has shape \(3,\)"):
        index.search(np.zeros((2, D)), 3, ranges={"date": (np.zeros(3), 5)})
