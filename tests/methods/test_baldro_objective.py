"""BalDRO objective glue on a tiny decoder against NumPy references of the authors' trainers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmethods.methods.baldro.assets import make_token_ce
from jaxmethods.methods.baldro.objective import ObjectiveConfig, objective
from jaxmethods.models.decoder import DecoderConfig, DecoderLM

V, T, B = 40, 10, 4
MODEL = DecoderLM(
    DecoderConfig.tiny(vocab_size=V, hidden_size=16, intermediate_size=32, num_layers=1),
    nnx.Rngs(0),
)
GRAPHDEF, PARAMS = nnx.split(MODEL, nnx.Param)
TOKEN_CE = jax.jit(make_token_ce(GRAPHDEF))  # the glue runs eagerly around it
LOGITS = jax.jit(lambda ids, mask: MODEL(ids, mask))


def _side(rng, n_valid=B):
    ids = rng.integers(3, V, (B, T)).astype(np.int32)
    mask = np.ones((B, T), np.int32)
    labels = ids.copy()
    for i in range(B):
        p = rng.integers(2, 5)  # prompt length
        labels[i, :p] = -100
        end = rng.integers(T - 2, T + 1)  # right padding
        mask[i, end:], labels[i, end:] = 0, -100
    valid = np.arange(B) < n_valid
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "row_valid": valid}


def _batch(seed=0, n_valid=B, ref_shift=0.0):
    rng = np.random.default_rng(seed)
    f, r = _side(rng, n_valid), _side(rng)
    f["ref_nll"] = (np_seq_nll(f)[0] + ref_shift).astype(np.float32)
    return {"forget": f, "retain": r}


def np_token_ce(side):
    """HF per-token CE of the model's logits (float64 NumPy), labels shifted by one."""
    lg = np.asarray(LOGITS(side["input_ids"], side["attention_mask"]), np.float64)[:, :-1]
    lab = side["labels"][:, 1:]
    m = (lab != -100) & side["row_valid"][:, None]
    lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
    ce = lse - np.take_along_axis(lg, np.where(lab < 0, 0, lab)[..., None], -1)[..., 0]
    return np.where(m, ce, 0.0), m


def np_seq_nll(side):
    ce, m = np_token_ce(side)
    return ce.sum(-1), m.sum(-1)


def np_log_sigmoid(x):
    return -np.logaddexp(0, -x)


def run(cfg, batch, frozen=None, seed=0):
    # Eager: each test config would otherwise compile its own program (slow on 2 cores).
    return objective(
        cfg, TOKEN_CE, PARAMS, frozen, jax.tree.map(jnp.asarray, batch), jax.random.key(seed)
    )


def np_dv(x, beta):
    return -beta * np.log(np.mean(np.exp(-np.asarray(x) / beta)))


def test_npo_plain_and_dv_match_reference():
    batch = _batch(ref_shift=-2.0)
    f, r = batch["forget"], batch["retain"]
    nll, _ = np_seq_nll(f)
    ell = -(2 / 0.1) * np_log_sigmoid(-0.1 * (f["ref_nll"] - nll))
    rce, rm = np_token_ce(r)
    token_mean = rce.sum() / rm.sum()
    loss, m = run(ObjectiveConfig(loss="npo"), batch)
    np.testing.assert_allclose(loss, ell.mean() + token_mean, rtol=1e-4)
    np.testing.assert_allclose(m["retain_loss"], token_mean, rtol=1e-4)
    # DrNPO: DV forget aggregate and the per-sequence-sum retain mean (the authors' quirk)
    loss, m = run(ObjectiveConfig(loss="npo", variant="dv", beta_dv=2.0), batch)
    np.testing.assert_allclose(m["forget_loss"], np_dv(ell, 2.0), rtol=1e-4)
    np.testing.assert_allclose(m["retain_loss"], rce.sum(-1).mean(), rtol=1e-4)
    cfg = ObjectiveConfig(loss="npo", variant="dv", retain_reduction="token_mean")
    np.testing.assert_allclose(run(cfg, batch)[1]["retain_loss"], token_mean, rtol=1e-4)


def test_npo_at_reference_is_2log2_over_beta_and_frozen_matches_precomputed():
    batch = _batch()
    loss_p, m = run(ObjectiveConfig(loss="npo", alpha=0.0), batch)
    np.testing.assert_allclose(m["forget_loss"], 2 / 0.1 * np.log(2), rtol=1e-5)
    cfg = ObjectiveConfig(loss="npo", alpha=0.0, reference="frozen")
    loss_f, _ = run(cfg, batch, frozen=PARAMS)
    np.testing.assert_allclose(loss_f, loss_p, rtol=1e-5)


def test_simnpo_and_satimp_match_reference():
    batch = _batch(seed=1)
    f, r = batch["forget"], batch["retain"]
    nll, n = np_seq_nll(f)
    ell = -(2 / 4.5) * np_log_sigmoid(4.5 * (nll / n - 0.5))
    rce, rm = np_token_ce(r)
    cfg = ObjectiveConfig(loss="simnpo", beta=4.5, delta=0.5, gamma=0.125)
    loss, _ = run(cfg, batch)
    np.testing.assert_allclose(loss, 0.125 * ell.mean() + rce.sum() / rm.sum(), rtol=1e-4)
    # DrSimNPO keeps the token-mean retain loss
    _, m = run(ObjectiveConfig(loss="simnpo", beta=4.5, variant="dv"), batch)
    np.testing.assert_allclose(m["retain_loss"], rce.sum() / rm.sum(), rtol=1e-4)
    fce, fm = np_token_ce(f)
    p = np.exp(-fce)
    tok = np.where(fm, -(p**5) * (1 - p) * fce, 0.0)
    _, m = run(ObjectiveConfig(loss="satimp", gamma=0.1), batch)
    np.testing.assert_allclose(m["forget_loss"], tok.sum() / fm.sum(), rtol=1e-4)
    _, m = run(ObjectiveConfig(loss="satimp", variant="dv", beta_dv=1.0), batch)
    np.testing.assert_allclose(m["forget_loss"], np_dv(tok[fm], 1.0), rtol=1e-4)
    np.testing.assert_allclose(m["retain_loss"], rce.sum(-1).mean(), rtol=1e-4)


@pytest.mark.slow  # > 20 s on 2 cores
def test_group_variant_selects_lowest_nll_and_matches_subset_loss():
    batch = _batch(seed=2, ref_shift=-1.0)
    f = batch["forget"]
    nll, n = np_seq_nll(f)
    chosen = np.sort(np.argsort(nll / n)[:2])  # k = max(1, int(4 * 0.5)) lowest avg NLL
    ell = -(2 / 0.1) * np_log_sigmoid(-0.1 * (f["ref_nll"] - nll))
    cfg = ObjectiveConfig(loss="npo", variant="group", alpha=0.0)
    _, m = run(cfg, batch)
    np.testing.assert_allclose(m["forget_loss"], ell[chosen].mean(), rtol=1e-4)
    np.testing.assert_allclose(m["selected_fraction"], 0.5)
    # the gradient equals the plain loss's gradient on the selected rows only
    sub = jax.tree.map(lambda x: x[chosen], batch)
    grad_g = jax.grad(lambda p: objective(cfg, TOKEN_CE, p, None, batch, jax.random.key(0))[0])
    grad_s = jax.grad(
        lambda p: objective(ObjectiveConfig(alpha=0.0), TOKEN_CE, p, None, sub, jax.random.key(0))[
            0
        ]
    )
    ga, gs = jax.tree.leaves(grad_g(PARAMS)), jax.tree.leaves(grad_s(PARAMS))
    for a, s in zip(ga, gs):
        np.testing.assert_allclose(a, s, rtol=1e-4, atol=1e-6)


def test_group_retain_subset_is_k_rows():
    batch = _batch(seed=3)
    r = batch["retain"]
    rce, rm = np_token_ce(r)
    cfg = ObjectiveConfig(loss="npo", variant="group", gamma=0.0)
    _, m = run(cfg, batch, seed=5)
    pairs = [(i, j) for i in range(B) for j in range(i + 1, B)]
    candidates = [(rce[[i, j]].sum() / rm[[i, j]].sum()) for i, j in pairs]
    assert np.min(np.abs(np.asarray(candidates) - float(m["retain_loss"]))) < 1e-4


@pytest.mark.slow  # > 15 s on 2 cores
def test_groups_average_per_group_losses():
    batch = _batch(seed=4, ref_shift=-3.0)
    cfg = ObjectiveConfig(loss="npo", variant="dv", beta_dv=0.5, groups=2)
    loss, _ = run(cfg, batch)
    halves = [jax.tree.map(lambda x, s=s: x[s], batch) for s in (slice(0, 2), slice(2, 4))]
    one = ObjectiveConfig(loss="npo", variant="dv", beta_dv=0.5)
    want = np.mean([float(run(one, h)[0]) for h in halves])
    np.testing.assert_allclose(loss, want, rtol=1e-5)


def _padded_and_trimmed():
    # A short micro-batch at an epoch's end: rows 3 of both sides are padding (-1 indices).
    batch = _batch(seed=5, n_valid=3, ref_shift=-1.0)
    batch["retain"]["row_valid"][3:] = False
    return batch, jax.tree.map(lambda x: x[:3], batch)


def test_padding_rows_equal_trimming():
    batch, trimmed = _padded_and_trimmed()
    (padded, m_pad), (short, m_short) = (
        run(ObjectiveConfig(loss="npo"), batch),
        run(ObjectiveConfig(loss="npo"), trimmed),
    )
    np.testing.assert_allclose(padded, short, rtol=1e-6)
    for k in ("forget_loss", "retain_loss", "forget_avg_nll"):
        np.testing.assert_allclose(m_pad[k], m_short[k], rtol=1e-6)
    # no valid row at all: every term is 0 and finite
    empty = _batch(seed=5, n_valid=0)
    empty["retain"]["row_valid"][:] = False
    loss, m = run(ObjectiveConfig(loss="npo", variant="dv"), empty)
    assert float(loss) == 0.0 and all(np.isfinite(float(v)) for v in m.values())


@pytest.mark.slow  # nine eager objective runs: > 30 s on 2 cores
def test_padding_rows_equal_trimming_and_empty_micro_batch_every_variant():
    batch, trimmed = _padded_and_trimmed()
    for variant in ("plain", "dv"):
        cfg = ObjectiveConfig(loss="npo", variant=variant)
        (padded, m_pad), (short, m_short) = run(cfg, batch), run(cfg, trimmed)
        np.testing.assert_allclose(padded, short, rtol=1e-6)
        for k in ("forget_loss", "retain_loss", "forget_avg_nll"):
            np.testing.assert_allclose(m_pad[k], m_short[k], rtol=1e-6)
    # G keeps k = max(1, int(3 * 0.5)) = 1 of the 3 valid rows, as on the short batch itself.
    cfg = ObjectiveConfig(loss="npo", variant="group", alpha=0.0)
    np.testing.assert_allclose(run(cfg, batch)[1]["forget_loss"],
                               run(cfg, trimmed)[1]["forget_loss"], rtol=1e-6)  # fmt: skip
    # no valid row at all: every term is 0 and finite
    empty = _batch(seed=5, n_valid=0)
    empty["retain"]["row_valid"][:] = False
    for variant in ("plain", "group", "dv"):
        loss, m = run(ObjectiveConfig(loss="npo", variant=variant), empty)
        assert float(loss) == 0.0 and all(np.isfinite(float(v)) for v in m.values())


def test_config_validation():
    with pytest.raises(ValueError, match=r"unlearn\.loss"):
        ObjectiveConfig(loss="dpo")
    with pytest.raises(ValueError, match="needs loss npo"):
        ObjectiveConfig(loss="graddiff", variant="dv")
    with pytest.raises(ValueError, match="dv_sign"):
        ObjectiveConfig(dv_sign=0)
    assert ObjectiveConfig(loss="npo", variant="dv").retain_mode == "sequence_sum_mean"
    assert ObjectiveConfig(loss="simnpo", variant="dv").retain_mode == "token_mean"
    assert ObjectiveConfig(loss="satimp", variant="group").retain_mode == "token_mean"


def test_ga_and_graddiff():
    batch = _batch(seed=6)
    fce, fm = np_token_ce(batch["forget"])
    rce, rm = np_token_ce(batch["retain"])
    loss, _ = run(ObjectiveConfig(loss="ga"), batch)
    np.testing.assert_allclose(loss, -fce.sum() / fm.sum(), rtol=1e-4)
    loss, _ = run(ObjectiveConfig(loss="graddiff", alpha=2.0), batch)
    np.testing.assert_allclose(loss, -fce.sum() / fm.sum() + 2 * rce.sum() / rm.sum(), rtol=1e-4)
