"""DEP's model side: soft-token injection, the adapter against NumPy, the loss, and a `fit` step
that moves only the adapter (the frozen bf16 LLM sharded over a 2 x 2 mesh stays bit-identical).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy.special import erf

from jaxmethods.methods.dep.model import DEPAdapterConfig, DEPModel, inject_soft_tokens
from jaxmethods.methods.dep.model_train import dep_generate, make_dep_loss_fn, split_dep
from jaxmethods.models.decoder import DecoderConfig, DecoderLM
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train.mesh import make_mesh
from jaxmethods.train.optim import OptimConfig
from jaxmethods.train.sharding import path_str
from jaxmethods.train.trainer import LoopConfig, fit

V, H, E, D, T = 64, 32, 24, 16, 40
HIS, DIFF = tuple(range(40, 48)), tuple(range(48, 56))
ADAPTER = DEPAdapterConfig(embed_size=E, code_size=D)


def tiny_lm(dtype: str = "float32") -> DecoderLM:
    cfg = DecoderConfig(
        vocab_size=V, hidden_size=H, intermediate_size=64, num_layers=2, num_heads=4,
        num_kv_heads=2, head_dim=8, scan_layers=False, dtype=dtype, param_dtype=dtype,
    )  # fmt: skip
    return DecoderLM(cfg, rngs=nnx.Rngs(0))  # unscanned: its train step compiles ~25% faster


def make_batch(b: int, seed: int = 0) -> dict:
    """Left-padded prompts holding the 16 placeholders (once each), a target and labels."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 40, (b, T)).astype(np.int32)
    mask = np.ones((b, T), np.int32)
    labels = np.full((b, T), -100, np.int32)
    for r in range(b):
        ids[r, 4 + r : 20 + r] = np.array(HIS + DIFF)[rng.permutation(16)]
        labels[r, 30:] = ids[r, 30:]
        mask[r, :r] = 0
    emb = rng.normal(scale=0.3, size=(b, 16, E)).astype(np.float32)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "his_diff_emb": emb}


@pytest.fixture(scope="module")
def model():
    return DEPModel(tiny_lm(), HIS, DIFF, ADAPTER, rngs=nnx.Rngs(1))


def np_gelu(x):
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def np_adapter(model: DEPModel, x: np.ndarray):
    """The authors' SAE + alignment MLPs in NumPy float64: (soft [B,16,H], z, x_recon)."""
    a = model.adapter
    w = lambda d: (np.asarray(d.kernel[...], np.float64), np.asarray(d.bias[...], np.float64))
    lin = lambda d, v: v @ w(d)[0] + w(d)[1]
    z = np_gelu(lin(a.encoder, x.astype(np.float64)))
    x_rec = np_gelu(lin(a.decoder, z))
    mlp = lambda m, v: lin(m.fc2, np_gelu(lin(m.fc1, v)))
    return np.concatenate([mlp(a.align_his, z[:, :8]), mlp(a.align_diff, z[:, 8:])], 1), z, x_rec


@functools.lru_cache
def _jitted(graphdef):
    @jax.jit
    def run(state, ids, mask, emb):
        m = nnx.merge(graphdef, state)
        embeds, _, _ = m.input_embeddings(ids, emb)
        return embeds, m(ids, mask, emb)

    return run


def test_only_placeholders_change_and_hold_the_adapter_output(model):
    batch = make_batch(4)  # B = 4 throughout: one compile of `_jitted` serves two tests
    graphdef, state = nnx.split(model)
    embeds, _ = _jitted(graphdef)(state, batch["input_ids"], batch["attention_mask"],
                                  batch["his_diff_emb"])  # fmt: skip
    embeds = np.asarray(embeds)
    base = np.asarray(model.lm.embed(jnp.asarray(batch["input_ids"])))
    changed = np.any(embeds != base, axis=-1)
    placeholder = np.isin(batch["input_ids"], HIS + DIFF)
    np.testing.assert_array_equal(changed, placeholder)
    assert placeholder.sum(1).tolist() == [16] * 4
    soft, _, _ = np_adapter(model, batch["his_diff_emb"])
    order = {t: k for k, t in enumerate(HIS + DIFF)}
    for r, c in zip(*np.nonzero(placeholder)):
        np.testing.assert_allclose(
            embeds[r, c], soft[r, order[batch["input_ids"][r, c]]], 1e-4, 1e-6
        )


def test_placeholder_embeddings_as_soft_tokens_give_the_base_logits(model):
    batch = make_batch(2)
    ids, mask = jnp.asarray(batch["input_ids"]), jnp.asarray(batch["attention_mask"])
    graphdef, state = nnx.split(model.lm)

    @jax.jit
    def both(state):
        lm = nnx.merge(graphdef, state)
        own = lm.embed(jnp.asarray([HIS + DIFF]))  # [1, 16, H]: the placeholders' own rows
        soft = jnp.broadcast_to(own, (2, 16, H))
        injected = inject_soft_tokens(lm.embed(ids), ids, soft, HIS + DIFF)
        return lm(None, mask, inputs_embeds=injected), lm(ids, mask)

    got, base = both(state)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(base))


def test_bad_placeholders_and_shapes_are_errors(model):
    with pytest.raises(ValueError, match="distinct"):
        DEPModel(tiny_lm(), (*HIS[:7], 70), DIFF, ADAPTER)
    with pytest.raises(ValueError, match="8 history"):
        DEPModel(tiny_lm(), HIS[:7], DIFF, ADAPTER)
    with pytest.raises(ValueError, match="his_diff_emb must be"):
        model.adapter(jnp.zeros((1, 16, E + 1)))


@pytest.mark.parametrize("dtype", ["float32", pytest.param("bfloat16", marks=pytest.mark.slow)])
def test_fit_step_moves_only_the_adapter_of_a_sharded_llm(model, dtype, tmp_path):
    """The loss equals the NumPy objective; after one step the LLM (sharded over a 2 x 2 mesh,
    bf16 in the slow variant) is bit-identical, every adapter tensor moved, and the optimizer
    state holds only the adapter's moments."""
    if dtype != "float32":
        model = DEPModel(tiny_lm(dtype), HIS, DIFF, ADAPTER, rngs=nnx.Rngs(1))
    graphdef, params, frozen = split_dep(model)
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype("float32")}
    assert {x.dtype for x in jax.tree.leaves(frozen)} == {jnp.dtype(dtype)}
    paths = {path_str(p) for p, _ in jax.tree.leaves_with_path(params)}
    assert all(p.startswith("adapter/") for p in paths) and len(paths) == 12
    n_train = sum(x.size for x in jax.tree.leaves(params))
    assert n_train == (E * D + D) + (D * E + E) + 2 * (D * H + H + H * H + H)
    before = jax.tree.map(np.asarray, (params, frozen))

    batch = make_batch(4)  # sharded over data x fsdp = 4
    result = fit(
        params=jax.tree.map(jnp.copy, params),  # the state is donated; `model` is shared
        optim=OptimConfig(lr=1e-3, weight_decay=0.0), num_steps=1,
        batches=iter([batch]), mesh=make_mesh({"data": 2, "fsdp": 2, "tensor": 1}),
        workdir=str(tmp_path), loss_fn=make_dep_loss_fn(graphdef), constants=frozen,
        rules=(), constants_rules=DECODER_SHARDING_RULES,
        loop=LoopConfig(checkpoint_every=0, progress=False),
    )  # fmt: skip
    after = jax.tree.map(np.asarray, result.state.params)
    for b, a in zip(jax.tree.leaves(before[0]), jax.tree.leaves(after)):
        assert np.abs(a - b).max() > 0  # no weight decay: moved = received a gradient
    for b, a in zip(jax.tree.leaves(before[1]), jax.tree.leaves(jax.tree.map(np.asarray, frozen))):
        np.testing.assert_array_equal(a, b)
    opt_sizes = [x.size for x in jax.tree.leaves(result.state.opt_state)]
    assert sum(opt_sizes) <= 2 * n_train + 8  # Adam's mu and nu + counters: no LLM state
    assert sum(opt_sizes) >= 2 * n_train

    # The first step's loss against NumPy, from the model's own logits.
    _, logits = _jitted(nnx.graphdef(model))(
        nnx.state(model), batch["input_ids"], batch["attention_mask"], batch["his_diff_emb"]
    )
    logits = np.asarray(logits, np.float64)[:, :-1]
    tgt = batch["labels"][:, 1:]
    keep = tgt != -100
    lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    ce = lse - np.take_along_axis(logits, np.where(keep, tgt, 0)[..., None], -1)[..., 0]
    lm = ce[keep].mean()
    _, z, x_rec = np_adapter(model, batch["his_diff_emb"])
    d = np.abs(batch["his_diff_emb"] - x_rec)
    recon = np.mean(np.where(d < 1, 0.5 * d**2, d - 0.5))
    rho_hat = np.clip(z.mean(1), 1e-6, 1 - 1e-6)
    kl = np.mean(0.05 * np.log(0.05 / rho_hat) + 0.95 * np.log(0.95 / (1 - rho_hat)))
    m, tol = result.last_metrics, 1e-5 if dtype == "float32" else 2e-3
    np.testing.assert_allclose([m["lm"], m["recon"], m["kl"]], [lm, recon, kl], rtol=tol)
    np.testing.assert_allclose(m["loss"], lm + 100 * (recon + 1e-3 * kl), rtol=tol)


@pytest.mark.slow
def test_dep_generate_per_request_seeds(model):
    batch = make_batch(4)
    kw = dict(max_new_tokens=3, seeds=[5, 6, 7, 8])
    args = (model, batch["input_ids"], batch["attention_mask"], batch["his_diff_emb"])
    a, b = dep_generate(*args, **kw), dep_generate(*args, **kw)
    np.testing.assert_array_equal(np.asarray(a.sequences), np.asarray(b.sequences))
    with pytest.raises(ValueError, match="seeds"):
        dep_generate(*args, max_new_tokens=3)
