"""Reason4Rec `tiny` end to end (slow: five adapters trained, generation, distillation), and a
rerun in the same workdir resuming every phase to the same result."""

import json
import os

import pytest

pytestmark = pytest.mark.slow


def test_tiny_end_to_end_and_resume(tmp_path):
    from configs.reason4rec import get_config
    from jaxmethods.methods.reason4rec.run import run

    workdir = str(tmp_path / "run")
    s = run(get_config("tiny"), workdir)
    for k in ("test/reason4rec/mae", "test/direct/mae", "test/item_mean/mae",
              "test/user_mean/mae", "distill/accept_rate", "test/cold_start",
              "cost/reason/new_tokens", "data/missing_reviews_train"):  # fmt: skip
        assert k in s, k
    assert 1.0 <= s["test/reason4rec/mae"] + 1.0 <= 5.0
    assert "Reason4Rec" in s["tables"]["reason4rec"]
    with open(os.path.join(workdir, "reasons.jsonl")) as f:
        finals = [json.loads(x) for x in f if '"final": true' in x]
    assert len(finals) == s["distill/targets"]
    again = run(get_config("tiny"), workdir)  # every phase resumes from its checkpoints
    for k in ("test/reason4rec/mae", "test/direct/mae", "distill/accepted"):
        assert again[k] == pytest.approx(s[k], abs=1e-5), k
