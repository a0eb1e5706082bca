"""DRCModel on a tiny decoder and random visual tokens: the composed and cross-composed losses
both reconstruct x_a (checked against a direct log-softmax transcription), gradients reach both
towers and the FusionNetwork (and nothing of the LM is trainable), importance weights enter the
objective, stage 2 ignores masked history images, and generation yields in-codebook codes.
Every model output comes from one jitted program (one compile)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmethods.methods.drc.fusion import FusionConfig
from jaxmethods.methods.drc.image_lm import VisualVocab, visual_lm_config
from jaxmethods.methods.drc.model import DRCConfig, DRCModel
from jaxmethods.methods.drc.model_train import (
    drc_generate,
    make_stage1_loss_fn,
    make_stage2_loss_fn,
    split_drc,
)
from jaxmethods.methods.drc.towers import TowerConfig
from jaxmethods.models.decoder import DecoderLM

VOCAB = VisualVocab.tiny(codebook_size=12)
B, N, M, K = 2, 4, 3, 2
CFG = DRCConfig(
    tower=TowerConfig(num_heads=2),
    fusion=FusionConfig(num_latents=K, num_heads=2),
    num_history=M,
    cross_weight=0.5,
)
RNG = np.random.default_rng(0)
A, S, MM, T = (RNG.integers(0, 12, (B, N)).astype(np.int32) for _ in range(4))
HIST = RNG.integers(0, 12, (B, M, N)).astype(np.int32)
HMASK = np.array([[True, True, False], [True, True, True]])
WEIGHT = np.array([2.0, 0.5], np.float32)


def direct_ce(lm: DecoderLM, latents, target):
    """Mean CE [R] of `<img> target <end>` after the K latents, by hand: the LM on the
    embeddings, log-softmax, the log-prob of token t + 1 at position t."""
    v, r = VOCAB, target.shape[0]
    ids = jnp.concatenate(
        [jnp.full((r, 1), v.img_id), target + v.visual_offset, jnp.full((r, 1), v.end_id)], 1
    )
    x = jnp.concatenate([latents, lm.embed(ids)], axis=1)
    logp = jax.nn.log_softmax(lm(None, inputs_embeds=x), axis=-1)  # [R, K + N + 2, V]
    nxt = ids[:, 1:]  # what positions K .. K + N must predict
    picked = jnp.take_along_axis(logp[:, K : K + N + 1], nxt[..., None], axis=-1)[..., 0]
    return -jnp.mean(picked, axis=-1)


@pytest.fixture(scope="module")
def model():
    lm = DecoderLM(
        visual_lm_config(VOCAB, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1),
        nnx.Rngs(0),
    )
    return DRCModel(lm, VOCAB, CFG, rngs=nnx.Rngs(1))


def _vary(i, j):
    h = HIST.copy()
    h[0, j] = (HIST[0, j] + 5) % 12
    return h if i else HIST


@pytest.fixture(scope="module")
def outs(model):
    """One jitted program: the stage-1 loss and its gradient, the hand-written CE of both
    routes' latents (one LM pass of 3B rows), and the stage-2 loss on three history variants
    (unchanged; row 0's masked image changed; row 0's first real image changed) in one pass."""
    graphdef, params, frozen = split_drc(model)
    loss1 = make_stage1_loss_fn(graphdef, CFG)
    loss2 = make_stage2_loss_fn(graphdef, CFG)
    b1 = {"anchor": A, "pos_style": S, "pos_sem": MM, "weight": WEIGHT}
    b2 = {
        "history": np.concatenate([HIST, _vary(1, 2), _vary(1, 0)]),
        "reference": np.tile(S, (3, 1)),
        "target": np.tile(T, (3, 1)),
        "history_mask": np.tile(HMASK, (3, 1)),
    }

    @jax.jit
    def run(params, frozen):
        m = nnx.merge(graphdef, params, frozen)
        (l1, m1), g1 = jax.value_and_grad(loss1, has_aux=True)(
            params, frozen, b1, jax.random.key(0)
        )
        cat = jnp.concatenate
        lat_c, lat_x = m.stage1_latents(
            cat([A, A]), cat([S, A]), cat([MM, A])
        )  # 2nd: x_s = x_m = x_a
        (lat_c, same_c), (lat_x, same_x) = jnp.split(lat_c, 2), jnp.split(lat_x, 2)
        ref = direct_ce(m.lm, jnp.concatenate([lat_c, lat_x, lat_x]), jnp.concatenate([A, A, S]))
        l2, m2 = loss2(params, frozen, b2, jax.random.key(1))
        norms = jax.tree.map(lambda x: jnp.sqrt(jnp.sum(x**2)), g1)
        return {
            "loss1": l1, "metrics1": m1, "g1": norms, "ref": ref.reshape(3, B),
            "same_c": same_c, "same_x": same_x, "loss2": l2, "ce2": m2["per_example_loss"].reshape(3, B),
        }  # fmt: skip

    return jax.tree.map(np.asarray, run(params, frozen))


def check_composed_and_cross_composed_both_reconstruct_the_anchor(outs):
    ref_c_a, ref_x_a, ref_x_s = outs["ref"]
    per = outs["metrics1"]["per_triplet_loss"]
    np.testing.assert_allclose(outs["metrics1"]["ce_composed"], ref_c_a.mean(), rtol=1e-5)
    np.testing.assert_allclose(outs["metrics1"]["ce_cross"], ref_x_a.mean(), rtol=1e-5)
    np.testing.assert_allclose(per, ref_c_a + 0.5 * ref_x_a, rtol=1e-5)
    assert not np.allclose(per, ref_c_a + 0.5 * ref_x_s, rtol=1e-3)  # the target is x_a, not x_s
    # routing: with x_s = x_m = x_a, compose (q = E_a) and cross-compose (q swapped) coincide
    np.testing.assert_allclose(outs["same_c"], outs["same_x"], atol=1e-6)


def check_weighted_objective(outs):
    per = outs["metrics1"]["per_triplet_loss"]
    np.testing.assert_allclose(outs["loss1"], np.mean(WEIGHT * per), rtol=1e-5)


def check_gradients_reach_both_towers_and_the_fusion_only(model, outs):
    g = outs["g1"]
    assert set(g) == {"towers", "fusion"}  # nothing of the LM is trainable
    for part in (g["towers"]["style"], g["towers"]["sem"], g["fusion"]):
        assert all(float(x) > 0 for x in jax.tree.leaves(part))
    _, params, frozen = split_drc(model)
    lm_leaves = jax.tree.leaves(nnx.state(model.lm, nnx.Param))
    assert len(jax.tree.leaves(frozen)) == len(lm_leaves)
    assert len(jax.tree.leaves(params)) == len(jax.tree.leaves(g))


def check_stage2_ignores_masked_history(outs):
    same, masked_changed, real_changed = outs["ce2"]
    assert np.isfinite(same).all()
    np.testing.assert_allclose(outs["loss2"], outs["ce2"].mean(), rtol=1e-6)
    np.testing.assert_allclose(masked_changed, same, rtol=1e-6)
    assert abs(real_changed[0] - same[0]) > 1e-5
    np.testing.assert_allclose(real_changed[1], same[1], rtol=1e-6)  # the other row


def check_generation_rejects_ids_outside_the_codebook(model):
    bad = HIST.copy()
    bad[1, 0, 2] = 12
    with pytest.raises(ValueError, match=r"history: visual-token ids of sample 1.*\[12\]"):
        drc_generate(model, bad, S)  # checked on the host, before anything is compiled
    with pytest.raises(ValueError, match=r"2 images per sample, DRCConfig\.num_history is 3"):
        model.stage2_latents(jnp.asarray(HIST[:, :2]), jnp.asarray(S))


@pytest.mark.slow  # compiles the decoding loop (~6 s of CPU); B's demo run test generates too
def test_generation_gives_codes(model):
    codes = drc_generate(model, HIST, S)
    assert codes.shape == (B, N) and codes.dtype == np.int32
    assert codes.min() >= 0 and codes.max() < VOCAB.codebook_size
    np.testing.assert_array_equal(drc_generate(model, HIST, S), codes)  # greedy: deterministic


def test_drc_model_checks(model, outs):
    """One test over the module's single compiled program (a second test would make the other
    pytest-xdist worker compile it again)."""
    check_composed_and_cross_composed_both_reconstruct_the_anchor(outs)
    check_weighted_objective(outs)
    check_gradients_reach_both_towers_and_the_fusion_only(model, outs)
    check_stage2_ignores_masked_history(outs)
    check_generation_rejects_ids_outside_the_codebook(model)
