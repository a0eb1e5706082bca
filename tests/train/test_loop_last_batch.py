"""The loss that the shared loop logs for an epoch's short final batch (padding rows, index -1)
and for the run's last step: it must be that batch's own loss over its real rows.

Reference: NumPy on the very batches the loop consumed (recorded on the host)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmethods.data.pipeline import step_stream
from jaxmethods.train.loop import train_loop
from jaxmethods.train.mesh import data_sharding, make_mesh, replicated
from jaxmethods.train.metrics import read_jsonl
from jaxmethods.train.state import TrainState
from jaxmethods.train.step import jit_train_step, make_train_step

W0 = np.array([0.5, -1.0, 2.0], np.float32)
RECORDS, BATCH, STEPS = 10, 4, 6  # 3 batches per epoch, the 3rd and 6th hold 2 real rows


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(RECORDS, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5], np.float32) + rng.normal(size=RECORDS)).astype(np.float32)
    return x, y


def _collate(x, y, idx):
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    return {"x": x[safe], "y": y[safe], "valid": valid.astype(np.float32)}


class _Recorder:
    """Wraps the stream and keeps a host copy of every batch handed to the loop."""

    def __init__(self, it):
        self.it, self.seen = it, []

    def __next__(self):
        b = next(self.it)
        self.seen.append(jax.tree.map(np.asarray, b))
        return b


def _loss(params, constants, batch, rng):
    del constants, rng
    err = (batch["x"] @ params["w"] - batch["y"]) ** 2
    return jnp.sum(err * batch["valid"]) / jnp.sum(batch["valid"]), {}


@pytest.mark.parametrize("log_every", [1, 4])
def test_logged_loss_is_each_batch_own_loss(tmp_path, log_every):
    x, y = _data()
    stream = step_stream(RECORDS, lambda idx: _collate(x, y, idx), micro_batch_size=BATCH,
                         seed=3, prefetch=0)  # fmt: skip
    batches = _Recorder(stream)
    mesh = make_mesh({"data": 1, "fsdp": 1, "tensor": 1})
    tx = optax.sgd(0.0)  # fixed weights: each step's loss depends on its batch only
    state = TrainState.create({"w": jnp.asarray(W0)}, tx)
    rep = jax.tree.map(lambda _: replicated(mesh), state)
    step = jit_train_step(make_train_step(_loss, tx), mesh, rep, data_sharding(mesh))
    result = train_loop(
        step_fn=step, state=jax.device_put(state, rep), batches=batches, num_steps=STEPS,
        workdir=str(tmp_path), batch_sharding=data_sharding(mesh), log_every=log_every,
        progress=False,
    )  # fmt: skip
    assert len(batches.seen) == STEPS
    want = []
    for b in batches.seen:
        v = b["valid"] > 0
        want.append(float(np.mean((b["x"][v] @ W0 - b["y"][v]) ** 2)))
    assert [int(b["valid"].sum()) for b in batches.seen] == [4, 4, 2, 4, 4, 2]
    rows = [r for r in read_jsonl(str(tmp_path / "metrics.jsonl")) if "loss" in r]
    logged = {r["step"]: r["loss"] for r in rows}
    expect_steps = [s for s in range(1, STEPS + 1) if s % log_every == 0 or s == STEPS]
    assert sorted(logged) == expect_steps
    for s in expect_steps:
        np.testing.assert_allclose(logged[s], want[s - 1], rtol=1e-5, err_msg=f"step {s}")
    np.testing.assert_allclose(result.last_metrics["loss"], want[-1], rtol=1e-5)
