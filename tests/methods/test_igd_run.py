"""IGD trainer glue: the loss used in training against the pure losses, and `tiny` end to end."""

import importlib.util
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from jaxmethods.losses import causal_fine_tuning_loss, weighted_token_ce
from jaxmethods.methods.igd.steps import make_loss_fn
from jaxmethods.models.decoder import DecoderConfig, DecoderLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(variant="tiny"):
    spec = importlib.util.spec_from_file_location(
        "igd_config", os.path.join(ROOT, "configs/igd.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(variant)


def test_training_loss_equals_pure_losses_on_full_logits():
    rng = np.random.default_rng(0)
    model = DecoderLM(DecoderConfig.tiny(vocab_size=40), nnx.Rngs(0))
    graphdef, params, frozen = nnx.split(model, nnx.Param, ...)
    b, t = 2, 9
    mask = np.ones((b, t), bool)
    mask[1, :3] = False
    batch = {
        "input_ids": rng.integers(0, 40, (b, t)).astype(np.int32),
        "attention_mask": mask,
        "labels": rng.integers(0, 40, (b, t)).astype(np.int32),
        "loss_mask": rng.random((b, t)) < 0.5,
        "weights": rng.random((b, t)).astype(np.float32),
        "cf_input_ids": rng.integers(0, 40, (b, t)).astype(np.int32),
        "cf_attention_mask": np.ones((b, t), bool),
    }
    forward = nnx.jit(lambda m, ids, mask: m(ids, mask))
    logits = forward(model, batch["input_ids"], batch["attention_mask"])
    cf_logits = forward(model, batch["cf_input_ids"], batch["cf_attention_mask"])
    key = jax.random.key(0)
    loss, metrics = jax.jit(make_loss_fn(graphdef, chunk_size=4))(params, frozen, batch, key)
    ref = weighted_token_ce(logits, batch["labels"], batch["weights"], batch["loss_mask"])
    np.testing.assert_allclose(loss, ref, rtol=1e-5)
    cft_fn = jax.jit(make_loss_fn(graphdef, cft_alpha=0.3, chunk_size=4))
    cft, _ = cft_fn(params, frozen, batch, key)
    ref_cft, _ = causal_fine_tuning_loss(
        logits, cf_logits, batch["labels"], batch["weights"], batch["loss_mask"], alpha=0.3
    )
    np.testing.assert_allclose(cft, ref_cft, rtol=1e-4)
    assert np.isfinite(metrics["ce"])


def test_tiny_runs_end_to_end_and_resumes(tmp_path):
    from jaxmethods.methods import get_method

    run = get_method("igd")
    config = _config("tiny")
    config.tuning.epochs = 1
    config.tuning.micro_batch_size = 16  # one micro-batch per step: a smaller program to compile
    config.tuning.grad_accum_steps = 1
    config.decode.alphas = (0.0, 0.2)
    summary = run(config, str(tmp_path))
    res = summary["results"]["beta=0.1"]
    for alpha in ("alpha=0", "alpha=0.2"):
        assert set(res[alpha]) == {f"{m}@{k}" for m in ("hr", "ndcg") for k in (1, 3, 5)}
        assert all(0.0 <= v <= 1.0 for v in res[alpha].values())
    assert 0.3 < summary["data"]["zero_ig_share_train_targets"] < 1.0
    with open(tmp_path / "beta_0.1" / "metrics.jsonl") as f:
        rows = [json.loads(x) for x in f]
    assert any("eval/loss" in r for r in rows) and any("loss" in r for r in rows)
    assert "| beta | alpha |" in summary["table"]
    # A second run in the same workdir resumes from the checkpoint: no retraining, same result.
    again = run(config, str(tmp_path))
    assert again["results"] == summary["results"]


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
    assert "beta=0.1" in summary["results"]
