"""MRM meta-step internals: the GEMM-friendly first layer, the per-user distinct rows, the lookup.

References are NumPy transcriptions: xᵀ dy for the kernel gradient, `np.unique` of each user's
valid slots for `rows`, and the Bradley-Terry query loss of the unadapted θ_w (0 inner steps)
computed from the embedding table directly. The meta-gradient itself is checked against the
PyTorch authors' structure in tests/benchmarks/test_mrm_baseline.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmethods.data.synthetic_prefs import make_synthetic_corpus
from jaxmethods.methods.mrm.config import MetaConfig
from jaxmethods.methods.mrm.objective import adapted_query_losses, split_model
from jaxmethods.methods.mrm.tasks import MetaTaskIterator
from jaxmethods.models.linear import wide_matmul
from jaxmethods.models.personalized_reward import PersonalizedReward
from jaxmethods.train.meta import InnerLoopConfig


def test_wide_matmul_value_gradient_and_forward_mode_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 7)).astype(np.float32)
    w = rng.standard_normal((7, 2)).astype(np.float32)
    c = rng.standard_normal((3, 5, 2)).astype(np.float32)
    loss = lambda w: jnp.sum(jnp.tanh(wide_matmul(jnp.asarray(x), w)) * c)
    y = np.tanh(np.einsum("trd,dk->trk", x, w))
    want = np.einsum("trd,trk->dk", x, c * (1 - y**2))  # xᵀ dy
    value, reverse, forward = jax.jit(
        lambda w: (wide_matmul(x, w), jax.grad(loss)(w), jax.jacfwd(loss)(w))
    )(w)  # one compile
    np.testing.assert_allclose(value, x @ w, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(reverse, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(forward, want, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def meta_batch():
    corpus, _ = make_synthetic_corpus(12, 8, pairs_per_user=(6, 12), convs_per_user=(2, 4), seed=3)
    seen, _ = corpus.seen_unseen(3)
    it = MetaTaskIterator(corpus, seen, tasks_per_batch=4, val_ratio=0.5, seed=3)
    return corpus, it, next(it)


def test_rows_are_each_users_distinct_valid_rows_padded_with_the_last(meta_batch):
    _, it, batch = meta_batch
    rows = batch["rows"]
    assert rows.shape == (4, it.max_rows) and rows.dtype == np.int32
    for t in range(4):
        used = [a[t][m[t]] for c, r, m in (batch["support"], batch["query"]) for a in (c, r)]
        want = sorted(set(np.concatenate(used).tolist()))
        assert rows[t, : len(want)].tolist() == want
        assert (rows[t, len(want) :] == want[-1]).all()


def test_query_losses_read_rows_and_a_missing_row_is_nan(meta_batch):
    corpus, _, batch = meta_batch
    emb = corpus.embeddings.astype(np.float32) * 20.0
    graphdef, params = split_model(PersonalizedReward(8, (2,), rngs=nnx.Rngs(0)))
    meta = MetaConfig(inner=InnerLoopConfig(steps=0), tasks_per_batch=4)
    args = (graphdef, meta, params["theta_w"], params["base"], False)
    jitted = jax.jit(lambda b: adapted_query_losses(*args, b, jnp.asarray(emb)))
    losses = lambda b: np.asarray(jitted(jax.tree.map(jnp.asarray, b)))
    (kernel,) = jax.tree.leaves(params["base"])
    (theta,) = jax.tree.leaves(params["theta_w"])
    weights = np.exp(theta) / np.exp(theta).sum()
    reward = (emb * 0.01) @ np.asarray(kernel, np.float64) @ weights  # [N]
    c, r, m = batch["query"]
    per_pair = np.log1p(np.exp(-(reward[c] - reward[r])))
    want = (per_pair * m).sum(1) / m.sum(1)
    np.testing.assert_allclose(losses(batch), want, rtol=1e-5)
    no_rows = {k: v for k, v in batch.items() if k != "rows"}  # one gather of every slot
    np.testing.assert_allclose(losses(no_rows), want, rtol=1e-5)
    broken = dict(batch, rows=batch["rows"].copy())
    broken["rows"][1] = broken["rows"][1, 0]  # user 1 loses every row but its first
    got = losses(broken)
    assert np.isnan(got[1]) and np.isfinite(np.delete(got, 1)).all()
