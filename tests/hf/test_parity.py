"""Our decoder vs PyTorch transformers (fp32, 1e-4) on committed tiny fixtures, plus a live
comparison against freshly built transformers models when torch is installed."""

from __future__ import annotations

import numpy as np
import pytest
from hf_testing import CAUSAL_FIXTURES, TOL, fixture_path, forward, reference, valid

from jaxmethods.hf import load_pretrained, load_reward_model
from jaxmethods.models.heads import SequenceClassifier

pytestmark = pytest.mark.hf_parity


@pytest.mark.parametrize("name", CAUSAL_FIXTURES)
def test_logits_match_transformers_fixture(name):
    ref = reference(name)
    model = load_pretrained(fixture_path(name), dtype="float32")
    ours = forward(model, ref["input_ids"], ref["attention_mask"])
    assert ours.shape == ref["outputs"].shape
    np.testing.assert_allclose(
        valid(ours, ref["attention_mask"]), valid(ref["outputs"], ref["attention_mask"]), **TOL
    )


@pytest.mark.parametrize(
    "name, override",
    [
        ("mistral", dict(sliding_window=None)),
        ("qwen2_sliding", dict(sliding_window=None, sliding_layers=None)),
        ("llama3", dict(rope_scaling=None)),
    ],
)
def test_fixture_exercises_the_feature(name, override):
    """Without the sliding window / llama3 rope scaling the logits change: the fixtures test them."""
    ref = reference(name)
    model = load_pretrained(fixture_path(name), dtype="float32", **override)
    ours = forward(model, ref["input_ids"], ref["attention_mask"])
    gap = np.abs(valid(ours, ref["attention_mask"]) - valid(ref["outputs"], ref["attention_mask"]))
    assert gap.max() > 1e-2


def test_reward_model_scores_match_transformers_fixture():
    ref = reference("llama_reward")
    model = load_reward_model(fixture_path("llama_reward"), dtype="float32")
    assert isinstance(model, SequenceClassifier) and model.num_labels == 1
    scores = forward(model, ref["input_ids"], ref["attention_mask"])
    np.testing.assert_allclose(scores, ref["outputs"], **TOL)


@pytest.mark.parametrize("name", [*CAUSAL_FIXTURES, "llama_reward"])
def test_live_parity_with_fresh_transformers_model(name, tmp_path):
    pytest.importorskip("torch")
    from make_fixtures import build_hf_model, hf_outputs, reference_batch

    hf_model = build_hf_model(name, seed=11)
    hf_model.save_pretrained(tmp_path, safe_serialization=True)
    batch = reference_batch()
    expected = hf_outputs(hf_model, batch)
    ours = forward(
        load_pretrained(str(tmp_path), dtype="float32"), batch["input_ids"], batch["attention_mask"]
    )
    if name == "llama_reward":
        np.testing.assert_allclose(ours, expected, **TOL)
    else:
        mask = batch["attention_mask"]
        np.testing.assert_allclose(valid(ours, mask), valid(expected, mask), **TOL)
