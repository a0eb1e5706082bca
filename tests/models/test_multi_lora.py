"""Several LoRA adapters on one base: each adapter's forward equals the base with its NumPy-merged
weights, switching adapters reuses one compiled program, training one adapter (AdamW with weight
decay, through the shared train step) leaves every other adapter and the base bit-identical, and
the optimizer state covers only the trained adapter at its own rank.

One 2-layer hidden-32 decoder with four adapters is shared (module scope) to keep compiles few.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmethods.models.causal_lm import causal_lm_loss
from jaxmethods.models.decoder import DecoderConfig, DecoderLM
from jaxmethods.models.multi_lora import apply_multi_lora
from jaxmethods.train import make_mesh
from jaxmethods.train.optim import OptimConfig, make_optimizer
from jaxmethods.train.trainer import compile_step, create_state

ALL = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
NAMES = ("summarizer", "reasoner", "predictor", "reward")
RANKS = (4, 4, 2, 3)
ALPHAS = (8.0, 4.0, 4.0, 1.5)
HEADS = ("predictor", "reward")
RNG = np.random.RandomState(0)
IDS = jnp.asarray(RNG.randint(3, 64, size=(4, 6)), jnp.int32)
MASK = jnp.asarray(np.r_[np.zeros((1, 6)), np.ones((3, 6))].astype(np.int32)).at[0, 2:].set(1)


def _config(**kw) -> DecoderConfig:
    return DecoderConfig.tiny(vocab_size=64, initializer_range=0.2, **kw)


def _np_state(model: nnx.Module) -> dict[str, np.ndarray]:
    return {
        "/".join(map(str, k)): np.asarray(v[...]) for k, v in nnx.to_flat_state(nnx.state(model))
    }


@pytest.fixture(scope="module")
def setup():
    """(multi, base weights in NumPy, per-adapter NumPy factors {path: (A [in,r], B [r,out])}
    and heads)."""
    model = DecoderLM(_config(), rngs=nnx.Rngs(0))
    base_np = _np_state(model)
    ml = apply_multi_lora(
        model, NAMES, rank=RANKS, alpha=ALPHAS, dropout=(0.0, 0.1, 0.0, 0.0),
        target_modules=ALL, head_trainable=HEADS,
    )  # fmt: skip
    # random adapters drawn in NumPy (exact rank: entries past each adapter's rank stay zero)
    keep = np.arange(max(RANKS)) < np.asarray(RANKS)[:, None]  # [N, r_max]

    def draw(path, x):
        v = 0.2 * RNG.randn(*x.shape).astype(np.float32)
        if "lora_a" in jax.tree_util.keystr(path):
            return v * keep.reshape(len(NAMES), *[1] * (x.ndim - 2), -1)
        return v * keep.reshape(len(NAMES), *[1] * (x.ndim - 3), -1, 1)

    lora = jax.tree_util.tree_map_with_path(draw, ml.bank.lora)
    draw_head = lambda x: jnp.asarray(0.2 * RNG.randn(*x.shape), x.dtype)
    heads = (ml.bank.heads[0], *[jax.tree.map(draw_head, h) for h in ml.bank.heads[1:]])
    ml.bank = dataclasses.replace(ml.bank, lora=jax.tree.map(jnp.asarray, lora), heads=heads)
    flat = {"/".join(map(str, k)): v[...] for k, v in nnx.to_flat_state(lora)}
    slots = np.asarray(ml.bank.head_slot)
    factors = {}
    for i, name in enumerate(NAMES):
        r = RANKS[i]
        mods = sorted({p.rsplit("/", 1)[0] for p in flat})
        pairs = {m: (flat[m + "/lora_a"][i][:, :r], flat[m + "/lora_b"][i][:r]) for m in mods}
        head = None
        if name in HEADS:
            (head,) = [np.asarray(v[...]) for _, v in nnx.to_flat_state(heads[slots[i]])]
        factors[name] = (pairs, head)
    return ml, base_np, factors


def _reference_inputs(ml, base_np, factors, name):
    """(bank, base) of the base with kernels W + (alpha / r) A B merged in NumPy, every LoRA
    factor zero and every head slot the adapter's head: run through the same program, only the
    NumPy merge can make it match the adapter."""
    i = NAMES.index(name)
    weights = dict(base_np)
    lora, head = factors[name]
    for module, (a, b) in lora.items():
        assert a.shape[-1] == RANKS[i]
        weights[module + "/kernel"] = base_np[module + "/kernel"] + ALPHAS[i] / RANKS[i] * a @ b
    if head is not None:
        weights["lm_head/kernel"] = head

    def load(state):
        flat = nnx.to_flat_state(state)
        return nnx.from_flat_state(
            [(k, v.replace(jnp.asarray(weights["/".join(map(str, k))]))) for k, v in flat]
        )

    heads = tuple(load(h) for h in ml.bank.heads)
    zeros = jax.tree.map(jnp.zeros_like, ml.bank.lora)
    return dataclasses.replace(ml.bank, lora=zeros, heads=heads), load(ml.base)


def test_every_adapter_matches_numpy_merge_with_one_compiled_program(setup):
    ml, base_np, factors = setup
    traces = []

    @jax.jit
    def logits(bank, base, index, ids, mask):
        traces.append(1)
        return ml.merge(bank, base, index)(ids, mask)

    outs = {}
    for name in NAMES:
        index = ml.index(name)
        outs[name] = np.asarray(logits(ml.bank, ml.base, index, IDS, MASK))
        want = logits(*_reference_inputs(ml, base_np, factors, name), index, IDS, MASK)
        np.testing.assert_allclose(outs[name], want, atol=1e-4, rtol=1e-4, err_msg=name)
    assert len(traces) == 1 and logits._cache_size() == 1, "switching adapters recompiled"
    assert min(np.abs(outs[a] - outs[b]).max() for a in NAMES for b in NAMES if a < b) > 1e-3

    # the train-time model (own rank 3, alpha/r unfolded, own head) computes the same logits
    @jax.jit
    def train_logits(params, constants, ids, mask):
        return ml.merge_trainable("reward", params, constants)(ids, mask)

    got = train_logits(ml.trainable("reward"), ml.constants("reward"), IDS, MASK)
    np.testing.assert_allclose(got, outs["reward"], atol=1e-5, rtol=1e-5)
    # the eager standalone model of an adapter has the same graphdef for every adapter
    assert len({nnx.graphdef(ml.model(n)) for n in NAMES}) == 1


def _bank_np(ml) -> dict:
    return jax.tree.map(lambda x: np.array(x), {"lora": ml.bank.lora, "heads": ml.bank.heads})


def test_training_one_adapter_leaves_the_others_bit_identical(setup):
    ml = setup[0]
    bank = ml.bank  # the fixture is shared: restore it so test order does not matter
    try:
        _train_one_adapter_and_check_the_others(ml)
    finally:
        ml.bank = bank


def _train_one_adapter_and_check_the_others(ml):
    name, k = "reward", NAMES.index("reward")
    before, base_before = _bank_np(ml), jax.tree.map(np.array, ml.base)
    mesh = make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    optim = OptimConfig(lr=1e-2, weight_decay=0.5, warmup_steps=0, max_grad_norm=0.0)
    tx = make_optimizer(optim, total_steps=3)
    params = ml.trainable(name)
    state, shardings = create_state(params, tx, mesh)
    constants = ml.constants(name)

    def loss_fn(params, constants, batch, rng):
        model = ml.merge_trainable(name, params, constants)
        loss, tokens = causal_lm_loss(model, batch, dropout_rng=rng)
        return loss, {"tokens": tokens.astype(jnp.float32)}

    step = compile_step(tx, mesh, shardings, loss_fn=loss_fn)
    batch = {"input_ids": IDS, "attention_mask": MASK, "labels": jnp.where(MASK > 0, IDS, -100)}
    for _ in range(3):
        state, metrics = step(state, constants, batch)
    assert int(state.step) == 3 and float(metrics["finite"]) == 1.0
    # optimizer moments exist only for this adapter's parameters, at its own rank (3, not 4)
    param_shapes = sorted(x.shape for x in jax.tree.leaves(params))
    moment_shapes = sorted(x.shape for x in jax.tree.leaves(state.opt_state) if x.ndim >= 1)
    assert moment_shapes == sorted(param_shapes * 2)
    assert all(
        x.shape[-1] == 3 or x.shape[-2] == 3 or x.shape == (32, 64) for x in jax.tree.leaves(params)
    )

    with pytest.raises(ValueError, match="do not match trainable"):
        ml.insert("predictor", state.params)  # rank-3 factors into the rank-2 adapter
    with pytest.raises(KeyError, match="no adapter 'nope'"):
        ml.index("nope")
    ml.insert(name, state.params)
    after = _bank_np(ml)
    flat_before, flat_after = jax.tree.leaves(before["lora"]), jax.tree.leaves(after["lora"])
    for i, other in enumerate(NAMES):
        same = all(np.array_equal(a[i], b[i]) for a, b in zip(flat_before, flat_after))
        assert same == (other != name), other
    slot = int(np.asarray(ml.bank.head_slot)[k])
    for s, (h0, h1) in enumerate(zip(before["heads"], after["heads"])):
        same = all(jax.tree.leaves(jax.tree.map(np.array_equal, h0, h1)))
        assert same == (s != slot), s
    assert all(
        jax.tree.leaves(jax.tree.map(np.array_equal, base_before, jax.tree.map(np.array, ml.base)))
    )
    # the padded rank entries (3 of r_max 4) stay exactly zero: the adapter is exactly rank 3
    for path, x in jax.tree_util.tree_flatten_with_path(after["lora"])[0]:
        pad = x[k, ..., 3:] if "lora_a" in jax.tree_util.keystr(path) else x[k, ..., 3:, :]
        assert not pad.any(), jax.tree_util.keystr(path)


def test_errors_name_the_problem():
    tied = DecoderLM(_config(tie_word_embeddings=True), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="untied lm_head"):
        apply_multi_lora(tied, ("a", "b"), 2, 4.0, head_trainable=("a",))
    with pytest.raises(ValueError, match="unique"):
        apply_multi_lora(tied, ("a", "a"), 2, 4.0)
    with pytest.raises(ValueError, match="rank has 3 values for 2 adapters"):
        apply_multi_lora(tied, ("a", "b"), (2, 2, 2), 4.0)
    with pytest.raises(ValueError, match="not in"):
        apply_multi_lora(tied, ("a", "b"), 2, 4.0, head_trainable=("c",))


def test_shardings_give_each_stacked_factor_its_module_spec_behind_the_adapter_axis(setup):
    from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES

    ml = setup[0]
    bank, base = ml.shardings(
        make_mesh({"data": 1, "fsdp": 2, "tensor": 2}), DECODER_SHARDING_RULES
    )
    layer = bank.lora["model"]["layers"][0]
    spec = lambda s: tuple(s.spec)
    assert spec(layer["self_attn"]["q_proj"]["lora_a"]) == (None, "fsdp", None)
    assert spec(layer["self_attn"]["q_proj"]["lora_b"]) == (None, None, "tensor")
    assert spec(layer["mlp"]["down_proj"]["lora_a"]) == (None, "tensor", None)
    assert spec(bank.heads[1]["lm_head"]["kernel"]) == ("fsdp", "tensor")
    assert tuple(bank.scale.spec) == () and tuple(bank.head_slot.spec) == ()
    assert spec(base["model"]["layers"][0]["self_attn"]["q_proj"]["kernel"]) == ("fsdp", "tensor")
    assert jax.tree.structure(bank) == jax.tree.structure(ml.bank)
