"""`jaxmethods.train.dpo`: the pair batch, one concatenated forward pass, the three references
(frozen copy, LoRA base, cached) against a NumPy transcription of DPO over NumPy sequence
log-probs, log 2 at policy = reference, the gradient's direction, and a toy DPO run with the
shared trainer where the margin rises and the preference accuracy reaches 1."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from flax import nnx

from jaxmethods.models import DecoderConfig, DecoderLM, LoRAParam, apply_lora
from jaxmethods.train.dpo import (
    attach_reference_logprobs,
    gather_pairs,
    make_dpo_loss_fn,
    pair_logprobs,
    reference_constants,
)

V, L, BETA = 48, 10, 0.5


def _example(rng, prompt_len, resp_len):
    ids = rng.integers(3, V, size=prompt_len + resp_len).tolist()
    return {"input_ids": ids, "labels": [-100] * prompt_len + ids[prompt_len:]}


def _pairs(n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = 2 + i
        out.append({"chosen": _example(rng, p, 2 + i % 3), "rejected": _example(rng, p, 3)})
    return out


@functools.partial(jax.jit, static_argnums=0)
def _logits(graphdef, state, ids, mask):
    return nnx.merge(graphdef, state)(ids, mask)


@functools.partial(jax.jit, static_argnums=0)
def _pair_logprobs(graphdef, state, batch):
    return pair_logprobs(nnx.merge(graphdef, state), batch)


def jitted(fn, model, *args):
    return fn(*nnx.split(model), *args)


def np_seq_logp(model, side):
    """Sum of log p(label) over response positions, from the model's logits in NumPy."""
    logits = np.asarray(
        jitted(_logits, model, side["input_ids"], side["attention_mask"]), np.float64
    )
    logits -= logits.max(-1, keepdims=True)
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    labels = np.asarray(side["labels"])
    out = np.zeros(labels.shape[0])
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1] - 1):
            if labels[b, t + 1] != -100:
                out[b] += lp[b, t, labels[b, t + 1]]
    return out


def np_dpo(pc, pr, rc, rr, valid):
    z = BETA * ((pc - rc) - (pr - rr))
    losses = np.log1p(np.exp(-z))  # -log sigmoid(z)
    return losses[valid].mean(), (z[valid] > 0).mean(), z[valid].mean()


@pytest.fixture(scope="module")
def setup():
    model = DecoderLM(DecoderConfig.tiny(vocab_size=V, initializer_range=0.2), rngs=nnx.Rngs(0))
    pairs = _pairs()
    batch = gather_pairs(pairs, np.array([0, 1, 2, -1]), length=L, pad_id=0)
    return model, pairs, batch


def test_gather_pairs_keeps_sides_apart_and_marks_empty_rows(setup):
    _, pairs, batch = setup
    assert batch["chosen"]["input_ids"].shape == (4, L) == batch["rejected"]["labels"].shape
    np.testing.assert_array_equal(batch["pair_valid"], [True, True, True, False])
    n = len(pairs[1]["rejected"]["input_ids"])
    np.testing.assert_array_equal(
        batch["rejected"]["input_ids"][1, :n], pairs[1]["rejected"]["input_ids"]
    )
    assert batch["chosen"]["attention_mask"][3].sum() == 0 and "ref_chosen" not in batch


def test_sequence_logprob_sums_only_the_response_tokens(setup):
    model, _, batch = setup
    pc, pr, nc, _ = jitted(_pair_logprobs, model, batch)
    np.testing.assert_allclose(pc, np_seq_logp(model, batch["chosen"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pr, np_seq_logp(model, batch["rejected"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(nc[:3], [2, 3, 4])
    # Padding ids (mask 0, label -100) change nothing.
    noisy = jax.tree.map(np.copy, batch)
    pad = noisy["chosen"]["attention_mask"] == 0
    noisy["chosen"]["input_ids"][pad] = 7
    np.testing.assert_allclose(jitted(_pair_logprobs, model, noisy)[0], pc, rtol=1e-6, atol=1e-6)


@pytest.mark.slow  # > 10 s on 2 cores under make test; dpo_loss's invariants are in tests/losses/test_dpo.py
def test_frozen_reference_log2_numpy_and_gradient_direction(setup):
    model, _, batch = setup
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    loss_fn = make_dpo_loss_fn(graphdef, reference="model", beta=BETA)
    constants = reference_constants("model", rest, params)
    value_and_grad = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    (loss, m), grads = value_and_grad(params, constants, batch, None)
    assert float(loss) == pytest.approx(np.log(2.0), abs=1e-6)  # policy = reference
    assert float(m["rewards/margins"]) == pytest.approx(0.0, abs=1e-6) and float(m["pairs"]) == 3
    # A gradient step raises the chosen-minus-rejected margin and lowers the loss.
    stepped = jax.tree.map(lambda p, g: p - 0.5 * g, params, grads)
    (loss2, m2), _ = value_and_grad(stepped, constants, batch, None)
    assert float(m2["rewards/margins"]) > 0.0 and float(loss2) < float(loss)
    # Against NumPy: policy = stepped model, reference = the original model.
    policy = nnx.merge(graphdef, stepped, rest)
    pc, pr = np_seq_logp(policy, batch["chosen"]), np_seq_logp(policy, batch["rejected"])
    rc, rr = np_seq_logp(model, batch["chosen"]), np_seq_logp(model, batch["rejected"])
    want, acc, margin = np_dpo(pc, pr, rc, rr, batch["pair_valid"])
    assert float(loss2) == pytest.approx(want, rel=1e-4)
    assert float(m2["rewards/accuracies"]) == pytest.approx(acc)
    assert float(m2["rewards/margins"]) == pytest.approx(margin, rel=1e-4)


@pytest.mark.slow  # > 10 s on 2 cores
def test_cached_reference_equals_the_frozen_reference(setup):
    model, pairs, batch = setup
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    cached = attach_reference_logprobs(model, pairs, batch_size=2, length=L, pad_id=0)
    np.testing.assert_allclose([p["ref_chosen"] for p in cached],
                               np_seq_logp(model, batch["chosen"])[:3], rtol=1e-5)  # fmt: skip
    cbatch = gather_pairs(cached, np.array([0, 1, 2, -1]), length=L, pad_id=0)
    shift = jax.tree.map(lambda p: p * 1.1, params)  # any policy other than the reference
    a = jax.jit(make_dpo_loss_fn(graphdef, reference="model", beta=BETA))(
        shift, reference_constants("model", rest, params), batch, None
    )[0]
    b = jax.jit(make_dpo_loss_fn(graphdef, reference="cached", beta=BETA))(
        shift, rest, cbatch, None
    )[0]
    assert float(a) == pytest.approx(float(b), rel=1e-5)


@pytest.mark.slow  # > 8 s on 2 cores; lora_base_state itself is checked in tests/models/test_sequence_logprobs.py
def test_lora_base_reference_is_the_model_before_adapters(setup):
    base, _, batch = setup
    model = nnx.clone(base)
    apply_lora(model, 4, 8.0, target_modules=r"(q_proj|v_proj|down_proj)$", rngs=nnx.Rngs(3))
    graphdef, lora, rest = nnx.split(model, LoRAParam, ...)
    rng = np.random.default_rng(0)
    lora = jax.tree.map(lambda x: x + 0.3 * rng.standard_normal(x.shape).astype(x.dtype), lora)
    loss_fn = jax.jit(make_dpo_loss_fn(graphdef, reference="lora_base", beta=BETA))
    loss, m = loss_fn(lora, rest, batch, None)
    policy = nnx.merge(graphdef, lora, rest)
    pc, pr = np_seq_logp(policy, batch["chosen"]), np_seq_logp(policy, batch["rejected"])
    rc, rr = np_seq_logp(base, batch["chosen"]), np_seq_logp(base, batch["rejected"])
    want, _, margin = np_dpo(pc, pr, rc, rr, batch["pair_valid"])
    assert float(loss) == pytest.approx(want, rel=1e-4)
    assert float(m["rewards/margins"]) == pytest.approx(margin, rel=1e-4, abs=1e-6)
    with pytest.raises(ValueError, match="reference='base'"):
        make_dpo_loss_fn(graphdef, reference="base")


def test_toy_dpo_run_margin_rises_and_preference_accuracy_reaches_one(tmp_path):
    """A tiny decoder learns to prefer responses starting with token 5 over token 6."""
    from jaxmethods.train import LoopConfig, OptimConfig, fit, make_mesh
    from jaxmethods.train.dpo import dpo_stream
    from jaxmethods.train.metrics import read_jsonl

    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(32):
        prompt = rng.integers(8, V, size=4).tolist()
        tail = rng.integers(8, V, size=2).tolist()
        chosen, rejected = [*prompt, 5, *tail], [*prompt, 6, *tail]
        pairs.append({
            "chosen": {"input_ids": chosen, "labels": [-100] * 4 + chosen[4:]},
            "rejected": {"input_ids": rejected, "labels": [-100] * 4 + rejected[4:]},
        })  # fmt: skip
    model = DecoderLM(DecoderConfig.tiny(vocab_size=V), rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    stream = dpo_stream(pairs, batch_size=8, length=8, pad_id=0, seed=0, prefetch=0)
    result = fit(
        params=params, optim=OptimConfig(lr=1e-2), num_steps=24, batches=stream,
        mesh=make_mesh({"data": 1, "fsdp": 1, "tensor": 1}), workdir=str(tmp_path),
        loss_fn=make_dpo_loss_fn(graphdef, reference="model", beta=0.1),
        constants=reference_constants("model", rest, params),
        loop=LoopConfig(checkpoint_every=0, log_every=1, progress=False),
    )  # fmt: skip
    rows = [r for r in read_jsonl(str(tmp_path / "metrics.jsonl")) if "rewards/margins" in r]
    margins = [r["rewards/margins"] for r in rows]
    assert margins[0] == pytest.approx(0.0, abs=1e-5) and rows[0]["loss"] == pytest.approx(
        np.log(2), abs=1e-5
    )
    assert np.mean(margins[-4:]) > 1.0 > np.mean(margins[:4])
    assert result.last_metrics["rewards/accuracies"] == 1.0
