"""PERM's per-user perspective weights (meta-learned init, MRM-style) against NumPy references."""

import dataclasses
import json
import os
import re

import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.methods.perm.user_weights import (
    UserWeightsConfig,
    attach_users,
    meta_learn_user_weights,
    read_user_pairs,
    synthetic_user_pairs,
)
from jaxmethods.methods.perm.user_weights_meta import adapt_users, make_pair_loss, meta_schedule
from jaxmethods.train.config import ConfigError, to_dataclass
from jaxmethods.train.mesh import make_mesh
from jaxmethods.train.meta import InnerLoopConfig

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "data", "perm", "user_pairs.jsonl")
SCALE = np.array([5.0, 5.0, 5.0, 100.0])  # judge scales of resonation/expression/reception/standby
TIE = 1e-6

# Strongly non-uniform users (Dirichlet alpha 0.15); 30 users do not divide the 4 test devices,
# so the sharded path pads the user axis. (Seeds 0-5 all pass the checks below with margin.)
CFG = UserWeightsConfig(
    enabled=True,
    num_users=30,
    pairs_per_user=24,
    dirichlet_alpha=0.15,
    meta_steps=40,
    meta_lr=0.1,
    tasks_per_batch=8,
    hypergrad="first_order",
    far_threshold=0.3,
    seed=0,
)


@pytest.fixture(scope="module")
def pairs():
    return synthetic_user_pairs(CFG)


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_accuracy(margin, mask):
    credit = np.where(np.abs(margin) <= TIE, 0.5, (margin > 0).astype(float))
    return (credit * mask).sum(1) / mask.sum(1)


def test_meta_learn_user_weights(pairs):
    """One meta-learning run (sharded over the 4 test devices) checked from every side; one test
    so that a single xdist worker compiles it."""
    result = meta_learn_user_weights(CFG, pairs, mesh=make_mesh())
    check_weights(result, pairs)
    check_accuracies(result, pairs)
    check_adapted_beats_harmonic(result)
    check_init_leans_to_the_users(result, pairs)


def check_weights(result, pairs):
    assert result.weights.shape == (pairs.num_users, 4)
    np.testing.assert_allclose(result.weights.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(result.weights, np_softmax(result.user_logits), atol=1e-6)
    assert np.all(np.isfinite(result.meta_losses)) and len(result.meta_losses) == CFG.meta_steps


def test_zero_inner_steps_keep_the_init(pairs):
    cfg = dataclasses.replace(CFG, inner=InnerLoopConfig(lr=0.3, steps=0))
    theta0 = jnp.array([[0.5, -1.0, 0.2, 0.3]])
    out = adapt_users(cfg, theta0, pairs.chosen, pairs.rejected, pairs.support)
    np.testing.assert_array_equal(np.asarray(out), np.broadcast_to(theta0[:, None], out.shape))


def test_pair_loss_matches_numpy(pairs):
    theta = np.array([0.3, -0.7, 1.1, 0.0], np.float32)
    c, r, m = pairs.chosen[0], pairs.rejected[0], pairs.support[0]
    got = make_pair_loss(20.0)(jnp.asarray(theta), None, (c, r, m))
    logit = 20.0 * (c - r) @ np_softmax(theta)
    want = np.log1p(np.exp(-logit))[m].mean()
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def check_accuracies(result, pairs):
    query = pairs.mask & ~pairs.support
    margin = np.einsum("upk,uk->up", pairs.chosen - pairs.rejected, result.weights)
    np.testing.assert_allclose(result.accuracy["adapted"], np_accuracy(margin, query), atol=1e-9)
    hidden = np.einsum("upk,uk->up", pairs.chosen - pairs.rejected, pairs.hidden_weights)
    np.testing.assert_allclose(result.accuracy["hidden"], np_accuracy(hidden, query), atol=1e-9)

    def perm_fixed(side):  # PERM: harmonic mean of the three rubrics + 0.5 (S_by / 100 - 1)
        raw = side * SCALE
        return 3.0 / (5.0 / raw[..., :3]).sum(-1) + 0.5 * (raw[..., 3] / 100.0 - 1.0)

    harmonic = perm_fixed(pairs.chosen) - perm_fixed(pairs.rejected)
    np.testing.assert_allclose(result.accuracy["harmonic"], np_accuracy(harmonic, query), atol=1e-9)
    acc = result.accuracy["harmonic"]
    se = acc.std(ddof=1) / np.sqrt(len(acc))
    assert result.metrics["user_weights/acc/harmonic"] == pytest.approx(acc.mean())
    assert result.metrics["user_weights/acc_se/harmonic"] == pytest.approx(se)


def check_adapted_beats_harmonic(result):
    m = result.metrics
    assert m["user_weights/num_far_users"] >= 25
    for prefix in ("", "far_"):
        diff = m[f"user_weights/{prefix}adapted_minus_harmonic"]
        assert diff > 2 * m[f"user_weights/{prefix}adapted_minus_harmonic_se"] > 0
    assert m["user_weights/acc/adapted"] > m["user_weights/acc/uniform"]
    assert "| PERM fixed (harmonic + bystander) |" in result.table
    assert len(re.findall(r"^\| \d+ \| 12 \|", result.user_table, re.M)) == 30  # every user listed


def check_init_leans_to_the_users(result, pairs):
    # the meta-learned init is closer to the users' mean hidden weights than uniform weights are
    w, mean = np_softmax(result.init_logits), pairs.hidden_weights.mean(0)
    tv = lambda a: 0.5 * np.abs(a - mean).sum()
    assert tv(w) < 0.5 * tv(np.full(4, 0.25))
    assert result.metrics["user_weights/init_weight/resonation"] == pytest.approx(w[0])


def test_meta_schedule_uses_only_support_pairs(pairs):
    users, query = meta_schedule(CFG, pairs.support, seed=0)
    assert users.shape == (CFG.meta_steps, CFG.tasks_per_batch)
    assert all(len(set(row)) == len(row) for row in users)
    pool = pairs.support[users]
    assert not np.any(query & ~pool)  # held-out pairs never reach meta-training
    n = pool.sum(-1)
    np.testing.assert_array_equal(query.sum(-1), np.maximum(1, np.floor(n * CFG.val_ratio)))
    again = meta_schedule(CFG, pairs.support, seed=0)
    np.testing.assert_array_equal(again[1], query)


def test_synthetic_users(pairs):
    again = synthetic_user_pairs(CFG)
    np.testing.assert_array_equal(again.chosen, pairs.chosen)
    np.testing.assert_allclose(pairs.hidden_weights.sum(-1), 1.0, atol=1e-6)
    raw = np.concatenate([pairs.chosen, pairs.rejected]) * SCALE
    np.testing.assert_allclose(raw, np.rint(raw), atol=1e-4)  # integer judge scores
    assert raw[..., :3].min() >= 1 and raw[..., :3].max() <= 5
    assert raw[..., 3].min() >= 0 and raw[..., 3].max() <= 100
    n_support = pairs.support.sum(1)
    assert np.all(n_support == CFG.pairs_per_user // 2) and not np.any(pairs.support & ~pairs.mask)


def test_read_jsonl_fixture():
    cfg = UserWeightsConfig(source="jsonl", path=FIXTURE, seed=0)
    pairs = read_user_pairs(FIXTURE, cfg)
    assert pairs.users == ("7", "alice", "bob")  # integer ids first
    assert pairs.mask.sum(1).tolist() == [2, 3, 3]
    np.testing.assert_allclose(pairs.chosen[1, 0], [1.0, 0.4, 0.6, 0.4])
    np.testing.assert_allclose(pairs.rejected[0, 0], [0.6, 0.6, 0.4, 0.0])
    assert pairs.support[1].tolist() == [True, True, False]  # the explicit splits
    for u in (0, 2):  # seeded split: at least one support and one held-out pair
        assert 1 <= pairs.support[u].sum() < pairs.mask[u].sum()
    assert pairs.hidden_weights is None


GOOD = {"user": "u", "chosen_scores": [5, 2, 3, 40], "rejected_scores": [2, 4, 3, 60]}


@pytest.mark.parametrize(
    "line, field",
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "user"}), "'user'"),
        (json.dumps({**GOOD, "user": [1]}), "'user'"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "chosen_scores"}), "'chosen_scores'"),
        (json.dumps({**GOOD, "rejected_scores": [2, 4, 3]}), "'rejected_scores'"),
        (json.dumps({**GOOD, "chosen_scores": [5, "2", 3, 40]}), "'chosen_scores'"),
        (json.dumps({**GOOD, "chosen_scores": [6, 2, 3, 40]}), "'chosen_scores'[0] (resonation)"),
        (json.dumps({**GOOD, "rejected_scores": [2, 4, 3, 101]}), "'rejected_scores'[3] (standby)"),
        (json.dumps({**GOOD, "split": "train"}), "'split'"),
    ],
)
def test_read_jsonl_errors_name_file_line_and_field(tmp_path, line, field):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + line + "\n")
    cfg = UserWeightsConfig(source="jsonl", path=str(path))
    with pytest.raises(ValueError) as err:
        read_user_pairs(str(path), cfg)
    assert f"{path}:3:" in str(err.value) and field in str(err.value)


def test_config_and_empty_file_errors(tmp_path):
    with pytest.raises(ValueError, match="perspectives"):
        UserWeightsConfig(perspectives=("resonation", "empathy"))
    with pytest.raises(ValueError, match=r"user_weights\.path"):
        UserWeightsConfig(source="jsonl")
    with pytest.raises(ValueError, match="population_weights"):
        UserWeightsConfig(population_weights=(1.0, 2.0))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no preference pairs"):
        read_user_pairs(str(empty), UserWeightsConfig(source="jsonl", path=str(empty)))


def test_attach_users():
    users = ("0", "1", "2", "carol")
    recs = attach_users([{"prompt": "a"}] * 4 + [{"user": "carol"}, {"user": 2}], users, seed=1)
    assert sorted(r["user"] for r in recs[:4]) == [0, 1, 2, 3]  # every user gets prompts
    assert [r["user"] for r in recs[4:]] == [3, 2]
    for bad in ("dave", 4, True):
        with pytest.raises(ValueError, match="has no preference pairs"):
            attach_users([{"user": bad}], users)


def test_config_from_config_dict():
    cfg = to_dataclass(
        UserWeightsConfig,
        {"enabled": True, "inner": {"lr": 0.5, "steps": 2}, "tasks_per_batch": 0},
        "config.user_weights",
    )
    assert cfg.inner == InnerLoopConfig(lr=0.5, steps=2) and cfg.tasks_per_batch == 0
    with pytest.raises(ConfigError, match=r"config\.user_weights\.meta_steps"):
        to_dataclass(UserWeightsConfig, {"meta_steps": 0}, "config.user_weights")


@pytest.mark.slow
def test_sharded_equals_unsharded(pairs):
    a = meta_learn_user_weights(CFG, pairs, mesh=make_mesh())
    b = meta_learn_user_weights(CFG, pairs)
    np.testing.assert_allclose(a.user_logits, b.user_logits, atol=1e-5)
    np.testing.assert_allclose(a.init_logits, b.init_logits, atol=1e-5)


@pytest.mark.slow
def test_default_config_end_to_end():
    """The defaults (second-order hypergradient, 64 users): adapted beats PERM's fixed reward."""
    cfg = UserWeightsConfig(enabled=True)
    result = meta_learn_user_weights(cfg, synthetic_user_pairs(cfg))
    m = result.metrics
    assert (
        m["user_weights/adapted_minus_harmonic"] > 3 * m["user_weights/adapted_minus_harmonic_se"]
    )
    assert m["user_weights/acc/adapted"] > m["user_weights/acc/init"] > 0.5


@pytest.mark.slow
def test_jsonl_pairs_end_to_end():
    cfg = UserWeightsConfig(enabled=True, source="jsonl", path=FIXTURE, meta_steps=5)
    result = meta_learn_user_weights(cfg, read_user_pairs(FIXTURE, cfg))
    assert result.weights.shape == (3, 4) and result.users == ("7", "alice", "bob")
    assert "user_weights/far_acc/adapted" not in result.metrics  # no hidden weights
    assert np.isfinite(result.metrics["user_weights/acc/adapted"])


@pytest.mark.slow
def test_all_tie_user_keeps_the_hypergradient_finite():
    """A user whose support pairs all tie has an exactly-zero inner gradient: reverse mode through
    Adam's sqrt is NaN there unless inner.eps_root > 0 (the default)."""
    cfg = UserWeightsConfig(
        enabled=True, num_users=8, pairs_per_user=8, meta_steps=10, tasks_per_batch=0
    )
    pairs = synthetic_user_pairs(cfg)
    chosen = pairs.chosen.copy()
    chosen[0] = pairs.rejected[0]
    pairs = dataclasses.replace(pairs, chosen=chosen)
    result = meta_learn_user_weights(cfg, pairs)
    assert np.all(np.isfinite(result.meta_losses)) and result.accuracy["adapted"][0] == 0.5
    no_root = dataclasses.replace(cfg, inner=dataclasses.replace(cfg.inner, eps_root=0.0))
    with pytest.raises(FloatingPointError, match="eps_root"):
        meta_learn_user_weights(no_root, pairs)
