"""The shared loop: checkpoints with data state, exact resume, NaN guard, SIGTERM, config errors."""

import json
import os
import signal
from dataclasses import dataclass, field

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from loop_testing import CountingBatches, losses, run, setup

from jaxmethods.train.checkpoint import Checkpointer, MissingCheckpointError
from jaxmethods.train.config import ConfigError, to_dataclass
from jaxmethods.train.loop import NonFiniteLossError, Preempted


def test_crash_and_resume_gives_the_same_trajectory(tmp_path):
    straight = run(str(tmp_path / "a"), 10)

    def crash():
        raise KeyboardInterrupt  # a kill after the step-6 checkpoint, before step 8 runs

    with pytest.raises(KeyboardInterrupt):
        run(str(tmp_path / "b"), 10, CountingBatches(hooks={8: crash}))
    assert Checkpointer(str(tmp_path / "b" / "ckpt")).latest_step() == 6
    resumed = run(str(tmp_path / "b"), 10)
    assert resumed.resumed_from == 6
    assert losses(tmp_path / "a") == losses(tmp_path / "b")  # no step repeated or lost
    np.testing.assert_array_equal(straight.state.params["w"], resumed.state.params["w"])
    again = run(str(tmp_path / "b"), 10)  # a finished run resumes to nothing
    assert again.resumed_from == 10 and len(losses(tmp_path / "b")) == 10


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"at step 5;.*Last good checkpoint: step 3"):
        run(str(tmp_path), 10, CountingBatches(nan_at=5))
    ckpt = Checkpointer(str(tmp_path / "ckpt"))
    assert ckpt.latest_step() == 3


def test_sigterm_saves_and_exits_cleanly(tmp_path):
    hooks = {4: lambda: os.kill(os.getpid(), signal.SIGTERM)}
    with pytest.raises(Preempted) as info:
        run(str(tmp_path), 10, CountingBatches(hooks=hooks), save_every=100)
    assert info.value.step == 4 and info.value.code == 0
    assert Checkpointer(str(tmp_path / "ckpt")).latest_step() == 4
    assert run(str(tmp_path), 6).resumed_from == 4


def test_grad_accumulation_equals_full_batch_gradient():
    _, state, step1 = setup(1)
    _, state2, step2 = setup(2)
    batch = next(CountingBatches())
    a, _ = step1(state, None, batch)
    b, _ = step2(state2, None, batch)
    np.testing.assert_allclose(a.params["w"], b.params["w"], rtol=1e-5, atol=1e-6)


def test_restore_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(MissingCheckpointError, match="no checkpoint"):
        Checkpointer(str(tmp_path / "none")).restore({"w": jnp.zeros(3)})


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    steps: int = 1


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    dims: tuple[int, ...] = (2,)


def test_config_errors_name_the_field():
    ok = to_dataclass(Outer, {"name": "x", "inner": {"lr": 1}, "dims": [4, 2]})
    assert ok.inner.lr == 1.0 and ok.dims == (4, 2)
    with pytest.raises(ConfigError, match=r"config\.inner\.lrr: unknown field"):
        to_dataclass(Outer, ml_collections.ConfigDict({"name": "x", "inner": {"lrr": 1}}))
    with pytest.raises(ConfigError, match=r"config\.name: missing required field"):
        to_dataclass(Outer, {})
    with pytest.raises(ConfigError, match=r"config\.inner\.lr: expected a number"):
        to_dataclass(Outer, {"name": "x", "inner": {"lr": "0.1"}})
    with pytest.raises(ConfigError, match=r"config\.inner\.steps: expected an integer"):
        to_dataclass(Outer, {"name": "x", "inner": {"steps": 1.5}})


class ObservingBatches(CountingBatches):
    """Records the metrics the loop hands back; the count of observed steps is in its state."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def observe(self, metrics):
        self.seen.append(metrics)

    def get_state(self):
        return {"pos": self.pos, "observed": len(self.seen)}

    def set_state(self, state):
        self.pos = state["pos"]
        self.seen = [None] * state["observed"]


def test_iterator_observe_gets_each_steps_metrics_and_checkpoints_with_it(tmp_path):
    batches = ObservingBatches()
    run(str(tmp_path / "a"), 4, batches)
    assert len(batches.seen) == 4  # once per step, right after dispatch
    assert all(m["per_example"].shape == (8,) for m in batches.seen)
    assert all("loss" in r and "per_example" not in r for r in read_rows(tmp_path / "a"))
    want = [r["loss"] for r in read_rows(tmp_path / "a")]
    np.testing.assert_allclose([float(m["loss"]) for m in batches.seen], want, rtol=1e-6)
    resumed = ObservingBatches()
    run(str(tmp_path / "a"), 5, resumed)  # resumes from the final step-4 checkpoint
    assert resumed.get_state() == {"pos": 5, "observed": 5}


def read_rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if "loss" in r]
