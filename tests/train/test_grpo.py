"""`jaxmethods.train.grpo_loss`: the GRPO update on one fixed batch against jax.grad of a
hand-written surrogate on log-probs taken from the model's full logits (another code path than
the trainer's completion-only LM head); the DAPO normaliser across gradient-accumulation
micro-batches of unequal token counts; ratio 1 and beta 0 giving -Σ A ∇log p / N; zero KL and
an unchanged gradient when reference = policy; the three normalisations against NumPy."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmethods.models import DecoderConfig, DecoderLM
from jaxmethods.train.grpo import GRPOConfig
from jaxmethods.train.grpo_loss import make_grpo_loss_fn

V, B, P, C = 24, 4, 3, 5
EPS_LO, EPS_HI = 0.2, 0.28


@pytest.fixture(scope="module")
def setup():
    cfg = DecoderConfig.tiny(vocab_size=V, hidden_size=16, intermediate_size=32, num_layers=1,
                             num_heads=2, num_kv_heads=1, head_dim=8)  # fmt: skip
    graphdef, params, rest = nnx.split(DecoderLM(cfg, rngs=nnx.Rngs(0)), nnx.Param, ...)
    rng = np.random.default_rng(0)
    ids = rng.integers(3, V, (B, P + C)).astype(np.int32)
    amask = np.ones((B, P + C), np.int32)
    amask[0, :2] = 0  # left padding of row 0's prompt
    lengths = np.array([5, 2, 4, 1])  # micro-batches [0:2] / [2:4] hold 7 and 5 tokens
    cmask = (np.arange(C)[None] < lengths[:, None]).astype(np.int32)
    amask[:, P:] = cmask
    adv = np.array([1.3, -0.7, 0.4, -1.0], np.float32)
    batch = {
        "input_ids": ids, "attention_mask": amask, "completion_mask": cmask,
        "advantages": adv, "num_tokens": np.full((B,), cmask.sum(), np.float32),
    }  # fmt: skip
    logp = np.asarray(indep_logp(graphdef, params, rest, batch))
    batch["old_logp"] = (logp + rng.normal(0, 0.3, logp.shape)).astype(np.float32) * cmask
    batch["ref_logp"] = (logp + rng.normal(0, 0.5, logp.shape)).astype(np.float32) * cmask
    return graphdef, params, rest, batch


@functools.partial(jax.jit, static_argnums=0)
def indep_logp(graphdef, params, rest, batch):
    """log p(completion token) from the full-sequence logits, gathered by hand: [B, C]."""
    logits = nnx.merge(graphdef, params, rest)(batch["input_ids"], batch["attention_mask"])
    logp_all = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)[:, P - 1 : P - 1 + C]
    tok = jnp.asarray(batch["input_ids"])[:, P:]
    return jnp.take_along_axis(logp_all, tok[..., None], -1)[..., 0] * batch["completion_mask"]


def hand_loss(params, graphdef, rest, batch, beta):
    """DAPO clipped surrogate + beta * k3, summed over active tokens / their count."""
    logp = indep_logp(graphdef, params, rest, batch)
    m = jnp.asarray(batch["completion_mask"], jnp.float32)
    a = jnp.asarray(batch["advantages"])[:, None]
    r = jnp.exp(logp - batch["old_logp"])
    surr = -jnp.minimum(r * a, jnp.clip(r, 1 - EPS_LO, 1 + EPS_HI) * a)
    d = batch["ref_logp"] - logp
    per = surr + beta * (jnp.exp(d) - d - 1)
    return jnp.sum(per * m) / jnp.sum(m)


def _tree_close(a, b, tol=2e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


def _grad(loss_fn, params, rest, batch):
    return jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
        params, rest, batch, jax.random.key(0)
    )


def _half(batch, i):
    return {k: v[2 * i : 2 * i + 2] for k, v in batch.items()}


def test_update_matches_hand_written_surrogate_with_accumulation(setup):
    graphdef, params, rest, batch = setup
    beta = 0.1
    kw = dict(eps_low=EPS_LO, eps_high=EPS_HI, norm="token", kl_coef=beta)
    want_l, want_g = jax.jit(jax.value_and_grad(hand_loss), static_argnums=(1, 4))(
        params, graphdef, rest, batch, beta
    )
    # Two micro-batches with 7 and 5 active tokens: averaged as make_train_step averages them,
    # they give the loss and gradient normalised by all 12 tokens, not a mean of two means.
    fn2 = make_grpo_loss_fn(graphdef, micro_batches=2, **kw)
    parts = [_grad(fn2, params, rest, _half(batch, i)) for i in range(2)]
    np.testing.assert_allclose(float(sum(p[0][0] for p in parts) / 2), float(want_l), rtol=1e-5)
    _tree_close(jax.tree.map(lambda a, b: (a + b) / 2, parts[0][1], parts[1][1]), want_g)
    # Metrics are token means over the whole batch: kl from the formula in NumPy.
    logp = np.asarray(indep_logp(graphdef, params, rest, batch), np.float64)
    d = batch["ref_logp"] - logp
    kl = (np.exp(d) - d - 1) * batch["completion_mask"]
    want_kl = kl.sum() / batch["completion_mask"].sum()
    np.testing.assert_allclose(float((parts[0][0][1]["kl"] + parts[1][0][1]["kl"]) / 2),
                               want_kl, rtol=1e-4)  # fmt: skip


def test_ratio_one_beta_zero_is_policy_gradient_and_reference_equal_policy_has_zero_kl(setup):
    graphdef, params, rest, batch = setup
    on_policy = {k: v for k, v in batch.items() if k not in ("old_logp", "ref_logp")}
    m = batch["completion_mask"].astype(np.float32)

    def pg(params):  # -Σ A ∇log p / N_tokens
        logp = indep_logp(graphdef, params, rest, on_policy)
        return -jnp.sum(batch["advantages"][:, None] * logp * m) / m.sum()

    want = jax.jit(jax.grad(pg))(params)
    fn = make_grpo_loss_fn(graphdef, micro_batches=1, kl_coef=0.0)
    (loss, metrics), grads = _grad(fn, params, rest, on_policy)
    _tree_close(grads, want)
    np.testing.assert_allclose(
        float(loss), -float(np.sum(batch["advantages"][:, None] * m) / m.sum()), rtol=1e-5
    )
    assert float(metrics["clip_frac"]) == 0.0 and abs(float(metrics["ratio_mean"]) - 1) < 1e-6
    # Reference = policy: KL 0 and the k3 term adds no gradient.
    logp = np.asarray(indep_logp(graphdef, params, rest, batch))
    with_ref = dict(on_policy, ref_logp=logp)
    fn_kl = make_grpo_loss_fn(graphdef, micro_batches=1, kl_coef=0.5)
    (_, m_kl), g_kl = _grad(fn_kl, params, rest, with_ref)
    assert abs(float(m_kl["kl"])) < 1e-6
    _tree_close(g_kl, want)


def test_sequence_and_dr_grpo_normalisations_match_numpy(setup):
    graphdef, params, rest, batch = setup
    no_ref = {k: v for k, v in batch.items() if k != "ref_logp"}
    logp = np.asarray(indep_logp(graphdef, params, rest, batch), np.float64)
    r = np.exp(logp - batch["old_logp"])
    a = batch["advantages"][:, None].astype(np.float64)
    per = -np.minimum(r * a, np.clip(r, 1 - EPS_LO, 1 + EPS_HI) * a) * batch["completion_mask"]
    want = {
        "sequence": np.mean(per.sum(1) / batch["completion_mask"].sum(1)),
        "dr_grpo": per.sum() / (B * 8),
    }
    for norm, value in want.items():
        fn = make_grpo_loss_fn(graphdef, micro_batches=1, eps_low=EPS_LO, eps_high=EPS_HI,
                               norm=norm, kl_coef=0.0, max_completion_length=8)  # fmt: skip
        loss, _ = jax.jit(fn)(params, rest, no_ref, None)
        np.testing.assert_allclose(float(loss), value, rtol=1e-5, err_msg=norm)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="loss_norm"):
        GRPOConfig(loss_norm="mean")
    with pytest.raises(ValueError, match="kl_coef"):
        GRPOConfig(reference="none", kl_coef=0.1)
    with pytest.raises(ValueError, match="group_size"):
        GRPOConfig(group_size=1)
