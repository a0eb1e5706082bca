"""SFT, the template method: response-only HF labels, the causal-LM loss against NumPy, the tiny
run end to end, exact resume after preemption, and the JSONL path."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs.sft import get_config
from jaxmethods.methods.sft import run
from jaxmethods.models.causal_lm import causal_lm_loss
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.decoder_config import DecoderConfig
from jaxmethods.train.loop import Preempted
from jaxmethods.train.metrics import read_jsonl


def test_causal_lm_loss_matches_numpy_on_hf_labels():
    model = DecoderLM(DecoderConfig.tiny(vocab_size=50), rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, size=(2, 7)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    labels = ids.copy()
    labels[:, :3] = -100  # the prompt
    labels[1, 5:] = -100  # padding
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    graphdef, state = nnx.split(model)

    @jax.jit
    def run_model(state, batch):  # one compile for the logits and both loss paths
        m = nnx.merge(graphdef, state)
        losses = [causal_lm_loss(m, batch, chunk_size=chunk) for chunk in (0, 4)]
        return m(batch["input_ids"], batch["attention_mask"]), losses

    logits, losses = run_model(state, jax.tree.map(jnp.asarray, batch))
    logits = np.asarray(logits, np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    terms = [
        -logp[b, t, labels[b, t + 1]] for b in range(2) for t in range(6) if labels[b, t + 1] >= 0
    ]
    for loss, tokens in losses:
        np.testing.assert_allclose(float(loss), np.mean(terms), rtol=1e-5)
        assert int(tokens) == len(terms)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    return workdir, run(get_config("tiny"), str(workdir))


def test_tiny_run_learns_and_writes_the_summary_layout(straight):
    tmp_path, summary = straight
    assert summary["steps"] == 6 and set(summary["tables"]) == {"sft"}
    assert summary["valid/loss"] < summary["start/valid/loss"]
    rows = read_jsonl(str(tmp_path / "metrics.jsonl"))
    assert [r["step"] for r in rows if "valid/loss" in r] == [0, 3, 6]


@pytest.mark.slow  # ~15 s; the loop's exact resume is tests/train/test_loop_checkpoint.py's
def test_preempted_run_resumes_to_the_same_result(tmp_path, monkeypatch, straight):
    straight_dir, straight_summary = straight
    import jaxmethods.train.loop as loop_module

    real = loop_module._SigtermFlag.__enter__

    def raise_after_entering(self):
        flag = real(self)
        flag.raised = True  # as if SIGTERM arrived during step 1
        return flag

    monkeypatch.setattr(loop_module._SigtermFlag, "__enter__", raise_after_entering)
    with pytest.raises(Preempted) as info:
        run(get_config("tiny"), str(tmp_path / "b"))
    assert info.value.step == 1 and info.value.code == 0
    monkeypatch.undo()
    resumed = run(get_config("tiny"), str(tmp_path / "b"))
    np.testing.assert_allclose(resumed["valid/loss"], straight_summary["valid/loss"], rtol=1e-6)
    losses = lambda d: [r["loss"] for r in read_jsonl(str(d / "metrics.jsonl")) if "loss" in r]
    np.testing.assert_allclose(losses(tmp_path / "b"), losses(straight_dir), rtol=1e-6)


@pytest.mark.slow  # > 20 s on 2 cores
def test_jsonl_data_and_malformed_rows_name_the_line(tmp_path):
    rows = [{"q": f"what is {i} plus {i}?", "a": f"it is {2 * i}."} for i in range(12)]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    c = get_config(f"tiny,train={train},valid={train}")
    c.data.source, c.data.prompt_key, c.data.response_key = "jsonl", "q", "a"
    c.epochs = 1.0
    summary = run(c, str(tmp_path / "run"))
    assert summary["steps"] == 3 and np.isfinite(summary["valid/loss"])
    train.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"q": "no answer"}) + "\n")
    with pytest.raises(ValueError, match=r"train\.jsonl:2: field 'a' is missing"):
        run(c, str(tmp_path / "bad"))
