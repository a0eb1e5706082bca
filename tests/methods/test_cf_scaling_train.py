"""Training: a model beats popularity on planted data, resume, and `tiny` through launch/run.py."""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.data.recsys import CFDataConfig, load_cf_split
from jaxmethods.eval.ranking import full_sort_metrics
from jaxmethods.methods.cf_scaling import trainer
from jaxmethods.methods.cf_scaling.config import CFScalingConfig, TrainConfig, cf_optim
from jaxmethods.methods.cf_scaling.plan import Group, Replica
from jaxmethods.methods.cf_scaling.prepare import PreparedData
from jaxmethods.methods.cf_scaling.run import run
from jaxmethods.train.loop import NonFiniteLossError, Preempted
from jaxmethods.train.mesh import make_mesh
from jaxmethods.train.trainer import LoopConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cfg(data: CFDataConfig, lr: float = 1e-3, checkpoint_every: int = 0, **train):
    train = {"fast_compile": True, **train}
    return CFScalingConfig(
        data=data,
        train=TrainConfig(**train),
        optim=cf_optim(lr),
        loop=LoopConfig(checkpoint_every=checkpoint_every, log_every=1, progress=False),
    )


@pytest.mark.slow  # > 15 s on 2 cores
def test_bpr_beats_popularity_on_planted_structure(tmp_path):
    data_cfg = CFDataConfig(
        n_users=300, n_items=200, rank=8, interactions_per_user=20, sharpness=3.0
    )
    cfg = _cfg(data_cfg, lr=1e-2, batch_size=512, max_epochs=15, patience=15, checkpoint_every=0)
    data = PreparedData.from_split(load_cf_split(data_cfg))
    mesh = make_mesh(cfg.mesh)
    group = Group("bpr", (Replica(8, 0), Replica(32, 0)))
    rows = trainer.train_group(cfg, group, data, mesh, str(tmp_path))
    fns = trainer.build_group_fns(cfg, group, data, mesh)
    assert fns.step_fn._cache_size() == 1  # one compilation for every epoch

    popularity = jnp.asarray(
        np.bincount(data.split.train.item, minlength=data.n_items), jnp.float32
    )
    _, test_data = data.eval_data(64)
    pop = full_sort_metrics(
        lambda u: jnp.broadcast_to(popularity, (u.shape[0], data.n_items)), test_data
    )
    for row in rows:
        assert row["test/ndcg@20"] > 1.3 * float(pop["ndcg@20"]), (row, pop)
        assert row["test/recall@20"] > float(pop["recall@20"])
        assert 1 <= row["best_epoch"] <= row["epochs_run"] <= 15
    rows_jsonl = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r["step"] for r in rows_jsonl if "loss" in r]
    eval_rows = [r["step"] for r in rows_jsonl if "valid/ndcg@20" in r]
    assert train_rows == eval_rows == list(range(1, rows[0]["epochs_run"] + 1))


def _recbole_config(**overrides):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "cf_scaling_config", os.path.join(ROOT, "configs", "cf_scaling.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config("recbole")
    c.data.path = os.path.join(ROOT, "tests", "data", "recsys")
    c.data.name = "ml-tiny"
    c.embed_dim = 4
    c.loop.progress = False
    c.loop.checkpoint_every = 1
    c.loop.keep_checkpoints = 2
    c.loop.async_checkpoint = False
    c.train.batch_size = 64
    c.train.fast_compile = True
    for k, v in overrides.items():
        c.train[k] = v
    return c


def _steps(path) -> tuple[list[int], list[int]]:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return [r["step"] for r in rows if "loss" in r], [
        r["step"] for r in rows if "valid/running" in r
    ]


@pytest.mark.slow  # > 20 s on 2 cores
def test_single_recbole_run_resumes_after_interruption(tmp_path, monkeypatch):
    """The `recbole` variant on a shipped `.inter` file; interrupted after epoch 2, it resumes
    from its checkpoint (metrics continue at epoch 3 instead of starting over)."""
    monkeypatch.setattr(trainer.shutil, "rmtree", lambda *a, **k: None)  # the "interruption"
    run(_recbole_config(max_epochs=2, patience=50), str(tmp_path))
    monkeypatch.undo()
    summary = run(_recbole_config(max_epochs=3, patience=50), str(tmp_path))
    assert _steps(tmp_path / "metrics.jsonl") == ([1, 2, 3], [1, 2, 3])
    assert summary["epochs_run"] == 3
    for key in ("test/ndcg@20", "test/recall@20", "valid/ndcg@20", "best_epoch", "epoch_time_s"):
        assert np.isfinite(summary[key]), key
    assert summary["data/n_users"] == 6 and summary["model"] == "bpr"
    assert summary["artifacts"]["result"] == str(tmp_path / "result.json")
    assert not os.path.exists(tmp_path / "checkpoints")  # removed once the run finished


class _SigtermAt(trainer.EpochCounter):
    """Sends this process SIGTERM when the loop asks for epoch `at` (0-based)."""

    at = 3

    def __next__(self):
        if self.epoch == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().__next__()


def test_sigterm_saves_and_a_corrupt_newest_checkpoint_falls_back(tmp_path, monkeypatch):
    """SIGTERM during epoch 4 saves epoch 4 and exits 0 (`Preempted`); the newest checkpoint is
    then corrupted, and the rerun resumes from epoch 3 and ends with exactly the result of an
    uninterrupted run, with each epoch logged once."""
    config = _recbole_config(max_epochs=6, patience=50)
    want = run(config, str(tmp_path / "clean"))
    work = tmp_path / "cut"
    monkeypatch.setattr(trainer, "EpochCounter", _SigtermAt)
    with pytest.raises(Preempted) as stop:
        run(config, str(work))
    monkeypatch.undo()
    assert stop.value.code == 0 and stop.value.step == 4
    saved = sorted(int(p.name) for p in (work / "checkpoints").iterdir() if p.name.isdigit())
    assert saved == [3, 4]
    for f in (work / "checkpoints" / "4").rglob("*"):
        if f.is_file():
            f.write_bytes(b"\0garbage")
    got = run(config, str(work))
    assert _steps(work / "metrics.jsonl") == ([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6])
    for key in ("test/ndcg@20", "test/recall@20", "valid/ndcg@20", "best_epoch", "epochs_run"):
        assert got[key] == want[key], key


@pytest.mark.slow  # > 20 s on 2 cores
def test_a_non_finite_replica_fails_the_run_after_the_results(tmp_path, monkeypatch):
    """The d=2 replica's loss is made NaN; the d=4 replica trains on, every result file is
    written, and the run raises NonFiniteLossError naming the d=2 replica."""
    real = trainer.get_model_def

    def poisoned(name, hp, **kw):
        mdef = real(name, hp, **kw)

        def loss(params, ctx, batch, rng):
            value, metrics = mdef.loss(params, ctx, batch, rng)
            narrow = jnp.all(params["user_emb"][:, -1] == 0)  # d=2 zero-padded to 4
            return value + jnp.where(narrow, jnp.nan, 0.0), metrics

        return dataclasses.replace(mdef, loss=loss)

    trainer._build_group_fns.cache_clear()
    monkeypatch.setattr(trainer, "get_model_def", poisoned)
    from configs.cf_scaling import get_config

    config = get_config("tiny,models=bpr,epochs=3")
    try:
        with pytest.raises(NonFiniteLossError, match=r"bpr d=2 seed=0") as err:
            run(config, str(tmp_path))
    finally:
        trainer._build_group_fns.cache_clear()
    assert "d=4" not in str(err.value)
    result = json.loads((tmp_path / "groups" / "bpr_d2-4_s0" / "result.json").read_text())
    assert [(r["dim"], r["status"]) for r in result] == [(2, "non-finite"), (4, "max-epochs")]
    assert "valid/ndcg@20" not in result[0] and np.isfinite(result[1]["test/ndcg@20"])
    for name in ("results.csv", "results.md", "curves.json", "scaling.png"):
        assert (tmp_path / name).exists(), name


def test_tiny_sweep_through_launch(tmp_path):
    env = dict(os.environ)
    # A smoke test of the whole CLI path: skip LLVM's optimisation passes to cut compile time.
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [
        sys.executable,
        os.path.join(ROOT, "launch", "run.py"),
        f"--config={os.path.join(ROOT, 'configs', 'cf_scaling.py')}:tiny",
        f"--workdir={tmp_path}",
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for name in ("results.csv", "scaling.png", "results.md", "curves.json", "summary.json"):
        assert (tmp_path / name).exists(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    for model in ("bpr", "lightgcn"):
        assert summary[f"{model}/shape"] in {"double-peak", "logarithmic", "other"}
    assert set(summary["artifacts"]) == {"scaling.png", "results.csv"}
    assert np.isfinite(summary["popularity/test/ndcg@20"])
    lines = (tmp_path / "results.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 2 * 2  # header + 2 models x 2 sizes
    assert lines[0].startswith("model,dim,seed,test/ndcg@20,test/recall@20,valid/ndcg@20")


@pytest.mark.slow  # > 15 s on 2 cores
def test_group_stops_when_its_last_replica_stops(tmp_path):
    """RecBole's per-replica rule (stop after patience + 1 epochs without a value >= the best)
    inside the step, and the loop's stop at that epoch; checkpointing every 4 epochs changes
    neither the stop nor the results."""
    data_cfg = CFDataConfig(n_users=40, n_items=32, interactions_per_user=6)
    data = PreparedData.from_split(load_cf_split(data_cfg))
    mesh = make_mesh({"data": 1, "fsdp": 1, "tensor": 1})
    group = Group("bpr", (Replica(2, 0), Replica(4, 0)))
    every_epoch = _cfg(data_cfg, lr=1e-2, batch_size=64, max_epochs=30, patience=1)
    rows = trainer.train_group(every_epoch, group, data, mesh, str(tmp_path / "a"))
    stops = [r["best_epoch"] + 2 if r["status"] == "early-stopped" else 30 for r in rows]
    assert "early-stopped" in {r["status"] for r in rows}
    assert rows[0]["epochs_run"] == max(stops)
    hook = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    running = [r["valid/running"] for r in hook if "valid/running" in r]
    assert running == [sum(s > e for s in stops) for e in range(1, max(stops) + 1)]
    every_4 = dataclasses.replace(every_epoch, loop=LoopConfig(checkpoint_every=4, progress=False))
    again = trainer.train_group(every_4, group, data, mesh, str(tmp_path / "b"))
    for a, b in zip(rows, again):
        assert {k: v for k, v in a.items() if k != "epoch_time_s"} == {
            k: v for k, v in b.items() if k != "epoch_time_s"
        }


@pytest.mark.slow  # > 30 s on 2 cores
def test_sharded_replicas_and_tables_match_replicated(tmp_path):
    """On 4 devices: 4 replicas split over devices, and one table split along its embedding
    dimension, give the results of the replicated layout."""
    data_cfg = CFDataConfig(n_users=40, n_items=32, interactions_per_user=6)
    data = PreparedData.from_split(load_cf_split(data_cfg))
    mesh = make_mesh({"data": 1, "fsdp": 4, "tensor": 1})
    cfg = _cfg(data_cfg, batch_size=64, max_epochs=2, checkpoint_every=0)
    group = Group("lightgcn", (Replica(2, 0), Replica(4, 0), Replica(8, 0), Replica(8, 1)))
    with jax.set_mesh(mesh):
        fns = trainer.build_group_fns(cfg, group, data, mesh)
        assert fns.start_fn()["train"].params["user_emb"].sharding.spec[0] == "fsdp"
    packed = trainer.train_group(cfg, group, data, mesh, str(tmp_path / "a"))
    single = Group("lightgcn", (Replica(8, 0),))
    replicated = trainer.train_group(cfg, single, data, mesh, str(tmp_path / "b"))
    cfg_dim = dataclasses.replace(cfg, sweep=dataclasses.replace(cfg.sweep, shard_min_dim=8))
    with jax.set_mesh(mesh):
        fns = trainer.build_group_fns(cfg_dim, single, data, mesh)
        assert fns.start_fn()["train"].params["item_emb"].sharding.spec[2] == "fsdp"
    dim_sharded = trainer.train_group(cfg_dim, single, data, mesh, str(tmp_path / "c"))
    for key in ("valid/ndcg@20", "test/ndcg@20", "test/recall@10"):
        np.testing.assert_allclose(packed[2][key], replicated[0][key], rtol=1e-4)
        np.testing.assert_allclose(dim_sharded[0][key], replicated[0][key], rtol=1e-4)
