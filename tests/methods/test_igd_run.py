"""IGD on the shared trainer: the training and validation losses against NumPy, HF Trainer's
step arithmetic, bf16 optimizer state, and `tiny` end to end with resume."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxmethods.methods.igd.config import from_config_dict
from jaxmethods.methods.igd.dataset import TokenizedExamples
from jaxmethods.methods.igd.loss import make_eval_loss, make_loss_fn, validation_loss
from jaxmethods.methods.igd.run import build_model, step_plan
from jaxmethods.models.backbone import split_trainable
from jaxmethods.models.decoder import DecoderConfig, DecoderLM
from jaxmethods.train import create_state, make_mesh, make_optimizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(variant="tiny"):
    spec = importlib.util.spec_from_file_location(
        "igd_config", os.path.join(ROOT, "configs/igd.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(variant)


def _np_log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    m = logits.max(-1, keepdims=True)
    return logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))


def _np_weighted_ce(logits, labels, weights):
    """IGD eq. 8 with HF's shift: sum_t w[t+1] CE(logits[t], labels[t+1]) / sum_t w[t+1]."""
    logp = _np_log_softmax(logits)[:, :-1]
    nxt, w = labels[:, 1:], weights[:, 1:]
    valid = nxt != -100
    ce = -np.take_along_axis(logp, np.where(valid, nxt, 0)[..., None], -1)[..., 0]
    return (w * ce)[valid].sum() / w[valid].sum()


def _batch(rng, b=2, t=9, v=40):
    mask = np.ones((b, t), bool)
    mask[1, :3] = False
    labels = rng.integers(0, v, (b, t)).astype(np.int32)
    labels[0, :4] = -100
    labels[1, :6] = -100
    return {
        "input_ids": rng.integers(0, v, (b, t)).astype(np.int32),
        "attention_mask": mask,
        "labels": labels,
        "weights": np.where(labels != -100, rng.random((b, t)), 0).astype(np.float32),
        "cf_input_ids": rng.integers(0, v, (b, t)).astype(np.int32),
        "cf_attention_mask": np.ones((b, t), bool),
    }


def test_training_loss_equals_numpy_on_full_logits():
    rng = np.random.default_rng(0)
    model = DecoderLM(DecoderConfig.tiny(vocab_size=40), nnx.Rngs(0))
    graphdef, params, base = nnx.split(model, nnx.Param, ...)
    batch = _batch(rng)
    forward = nnx.jit(lambda m, ids, mask: m(ids, mask))
    logits = np.asarray(forward(model, batch["input_ids"], batch["attention_mask"]))
    cf_logits = np.asarray(forward(model, batch["cf_input_ids"], batch["cf_attention_mask"]))
    key = jax.random.key(0)
    loss, metrics = jax.jit(make_loss_fn(graphdef, chunk_size=4))(params, base, batch, key)
    ref = _np_weighted_ce(logits, batch["labels"], batch["weights"])
    np.testing.assert_allclose(loss, ref, rtol=1e-5)
    unit = _np_weighted_ce(logits, batch["labels"], np.ones_like(batch["weights"]))
    np.testing.assert_allclose(metrics["ce"], unit, rtol=1e-5)
    cft, _ = jax.jit(make_loss_fn(graphdef, cft_alpha=0.3, chunk_size=0))(params, base, batch, key)
    ref_cf = _np_weighted_ce(logits - cf_logits, batch["labels"], batch["weights"])
    np.testing.assert_allclose(cft, ref + 0.3 * ref_cf, rtol=1e-4)


def test_validation_loss_is_hf_eval_loss():
    """HF's eval loop: every batch's loss repeated batch-size times, then the mean; the short
    last batch counts its real rows only."""
    rng = np.random.default_rng(1)
    model = DecoderLM(DecoderConfig.tiny(vocab_size=30), nnx.Rngs(1))
    graphdef, params, base = nnx.split(model, nnx.Param, ...)
    n, seq_len = 5, 12
    prompts = [list(rng.integers(1, 30, rng.integers(3, 6))) for _ in range(n)]
    targets = [list(rng.integers(1, 30, rng.integers(2, 5))) for _ in range(n)]
    weights = [rng.random(len(t)).astype(np.float32) + 0.1 for t in targets]
    ex = TokenizedExamples(prompts, targets, weights, [np.zeros(len(t)) for t in targets], [""] * n)
    got = validation_loss(
        make_eval_loss(graphdef, chunk_size=5), params, base, ex, batch_size=2, seq_len=seq_len,
        pad_id=0,
    )  # fmt: skip
    forward = nnx.jit(lambda m, ids, mask: m(ids, mask))
    per_batch = []
    for start in range(0, n, 2):
        rows = range(start, min(start + 2, n))
        ids = np.zeros((len(rows), seq_len), np.int32)
        mask = np.zeros((len(rows), seq_len), bool)
        labels = np.full((len(rows), seq_len), -100, np.int32)
        w = np.zeros((len(rows), seq_len), np.float32)
        for r, i in enumerate(rows):
            tokens = prompts[i] + targets[i]
            ids[r, -len(tokens) :], mask[r, -len(tokens) :] = tokens, True
            labels[r, -len(targets[i]) :] = targets[i]
            w[r, -len(targets[i]) :] = weights[i]
        logits = np.asarray(forward(model, ids, mask))
        per_batch.append((_np_weighted_ce(logits, labels, w), len(rows)))
    ref = sum(loss * k for loss, k in per_batch) / n
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def _hf_445_loop(num_train, micro, ga, epochs):
    """transformers 4.45 `_inner_training_loop` counting: (max_steps, global step at each
    epoch end, where eval_strategy="epoch" evaluates)."""
    bpe = math.ceil(num_train / micro)  # DataLoader, dataloader_drop_last=False
    max_steps = math.ceil(epochs * max(bpe // ga, 1))
    total, step, epoch_ends = 0, 0, []
    for _ in range(epochs):
        for i in range(bpe):
            total += 1
            if total % ga == 0 or (bpe <= ga and i + 1 == bpe):
                step += 1
                if step >= max_steps:
                    break
        epoch_ends.append(step)
        if step >= max_steps:
            break
    return max_steps, epoch_ends


@pytest.mark.parametrize(
    "variant, num_train", [("books", 682998), ("video_games", 201613), ("toys", 112755),
                           ("cds", 148685), ("demo", 3409)],
)  # fmt: skip
def test_step_plan_is_hf_trainer_445(variant, num_train):
    cfg = from_config_dict(_config(variant))
    steps, per_epoch = step_plan(num_train, cfg)
    max_steps, epoch_ends = _hf_445_loop(
        num_train, cfg.tuning.micro_batch_size, cfg.optim.grad_accum, cfg.tuning.epochs
    )
    assert steps == max_steps
    ours = [per_epoch * (e + 1) for e in range(len(epoch_ends))]
    if variant == "cds":  # 5 leftover micro-batches per epoch: HF's 2nd epoch ends 1 step later
        assert ours == [1161, 2322, 3483] and epoch_ends == [1161, 2323, 3483]
    else:
        assert ours == epoch_ends


class _Tokenizer:
    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __len__(self):
        return 64


def test_bf16_params_get_bf16_adamw_state():
    """The authors fine-tune with bf16 parameters and torch AdamW, whose moments are created
    `zeros_like(param)`: optax's adam moments likewise follow the parameter dtype."""
    cfg = from_config_dict(_config("tiny,param_dtype=bfloat16"))
    mesh = make_mesh(cfg.mesh)
    model = build_model(cfg, _Tokenizer(), mesh)
    _, params, _ = split_trainable(model, cfg.model)
    bf16 = {jnp.dtype(jnp.bfloat16)}
    assert {x.dtype for x in jax.tree.leaves(params)} == bf16
    tx = make_optimizer(cfg.optim, 10)
    state, _ = create_state(params, tx, mesh)  # what `fit` trains
    moments = [x for x in jax.tree.leaves(state.opt_state) if x.shape]  # mu, nu; not counts
    assert len(moments) == 2 * len(jax.tree.leaves(params))
    assert {x.dtype for x in moments} == bf16

    @jax.jit
    def update(state):
        grads = jax.tree.map(jnp.ones_like, state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return optax.apply_updates(state.params, updates), opt_state

    new_params, opt_state = update(state)
    assert {x.dtype for x in jax.tree.leaves(new_params)} == bf16
    assert {x.dtype for x in jax.tree.leaves(opt_state) if x.shape} == bf16


@pytest.mark.slow  # two tiny runs with beam-search evaluation, > 60 s on 2 cores
def test_tiny_runs_end_to_end_and_resumes(tmp_path):
    from jaxmethods.methods import get_method

    run = get_method("igd")
    config = _config("tiny,epochs=1,ga=1")
    config.tuning.micro_batch_size = 16  # one micro-batch per step: a smaller program to compile
    summary = run(config, str(tmp_path))
    for alpha in ("alpha=0", "alpha=0.2"):
        keys = {f"beta=0.1/{alpha}/{m}@{k}" for m in ("hr", "ndcg") for k in (1, 3, 5)}
        assert keys <= set(summary)
        assert all(0.0 <= summary[k] <= 1.0 for k in keys)
    assert 0.3 < summary["data/zero_ig_share_train_targets"] < 1.0
    assert summary["beta=0.1/steps"] == 4  # ceil(64 / 16) micro-batches, 1 epoch
    assert summary["tables"]["igd"].startswith("| beta | alpha |")
    with open(tmp_path / "beta_0.1" / "metrics.jsonl") as f:
        rows = [json.loads(x) for x in f]
    evals = [r for r in rows if "valid/loss" in r]
    assert [r["step"] for r in evals] == [4]
    assert summary["beta=0.1/best_valid_loss"] == pytest.approx(evals[0]["valid/loss"])
    # A second run in the same workdir resumes from the checkpoint: no retraining, same result.
    again = run(config, str(tmp_path))
    assert again == summary


@pytest.mark.slow
def test_tiny_through_launch(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "launch/run.py", "--config", "configs/igd.py:tiny",
         "--workdir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "summary.json") as f:
        summary = json.load(f)
    assert "beta=0.1/alpha=0.2/ndcg@5" in summary and "igd" in summary["tables"]
