"""Metric sinks, atomic writes and the summary layout."""

import json
import os

import numpy as np
import pytest

from jaxmethods.train.metrics import MetricWriter, make_summary, write_json_atomic


def test_summary_layout_is_flat_with_tables_and_artifacts():
    s = make_summary(
        {"test": {"ndcg@20": np.float32(0.25)}, "best_epoch": 3},
        tables={"cf": "| a |"},
        artifacts={"plot": "scaling.png"},
    )
    assert s == {"test/ndcg@20": 0.25, "best_epoch": 3, "tables": {"cf": "| a |"},
                 "artifacts": {"plot": "scaling.png"}}  # fmt: skip
    with pytest.raises(ValueError, match="reserved"):
        make_summary({"tables": 1})


def test_atomic_json_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "out" / "result.json"
    write_json_atomic(str(path), {"x": np.arange(3)})
    assert json.loads(path.read_text()) == {"x": [0, 1, 2]}
    assert os.listdir(path.parent) == ["result.json"]


def test_unknown_sink_is_an_error_naming_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"\['mlflow'\] are unknown; choose from"):
        MetricWriter(str(tmp_path), sinks=("mlflow",))


def test_tensorboard_sink_mirrors_scalars(tmp_path):
    pytest.importorskip("tensorboardX")
    writer = MetricWriter(str(tmp_path), sinks=("tensorboard",))
    writer.write(1, {"loss": 0.5, "name": "text is not a scalar"})
    writer.close()
    events = os.listdir(tmp_path / "tensorboard")
    assert events and events[0].startswith("events.out.tfevents")
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["loss"] == 0.5
