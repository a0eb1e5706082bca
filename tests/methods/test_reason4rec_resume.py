"""The resume record of a Reason4Rec phase (`resume.py`): digests that follow the values, and a
phase directory that refuses other inputs or unrecorded checkpoints. The guard inside
`train_expert` is tested in test_reason4rec_pipeline.py (it shares that file's tiny model)."""

import jax
import numpy as np
import pytest

from jaxmethods.methods.reason4rec.resume import check_resume, examples_digest, tree_digest


def test_digests_follow_values_and_checkpoints_without_record_are_refused(tmp_path):
    a = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.float32)}
    same = jax.tree.map(np.copy, a)
    moved = dict(a, w=a["w"][::-1].copy())  # same sum and sum of squares, other positions
    assert tree_digest(a) == tree_digest(same)
    assert tree_digest(a) != tree_digest(moved)
    assert tree_digest(a) != tree_digest(dict(a, b=a["b"] * 1.01))
    ex = [{"input_ids": [1, 2], "labels": [-100, 2]}]
    assert examples_digest(ex) != examples_digest([{"input_ids": [1, 2], "labels": [1, 2]}])
    legacy = tmp_path / "reward"
    (legacy / "checkpoints" / "5").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"no inputs\.json"):
        check_resume(str(legacy), {"base": "x"})
    fresh = tmp_path / "fresh"
    check_resume(str(fresh), {"base": "x"})
    check_resume(str(fresh), {"base": "x"})  # the same inputs resume
    with pytest.raises(ValueError, match="base differ"):
        check_resume(str(fresh), {"base": "y"})
