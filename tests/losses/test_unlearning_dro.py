"""BalDRO reweightings: the DV aggregate and the group top-k selection."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.losses import (
    dv_aggregate as _dv_aggregate,
)
from jaxmethods.losses import (
    dv_weights,
    group_topk_indices,
    group_topk_mask,
    random_subset_indices,
    random_subset_mask,
    topk_count,
)

RNG = np.random.default_rng(1)
# One small program per (beta, sign, shape) compiles faster than many eager ops.
dv_aggregate = jax.jit(_dv_aggregate, static_argnames=("beta", "sign"))


def np_dv(losses, beta, sign=-1):
    """The authors' literal form: sign * beta * log(mean(exp(sign * l / beta)))."""
    return sign * beta * np.log(np.mean(np.exp(sign * np.asarray(losses, np.float64) / beta)))


@pytest.mark.parametrize("sign", [-1, 1])
@pytest.mark.parametrize("beta", [0.5, 2.0, 10.0])
def test_dv_matches_naive_form_on_moderate_values(sign, beta):
    losses = RNG.uniform(0, 5, size=12).astype(np.float32)
    np.testing.assert_allclose(
        dv_aggregate(jnp.asarray(losses), beta, sign=sign), np_dv(losses, beta, sign), rtol=1e-5
    )


def test_dv_limits():
    losses = jnp.asarray([3.0, 1.0, 7.0, 4.0])
    np.testing.assert_allclose(dv_aggregate(losses, 1e6), float(losses.mean()), rtol=1e-4)
    np.testing.assert_allclose(dv_aggregate(losses, 1e6, sign=1), float(losses.mean()), rtol=1e-4)
    np.testing.assert_allclose(dv_aggregate(losses, 1e-3), 1.0, atol=2e-3)  # min
    np.testing.assert_allclose(dv_aggregate(losses, 1e-3, sign=1), 7.0, atol=2e-3)  # max


def test_dv_equal_losses_and_large_ratio_stays_finite():
    np.testing.assert_allclose(dv_aggregate(jnp.full((5,), 2.5), 0.7), 2.5, rtol=1e-6)
    big = jnp.asarray([1e4, 2e4, 3e4])
    out = dv_aggregate(big, 0.5)
    assert np.isfinite(float(out)) and abs(float(out) - 1e4) < 1.0
    assert np.isfinite(float(dv_aggregate(big, 0.5, sign=1)))
    # the naive form overflows there, which is why logsumexp is used
    with np.errstate(over="ignore", divide="ignore"):
        assert not np.isfinite(np_dv(np.asarray(big), 0.5, sign=1))


@pytest.mark.parametrize("sign", [-1, 1])
def test_dv_gradient_is_softmax_and_sums_to_one(sign):
    losses = jnp.asarray(RNG.uniform(0, 3, size=9).astype(np.float32))
    g = jax.jit(jax.grad(lambda x: _dv_aggregate(x, 1.3, sign=sign)))(losses)
    want = np.exp(sign * np.asarray(losses) / 1.3)
    np.testing.assert_allclose(g, want / want.sum(), rtol=1e-5)
    np.testing.assert_allclose(float(g.sum()), 1.0, rtol=1e-6)
    np.testing.assert_allclose(dv_weights(losses, 1.3, sign=sign), g, rtol=1e-6)


def test_dv_mask_and_per_token_flattening():
    losses = jnp.asarray(RNG.uniform(0, 3, size=(3, 4)).astype(np.float32))
    mask = jnp.asarray(RNG.uniform(size=(3, 4)) > 0.4)
    want = np_dv(np.asarray(losses)[np.asarray(mask)], 2.0)
    np.testing.assert_allclose(dv_aggregate(losses, 2.0, mask), want, rtol=1e-5)
    g = jax.jit(jax.grad(lambda x: _dv_aggregate(x, 2.0, mask)))(losses)
    np.testing.assert_array_equal(np.asarray(g)[~np.asarray(mask)], 0.0)
    np.testing.assert_allclose(float(g.sum()), 1.0, rtol=1e-6)
    assert float(dv_aggregate(losses, 2.0, jnp.zeros((3, 4), bool))) == 0.0


def test_dv_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sign"):
        _dv_aggregate(jnp.ones(3), 1.0, sign=0)
    with pytest.raises(ValueError, match="beta"):
        _dv_aggregate(jnp.ones(3), 0.0)
    with pytest.raises(ValueError, match="mask shape"):
        _dv_aggregate(jnp.ones(3), 1.0, jnp.ones(4, bool))


@pytest.mark.parametrize("b", [1, 2, 3, 8, 9, 16])
def test_group_topk_picks_exactly_k_lowest_nll(b):
    avg_nll = RNG.uniform(0.1, 5, size=b).astype(np.float32)
    hardness = -avg_nll
    k = max(1, int(b * 0.5))
    assert topk_count(b, 0.5) == k
    sel = np.asarray(group_topk_mask(jnp.asarray(hardness), 0.5))
    assert sel.sum() == k
    np.testing.assert_array_equal(np.sort(np.where(sel)[0]), np.sort(np.argsort(avg_nll)[:k]))
    idx, valid = group_topk_indices(jnp.asarray(hardness), 0.5)
    assert idx.shape == (k,) and bool(valid.all())
    np.testing.assert_array_equal(np.sort(np.asarray(idx)), np.sort(np.where(sel)[0]))


def test_group_topk_with_mask_uses_valid_rows_only():
    hardness = jnp.asarray([5.0, 1.0, 9.0, 3.0, 8.0, 0.0])
    mask = jnp.asarray([True, True, False, True, True, False])  # 4 valid -> k = 2
    sel = np.asarray(group_topk_mask(hardness, 0.5, mask))
    np.testing.assert_array_equal(sel, [True, False, False, False, True, False])
    idx, valid = group_topk_indices(hardness, 0.5, mask)  # k_max = 3 rows gathered
    assert idx.shape == (3,)
    np.testing.assert_array_equal(np.asarray(idx)[np.asarray(valid)], [4, 0])


def test_group_topk_has_no_gradient():
    h = jnp.asarray([0.3, -1.0, 2.0, 0.5])

    def f(x):
        sel = group_topk_mask(x, 0.5)
        return jnp.sum(jnp.where(sel, 1.0, 0.0) * 3.0)

    np.testing.assert_array_equal(jax.grad(f)(h), 0.0)


def test_group_topk_is_jittable_without_retrace():
    f = jax.jit(lambda h: group_topk_mask(h, 0.5))
    for _ in range(3):
        assert int(f(jnp.asarray(RNG.normal(size=8).astype(np.float32))).sum()) == 4


def test_topk_count_validation():
    with pytest.raises(ValueError, match="ratio"):
        topk_count(8, 0.0)
    with pytest.raises(ValueError, match="batch size"):
        topk_count(0, 0.5)


def test_random_subsets():
    key = jax.random.key(0)
    mask = jnp.asarray([True, False, True, True, True])
    sel = random_subset_mask(key, 2, mask)
    assert int(sel.sum()) == 2 and not bool(sel[1])
    idx, valid = random_subset_indices(key, 5, 3, mask)
    assert idx.shape == (3,) and bool(valid.all()) and 1 not in np.asarray(idx).tolist()
    assert len(set(np.asarray(idx).tolist())) == 3
    # uniform: every row gets picked across keys
    seen = set()
    for s in range(20):
        seen |= set(np.asarray(random_subset_indices(jax.random.key(s), 5, 1)[0]).tolist())
    assert seen == {0, 1, 2, 3, 4}
