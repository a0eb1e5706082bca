"""The shared optimizer: HF Trainer's schedules, warmup rule, decay exclusions and step arithmetic,
each against an independent transcription of transformers' formulas."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmethods.data.pipeline import batches_per_epoch, epoch_permutation, step_stream
from jaxmethods.train.optim import (
    OptimConfig,
    decay_mask,
    hf_max_steps,
    make_optimizer,
    make_schedule,
    num_warmup_steps,
)


def hf_lambda(name: str, step: int, warmup: int, total: int) -> float:
    """transformers.optimization's lr_lambda functions, transcribed (linear, cosine with
    num_cycles 0.5, constant_with_warmup)."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    if name == "linear":
        return max(0.0, float(total - step) / float(max(1, total - warmup)))
    if name == "cosine":
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))
    return 1.0


@pytest.mark.parametrize("name", ["linear", "cosine", "constant"])
@pytest.mark.parametrize("warmup,total", [(0, 10), (3, 20), (25, 20), (1, 1)])
def test_schedules_match_transformers(name, warmup, total):
    schedule = make_schedule(name, 2e-3, total, warmup)
    got = np.asarray([schedule(t) for t in range(total + 3)])
    want = np.asarray([2e-3 * hf_lambda(name, t, warmup, total) for t in range(total + 3)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)  # float32 schedule


def test_warmup_steps_win_over_ratio_and_ratio_rounds_up():
    assert num_warmup_steps(OptimConfig(warmup_steps=7, warmup_ratio=0.5), 100) == 7
    assert num_warmup_steps(OptimConfig(warmup_ratio=0.05), 30) == 2  # ceil(1.5)
    assert num_warmup_steps(OptimConfig(), 30) == 0


# TOFU forget splits (40 / 200 / 400 questions), the authors' batch 8 over 10 epochs: HF
# Trainer's max_steps = ceil(epochs * floor(ceil(N / 8) / GA)).
@pytest.mark.parametrize(
    "num_forget,grad_accum,steps",
    [(40, 2, 20), (40, 4, 10), (200, 2, 120), (200, 4, 60), (400, 2, 250), (400, 4, 120)],
)
def test_hf_step_arithmetic_on_tofu_splits(num_forget, grad_accum, steps):
    bpe = batches_per_epoch(num_forget, 8)
    assert hf_max_steps(bpe, grad_accum, 10) == steps


def test_accumulation_windows_cross_epoch_boundaries():
    """40 records, micro-batches of 8 (5 per epoch), GA 2: the third step takes the last
    micro-batch of epoch 0 and the first of epoch 1, as HF's global micro-batch counter does."""
    stream = step_stream(40, lambda idx: idx, micro_batch_size=8, grad_accum=2, seed=0)
    blocks = [next(stream).reshape(2, 8) for _ in range(hf_max_steps(5, 2, 2))]
    micro = [m for b in blocks for m in b]
    assert len(blocks) == 4 and all((m >= 0).all() for m in micro)
    np.testing.assert_array_equal(np.concatenate(micro[:5]), epoch_permutation(40, seed=0, epoch=0))
    np.testing.assert_array_equal(blocks[2][1], epoch_permutation(40, seed=0, epoch=1)[:8])
    assert sorted(np.concatenate(micro[:5])) == list(range(40))


def test_short_last_micro_batch_is_padded_per_epoch():
    stream = step_stream(10, lambda idx: idx, micro_batch_size=4, grad_accum=1, seed=1)
    epoch0 = [next(stream) for _ in range(3)]
    assert (epoch0[2][2:] == -1).all() and (epoch0[2][:2] >= 0).all()
    assert sorted(np.concatenate(epoch0)[np.concatenate(epoch0) >= 0]) == list(range(10))
    assert (next(stream) >= 0).all()  # epoch 1 starts a fresh, full micro-batch


def test_decay_mask_skips_biases_and_norms():
    params = {"layer": {"kernel": 1.0, "bias": 1.0}, "input_norm": {"scale": 1.0}}
    assert decay_mask(params) == {
        "layer": {"kernel": True, "bias": False},
        "input_norm": {"scale": False},
    }


def test_adamw_with_clipping_matches_optax_reference():
    params = {"w": jnp.asarray([1.0, -2.0, 3.0]), "bias": jnp.asarray([0.5])}
    grads = {"w": jnp.asarray([3.0, 4.0, 0.0]), "bias": jnp.asarray([12.0])}
    cfg = OptimConfig(lr=0.1, weight_decay=0.01, max_grad_norm=1.0, schedule="constant")
    tx = make_optimizer(cfg, 10)
    updates, _ = tx.update(grads, tx.init(params), params)
    norm = np.sqrt(9 + 16 + 144)
    clipped = jax.tree.map(lambda g: np.asarray(g) / norm, grads)
    # Adam's first step is lr * g / (|g| + eps) = lr * sign(g) elementwise; decay on w only.
    want_w = -0.1 * (np.sign(clipped["w"]) * np.abs(clipped["w"]) / (np.abs(clipped["w"]) + 1e-8)
                     + 0.01 * np.asarray(params["w"]))  # fmt: skip
    want_b = -0.1 * np.sign(clipped["bias"])
    np.testing.assert_allclose(updates["w"], want_w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(updates["bias"], want_b, rtol=1e-5)
    assert isinstance(tx, optax.GradientTransformation)


def test_bad_optimizer_settings_name_the_field():
    with pytest.raises(ValueError, match=r"optim\.schedule"):
        OptimConfig(schedule="step")
    with pytest.raises(ValueError, match=r"optim\.grad_accum"):
        OptimConfig(grad_accum=0)
