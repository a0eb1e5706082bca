"""Preemption and faults: SIGTERM never claims a save that did not happen, a corrupt newest
checkpoint falls back to an older one, a torn metrics line is dropped, evaluated best states
are restored."""

import logging
import os
import signal

import jax.numpy as jnp
import numpy as np
import pytest
from loop_testing import CountingBatches, losses, setup

from jaxmethods.train.checkpoint import Checkpointer, CheckpointRestoreError
from jaxmethods.train.loop import EarlyStopping, Eval, Preempted, train_loop
from jaxmethods.train.mesh import data_sharding
from jaxmethods.train.metrics import MetricsLogError, read_jsonl


def sigterm():
    os.kill(os.getpid(), signal.SIGTERM)


def run(workdir, num_steps, batches=None, *, save_every=3, evals=None, early=None, ckpt=True,
        async_save=True):  # fmt: skip
    mesh, state, step = setup()
    checkpointer = None
    if ckpt:
        checkpointer = Checkpointer(
            os.path.join(workdir, "ckpt"), save_every=save_every, keep=2, async_save=async_save
        )
    try:
        return train_loop(
            step_fn=step, state=state, batches=batches or CountingBatches(), num_steps=num_steps,
            workdir=workdir, batch_sharding=data_sharding(mesh), checkpointer=checkpointer,
            log_every=1, progress=False, evals=evals, early_stopping=early,
        )  # fmt: skip
    finally:
        if checkpointer is not None:
            checkpointer.close()


def saved_claims(caplog) -> list[int]:
    return [int(r.getMessage().split("saved step ")[1].split(";")[0])
            for r in caplog.records if "saved step" in r.getMessage()]  # fmt: skip


def test_sigterm_during_evaluation_saves_after_it(tmp_path, caplog):
    """The signal arrives inside an evaluation at a step that is not a save step."""

    def evaluate(state, step):
        if step == 4:
            sigterm()
        return {"w0": state.params["w"][0]}

    caplog.set_level(logging.WARNING)
    with pytest.raises(Preempted) as info:
        run(str(tmp_path), 10, save_every=100, evals={"valid": Eval(evaluate, every=2)})
    assert info.value.step == 4 and info.value.code == 0
    steps = Checkpointer(str(tmp_path / "ckpt")).all_steps()
    assert saved_claims(caplog) == [4] and 4 in steps


def test_sigterm_during_an_async_save_waits_for_it(tmp_path, caplog):
    """A periodic async save at step 3 is in flight when the signal comes before step 4."""
    caplog.set_level(logging.WARNING)
    with pytest.raises(Preempted):
        run(str(tmp_path), 10, CountingBatches(hooks={4: sigterm}), save_every=3)
    steps = Checkpointer(str(tmp_path / "ckpt")).all_steps()
    claims = saved_claims(caplog)
    assert claims == [4] and all(c in steps for c in claims) and 3 in steps
    resumed = run(str(tmp_path), 6)
    assert resumed.resumed_from == 4


def test_sigterm_without_a_checkpointer_says_nothing_was_saved(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    with pytest.raises(Preempted) as info:
        run(str(tmp_path), 10, CountingBatches(hooks={2: sigterm}), ckpt=False)
    assert info.value.code == 1 and not info.value.saved
    assert saved_claims(caplog) == []
    assert any("nothing was saved" in r.getMessage() for r in caplog.records)


def _corrupt_newest(directory: str) -> int:
    step = max(int(d) for d in os.listdir(directory) if d.isdigit())
    for root, _, files in os.walk(os.path.join(directory, str(step), "state")):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "r+b") as f:
                f.truncate(max(os.path.getsize(path) // 3, 1) - 1)
    return step


def test_corrupt_newest_checkpoint_falls_back_and_finishes_identically(tmp_path, caplog):
    straight = run(str(tmp_path / "a"), 10, async_save=False)
    with pytest.raises(KeyboardInterrupt):
        run(str(tmp_path / "b"), 10, CountingBatches(hooks={8: _raise_interrupt}), async_save=False)
    assert _corrupt_newest(str(tmp_path / "b" / "ckpt")) == 6
    caplog.set_level(logging.WARNING)
    resumed = run(str(tmp_path / "b"), 10, async_save=False)
    assert resumed.resumed_from == 3
    assert any("step 6" in r.getMessage() and "does not restore" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    np.testing.assert_array_equal(straight.state.params["w"], resumed.state.params["w"])


def _raise_interrupt():
    raise KeyboardInterrupt


def test_no_restorable_checkpoint_lists_what_was_tried(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(str(tmp_path), 10, CountingBatches(hooks={5: _raise_interrupt}), async_save=False)
    directory = str(tmp_path / "ckpt")
    for step in Checkpointer(directory).all_steps():
        with open(os.path.join(directory, str(step), "data", "metadata"), "w") as f:
            f.write('{"data": ')  # torn JSON
    with pytest.raises(CheckpointRestoreError, match=r"tried:\n  step 3: .*\nTo start fresh"):
        run(str(tmp_path), 10)


def test_torn_last_metrics_line_is_dropped_and_a_torn_middle_line_is_an_error(tmp_path, caplog):
    with pytest.raises(KeyboardInterrupt):
        run(str(tmp_path), 10, CountingBatches(hooks={5: _raise_interrupt}), async_save=False)
    path = tmp_path / "metrics.jsonl"
    with open(path, "a") as f:
        f.write('{"step": 5, "loss": 0.')  # killed mid-write
    caplog.set_level(logging.WARNING)
    assert run(str(tmp_path), 6).resumed_from == 3
    assert [r["step"] for r in read_jsonl(str(path)) if "loss" in r] == [1, 2, 3, 4, 5, 6]
    lines = path.read_text().splitlines()
    lines.insert(1, '{"step": 1.5, "lo')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(MetricsLogError, match=r"metrics\.jsonl:2: not valid JSON"):
        read_jsonl(str(path))


def test_early_stopping_restores_the_best_evaluated_state(tmp_path):
    """Validation loss = fixed schedule; training stops after `patience` bad evaluations and the
    result holds the state of the best evaluation (restored from its protected checkpoint)."""
    schedule = {2: 5.0, 4: 3.0, 6: 4.0, 8: 4.5, 10: 1.0}
    seen = {}

    def evaluate(state, step):
        seen[step] = np.asarray(state.params["w"]).copy()
        return {"loss": schedule[step]}

    result = run(
        str(tmp_path), 10, save_every=100, evals={"valid": Eval(evaluate, every=2)},
        early=EarlyStopping("valid/loss", patience=2),
    )  # fmt: skip
    assert result.stopped_early and result.step == 8
    assert result.best_step == 4 and result.best_metric == 3.0
    np.testing.assert_array_equal(result.state.params["w"], seen[4])
    rows = read_jsonl(str(tmp_path / "metrics.jsonl"))
    assert [r["step"] for r in rows if "valid/loss" in r] == [2, 4, 6, 8]
    again = run(  # a finished, early-stopped run does not train on; it returns the best state
        str(tmp_path), 10, save_every=100, evals={"valid": Eval(evaluate, every=2)},
        early=EarlyStopping("valid/loss", patience=2),
    )  # fmt: skip
    assert again.step == 8 and again.best_step == 4
    np.testing.assert_array_equal(again.state.params["w"], seen[4])


def test_early_stopping_counters_survive_a_restart(tmp_path):
    """The step-6 checkpoint holds one bad evaluation; had the counter been lost, the resumed
    run would not stop at step 8 (it would reach the improving step 10)."""
    schedule = {2: 5.0, 4: 3.0, 6: 4.0, 8: 4.5, 10: 1.0}
    evals = {"valid": Eval(lambda s, step: {"loss": schedule[step]}, every=2)}
    early = EarlyStopping("valid/loss", patience=2)
    with pytest.raises(KeyboardInterrupt):
        run(str(tmp_path), 10, CountingBatches(hooks={7: _raise_interrupt}), save_every=3,
            evals=evals, early=early)  # fmt: skip
    result = run(str(tmp_path), 10, save_every=3, evals=evals, early=early)
    assert result.resumed_from == 6 and result.stopped_early and result.step == 8
    assert result.best_step == 4


def test_eval_at_start_and_hook_names(tmp_path):
    calls = []

    def evaluate(state, step):
        calls.append(step)
        return {"w_norm": jnp.linalg.norm(state.params["w"])}

    result = run(str(tmp_path), 4, evals={"valid": Eval(evaluate, every=0, at_start=True)})
    assert calls == [0, 4] and "valid/w_norm" in result.last_eval
    assert [r["step"] for r in result.eval_history] == [0, 4]
