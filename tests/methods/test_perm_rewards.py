"""PERM reward composition against a NumPy transcription of the authors' `calculate_final_scores`
and reward functions, and the spec's numbers."""

import math

import jax
import numpy as np
import pytest

from jaxmethods.methods.perm.rewards import (
    RewardConfig,
    bystander_term,
    empathy_geometric,
    empathy_harmonic,
    empathy_mean,
    length_penalty,
    make_compose,
)

KINDS = ("resonation", "expression", "reception", "standby")


def authors_final_score(s, mode, weights=None):
    """perm/utils.py::calculate_final_scores for one sample (loops as the authors wrote them)."""
    if mode == "mean":
        if weights is not None:
            total_w = sum(weights)
            return sum(x * w / 5.0 for x, w in zip(s, weights)) / total_w if total_w > 0 else 0.0
        return sum(x / 5.0 for x in s) / len(s)
    if mode == "harmonic":
        total, n = 0.0, 0
        for x in s:
            if x > 0:
                total, n = total + 5.0 / x, n + 1
        return n / total if n else 0.0
    prod, n = 1.0, 0
    for x in s:
        if x / 5.0 > 0:
            prod, n = prod * x / 5.0, n + 1
    return math.pow(prod, 1.0 / n) if n else 0.0


def test_spec_numbers():
    @jax.jit  # one compilation for all of them
    def terms(s, lengths, standby):
        return (empathy_harmonic(s), empathy_mean(s), empathy_geometric(s),
                length_penalty(lengths), bystander_term(standby))  # fmt: skip

    s = np.array([[5.0, 5.0, 1.0], [5.0, 5.0, 5.0]], np.float32)
    h, m, g, lp, by = terms(s, np.array([0, 768, 769, 1024]), np.array([100.0, 0.0, 85.0]))
    np.testing.assert_allclose(h, [3 / 7, 1.0], atol=1e-6)
    np.testing.assert_allclose(m, [11 / 15, 1.0], atol=1e-6)
    np.testing.assert_allclose(g, [0.2 ** (1 / 3), 1.0], atol=1e-6)
    assert [round(float(x[0]), 4) for x in (h, m, g)] == [0.4286, 0.7333, 0.5848]
    np.testing.assert_allclose(lp, [0, 0, -0.001, -0.256], atol=1e-7)
    np.testing.assert_allclose(by, [0, -0.5, -0.075], atol=1e-7)


@pytest.mark.parametrize("mode", ["harmonic", "mean", "geometric"])
def test_modes_match_the_authors_loops_including_zero_scores(mode):
    rng = np.random.default_rng(0)
    s = rng.integers(0, 6, size=(64, 3)).astype(np.float32)  # 0 = a dimension the code skips
    s[0] = 0
    fn = {"harmonic": empathy_harmonic, "mean": empathy_mean, "geometric": empathy_geometric}[mode]
    want = [authors_final_score(row, mode) for row in s]
    np.testing.assert_allclose(jax.jit(fn)(s), want, rtol=1e-5, atol=1e-6)


def test_weighted_mean_fixed_and_per_row():
    rng = np.random.default_rng(1)
    s = rng.integers(1, 6, size=(16, 3)).astype(np.float32)
    w = np.array([2.0, 1.0, 0.5])
    rows = rng.random((16, 3)).astype(np.float32)
    rows[3] = 0.0
    fixed, per_row = jax.jit(lambda s, w, rows: (empathy_mean(s, w), empathy_mean(s, rows)))(
        s, w, rows
    )
    np.testing.assert_allclose(fixed, [authors_final_score(r, "mean", w) for r in s], rtol=1e-6)
    want = [authors_final_score(r, "mean", ww) for r, ww in zip(s, rows)]
    np.testing.assert_allclose(per_row, want, rtol=1e-5, atol=1e-7)


def test_compose_is_the_sum_of_the_three_terms_and_jits():
    rng = np.random.default_rng(2)
    scores = np.concatenate(
        [rng.integers(1, 6, (32, 3)), rng.integers(0, 101, (32, 1))], axis=1
    ).astype(np.float32)
    lengths = rng.integers(0, 1100, 32).astype(np.int32)
    cfg = RewardConfig()  # grpo_train.sh: harmonic, limit 768 / 0.001, standby 0.5
    got = jax.jit(make_compose(cfg, KINDS))(scores, lengths, {})
    want = [
        authors_final_score(s[:3], "harmonic") - 0.001 * max(0, int(n) - 768)
        + 0.5 * (s[3] / 100.0 - 1.0)
        for s, n in zip(scores, lengths)
    ]  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    plain = jax.jit(
        make_compose(RewardConfig(use_length_penalty=False, use_standby=False), KINDS[:3])
    )
    np.testing.assert_allclose(
        plain(scores[:, :3], lengths, {}), [authors_final_score(s[:3], "harmonic") for s in scores],
        rtol=1e-5,
    )  # fmt: skip


def test_compose_with_per_user_weights():
    rng = np.random.default_rng(3)
    table = rng.dirichlet(np.ones(4), size=5).astype(np.float32)  # [U=5, K=4] incl. standby
    scores = np.concatenate(
        [rng.integers(1, 6, (12, 3)), rng.integers(0, 101, (12, 1))], axis=1
    ).astype(np.float32)
    users = rng.integers(0, 5, 12).astype(np.int32)
    lengths = np.full(12, 800, np.int32)
    compose = jax.jit(make_compose(RewardConfig(), KINDS, table, KINDS))
    got = compose(scores, lengths, {"user": users})
    norm = scores / np.array([5, 5, 5, 100], np.float32)
    want = (table[users] * norm).sum(1) / table[users].sum(1) - 0.032  # no second standby term
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    three = jax.jit(make_compose(RewardConfig(length_coef=0.0), KINDS, table[:, :3], KINDS[:3]))
    want3 = (table[users, :3] * norm[:, :3]).sum(1) / table[users, :3].sum(1) + 0.5 * (
        scores[:, 3] / 100 - 1
    )
    np.testing.assert_allclose(three(scores, lengths, {"user": users}), want3, rtol=1e-5)


def test_compose_errors():
    with pytest.raises(ValueError, match="standby"):
        make_compose(RewardConfig(), KINDS[:3])
    with pytest.raises(ValueError, match="mode"):
        RewardConfig(mode="median")
    with pytest.raises(ValueError, match=r"\[U, 3\]"):
        make_compose(RewardConfig(), KINDS, np.ones((2, 4)), KINDS[:3])
