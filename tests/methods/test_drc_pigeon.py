"""Pigeon baseline pieces: Gumbel top-k with straight-through (exactly k ones forward, non-zero
gradient, deterministic per key), the masked softmax and sinusoidal table against NumPy, the
mutual masks' budgets, SFT gradients, and DPO = log 2 when the policy adapter equals the
reference adapter (the shared `dpo_loss`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmethods.methods.drc.image_lm import VisualVocab, visual_lm_config
from jaxmethods.methods.drc.pigeon import (
    PigeonConfig,
    PigeonModel,
    gumbel_topk_st,
    masked_softmax,
    sinusoidal_table,
)
from jaxmethods.methods.drc.pigeon_dpo import make_pigeon_dpo_loss_fn, split_pigeon_dpo
from jaxmethods.methods.drc.pigeon_train import (
    make_pigeon_sft_loss_fn,
    pigeon_generate,
    split_pigeon,
)
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.lora import apply_lora

RNG = np.random.default_rng(0)
PROB = RNG.random((4, 9)) + 0.05
VALID = np.array([[1] * 9, [1] * 5 + [0] * 4, [0, 1] * 4 + [0], [0] * 9], bool)
RATIOS = np.array([0.2, 0.5, 0.99, 0.3], np.float32)
COEF = RNG.normal(size=(4, 9))


@pytest.fixture(scope="module")
def topk():
    """Forward masks for two keys and d(sum COEF * mask)/d(keep_prob), one jitted program."""

    @jax.jit
    def run(prob, key):
        f = lambda p: gumbel_topk_st(p, VALID, RATIOS, key)
        out, vjp = jax.vjp(f, prob)
        return out, vjp(jnp.asarray(COEF, out.dtype))[0], masked_softmax(jnp.log(prob), VALID)

    k0, k1 = jax.random.key(0), jax.random.key(1)
    return [jax.tree.map(np.asarray, run(PROB, k)) for k in (k0, k0, k1)]


def check_gumbel_topk_keeps_exactly_k(topk):
    out, _, _ = topk[0]
    for row in range(4):
        n = int(VALID[row].sum())
        k = max(1, int(n * (1 - float(RATIOS[row])))) if n else 0
        fwd = out[row]
        np.testing.assert_allclose(fwd[VALID[row]].sum(), k, atol=1e-5)
        np.testing.assert_allclose(np.round(fwd), fwd, atol=1e-5)  # hard 0/1 values forward
        assert (fwd[~VALID[row]] == 0).all()


def check_gumbel_topk_gradient_and_determinism(topk):
    (out0, g0, _), (out0b, g0b, _), (out1, _, _) = topk
    assert np.abs(g0[VALID]).sum() > 0 and np.isfinite(g0).all()
    assert (g0[~VALID] == 0).all()
    np.testing.assert_array_equal(out0, out0b)
    np.testing.assert_array_equal(g0, g0b)
    assert not np.array_equal(out0, out1)  # another key, other draws


def check_masked_softmax_and_positions(topk):
    sm = topk[0][2]
    e = PROB * VALID  # exp(log p) = p
    with np.errstate(invalid="ignore"):
        want = e / e.sum(-1, keepdims=True)
    np.testing.assert_allclose(sm[:3], want[:3], rtol=1e-5)
    assert (sm[3] == 0).all()  # no valid position: zeros, not NaN
    pe = sinusoidal_table(257, 6)
    np.testing.assert_allclose(pe[0], [0, 1, 0, 1, 0, 1], atol=1e-7)
    np.testing.assert_allclose(pe[3, :2], [np.sin(3.0), np.cos(3.0)], rtol=1e-6)
    np.testing.assert_allclose(
        pe[3, 4:], [np.sin(3 / 10000 ** (4 / 6)), np.cos(3 / 10000 ** (4 / 6))], rtol=1e-5
    )


VOCAB = VisualVocab.tiny(codebook_size=12)
B, M, N = 2, 3, 4
HIST = RNG.integers(0, 12, (B, M, N)).astype(np.int32)
TGT, REJ = (RNG.integers(0, 12, (B, N)).astype(np.int32) for _ in range(2))


@pytest.fixture(scope="module")
def model():
    lm = DecoderLM(
        visual_lm_config(VOCAB, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1),
        nnx.Rngs(0),
    )
    apply_lora(lm, rank=2, alpha=4.0, dropout=0.0, target_modules=r"(q_proj|v_proj)$")
    # no dropout: every random-bit site costs seconds of XLA compile on CPU (threefry)
    cfg = PigeonConfig(num_history=M, ffn_dim=32, ref_hidden=8, drop_prob=0.0, encoder_dropout=0.0)
    return PigeonModel(lm, VOCAB, cfg, rngs=nnx.Rngs(1))


@pytest.fixture(scope="module")
def outs(model):
    """DPO (policy == reference, then a moved policy) and the mutual masks: one jitted program."""
    graphdef, params, frozen = split_pigeon(model)
    dgraph, policy, rest, ref = split_pigeon_dpo(model)
    dpo = make_pigeon_dpo_loss_fn(dgraph, beta=0.1)
    pairs = {"history": HIST, "reference": TGT, "chosen": TGT, "rejected": REJ}

    @jax.jit
    def run(params, frozen, policy, rest, ref):
        m = nnx.merge(graphdef, params, frozen)
        masks = m.keep_masks(HIST, TGT, 0.5, inference=False, gumbel_key=jax.random.key(2))
        return masks, dpo(policy, (rest, ref), pairs, jax.random.key(3))

    moved = jax.tree.map(lambda x: x + 0.5, policy)  # LoRA B != 0: the policy moved away
    return [
        jax.tree.map(np.asarray, run(params, frozen, pol, rest, ref)) for pol in (policy, moved)
    ]


def check_dpo_is_log2_when_policy_equals_reference(outs):
    dpo_same, dpo_moved = outs[0][1], outs[1][1]
    np.testing.assert_allclose(dpo_same[0], np.log(2.0), rtol=1e-6)
    assert dpo_same[1]["reward_margin"] == 0.0
    assert np.isfinite(dpo_moved[0]) and abs(dpo_moved[0] - np.log(2.0)) > 1e-4


def check_mutual_mask_budgets(outs):
    hist_keep, ref_keep = outs[0][0]
    # history: the top 80 % of all M N history tokens together; reference: keep 1 - 0.5
    np.testing.assert_allclose(hist_keep.reshape(B, -1).sum(-1), int(M * N * 0.8), atol=1e-5)
    np.testing.assert_allclose(ref_keep.sum(-1), max(1, int(N * 0.5)), atol=1e-5)


@pytest.mark.slow  # a fwd + bwd compile; B's demo run test trains Pigeon's SFT as well
def test_sft_gradients(model):
    graphdef, params, frozen = split_pigeon(model)
    sft = make_pigeon_sft_loss_fn(graphdef)
    batch = {"history": HIST, "target": TGT}
    (loss, _), g = jax.jit(jax.value_and_grad(sft, has_aux=True))(
        params, frozen, batch, jax.random.key(0)
    )
    assert np.isfinite(loss) and loss > 0
    assert set(g) == {"lm", "mask_generator", "adapter"}
    total = lambda t: sum(float(jnp.sum(jnp.abs(x))) for x in jax.tree.leaves(t))
    assert total(g["adapter"]) > 0
    assert total(g["mask_generator"]) > 0  # the straight-through masks carry gradient
    lora = g["lm"]["model"]["layers"][0]["self_attn"]
    assert total(lora["q_proj"]["lora_b"]) > 0 and total(lora["v_proj"]["lora_b"]) > 0


def check_generation_rejects_bad_reference(model):
    with pytest.raises(ValueError, match="reference: visual-token ids of sample 0"):
        pigeon_generate(model, HIST, -np.ones((B, N), np.int32))


@pytest.mark.slow  # compiles the decoding loop
def test_generation_gives_codes(model):
    codes = pigeon_generate(model, HIST, TGT, mask_ratio=0.3, seed=1)
    assert codes.shape == (B, N) and codes.min() >= 0 and codes.max() < 12


def test_pigeon_checks(model, outs, topk):
    """One test over the module's compiled programs (a second test would make the other
    pytest-xdist worker compile them again)."""
    check_gumbel_topk_keeps_exactly_k(topk)
    check_gumbel_topk_gradient_and_determinism(topk)
    check_masked_softmax_and_positions(topk)
    check_dpo_is_log2_when_policy_equals_reference(outs)
    check_mutual_mask_budgets(outs)
    check_generation_rejects_bad_reference(model)
