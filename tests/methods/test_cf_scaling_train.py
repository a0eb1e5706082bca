"""Training: a model beats popularity on planted data, resume, and `tiny` through launch/run.py."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxmethods.data.recsys import CFDataConfig, load_cf_split
from jaxmethods.eval.ranking import full_sort_metrics
from jaxmethods.methods.cf_scaling import trainer
from jaxmethods.methods.cf_scaling.config import CFScalingConfig, TrainConfig
from jaxmethods.methods.cf_scaling.plan import Group, Replica
from jaxmethods.methods.cf_scaling.prepare import PreparedData
from jaxmethods.methods.cf_scaling.run import run
from jaxmethods.train.mesh import make_mesh

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cfg(data: CFDataConfig, **train) -> CFScalingConfig:
    train = {"fast_compile": True, **train}
    return CFScalingConfig(data=data, train=TrainConfig(**train), progress=False)


def test_bpr_beats_popularity_on_planted_structure(tmp_path):
    data_cfg = CFDataConfig(
        n_users=300, n_items=200, rank=8, interactions_per_user=20, sharpness=3.0
    )
    cfg = _cfg(data_cfg, lr=1e-2, batch_size=512, max_epochs=15, patience=15, checkpoint_every=0)
    data = PreparedData.from_split(load_cf_split(data_cfg))
    mesh = make_mesh(cfg.mesh)
    group = Group("bpr", (Replica(8, 0), Replica(32, 0)))
    rows = trainer.train_group(cfg, group, data, mesh, str(tmp_path))
    _, _, epoch_fn, eval_fn = trainer.build_group_fns(cfg, group, data, mesh)
    assert epoch_fn._cache_size() == 1  # one compilation for every epoch
    assert eval_fn._cache_size() == 1  # validation and test share one compiled evaluation

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
    assert [r["step"] for r in rows_jsonl] == list(range(1, rows[0]["epochs_run"] + 1))


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
    c.progress = False
    c.train.batch_size = 64
    c.train.fast_compile = True
    c.train.checkpoint_every = 1
    for k, v in overrides.items():
        c.train[k] = v
    return c


def test_single_recbole_run_resumes_after_interruption(tmp_path, monkeypatch):
    """The `recbole` variant on a shipped `.inter` file; interrupted after epoch 2, it resumes
    from its checkpoint (metrics continue at epoch 3 instead of starting over)."""
    monkeypatch.setattr(trainer.shutil, "rmtree", lambda *a, **k: None)  # the "interruption"
    run(_recbole_config(max_epochs=2, patience=50), str(tmp_path))
    monkeypatch.undo()
    summary = run(_recbole_config(max_epochs=3, patience=50), str(tmp_path))
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3] and summary["epochs_run"] == 3
    for key in ("test/ndcg@20", "test/recall@20", "valid/ndcg@20", "best_epoch", "epoch_time_s"):
        assert np.isfinite(summary[key]), key
    assert summary["data"]["n_users"] == 6 and summary["model"] == "bpr"
    assert not os.path.exists(tmp_path / "checkpoints")  # removed once the run finished


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
    assert set(summary["shapes"]) == {"bpr", "lightgcn"}
    assert set(summary["shapes"].values()) <= {"double-peak", "logarithmic", "other"}
    lines = (tmp_path / "results.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 2 * 2  # header + 2 models x 2 sizes
    assert lines[0].startswith("model,dim,seed,test/ndcg@20,test/recall@20,valid/ndcg@20")


def test_sharded_replicas_and_tables_match_replicated(tmp_path):
    """On 4 devices: 4 replicas split over devices, and one table split along its embedding
    dimension, give the results of the replicated layout."""
    data_cfg = CFDataConfig(n_users=40, n_items=32, interactions_per_user=6)
    data = PreparedData.from_split(load_cf_split(data_cfg))
    mesh = make_mesh({"data": 1, "fsdp": 4, "tensor": 1})
    cfg = _cfg(data_cfg, batch_size=64, max_epochs=2, checkpoint_every=0)
    group = Group("lightgcn", (Replica(2, 0), Replica(4, 0), Replica(8, 0), Replica(8, 1)))
    with jax.set_mesh(mesh):
        _, init_fn, _, _ = trainer.build_group_fns(cfg, group, data, mesh)
        assert init_fn().params["user_emb"].sharding.spec[0] == "fsdp"
    packed = trainer.train_group(cfg, group, data, mesh, str(tmp_path / "a"))
    single = Group("lightgcn", (Replica(8, 0),))
    replicated = trainer.train_group(cfg, single, data, mesh, str(tmp_path / "b"))
    cfg_dim = dataclasses.replace(cfg, sweep=dataclasses.replace(cfg.sweep, shard_min_dim=8))
    with jax.set_mesh(mesh):
        _, init_fn, _, _ = trainer.build_group_fns(cfg_dim, single, data, mesh)
        assert init_fn().params["item_emb"].sharding.spec[2] == "fsdp"
    dim_sharded = trainer.train_group(cfg_dim, single, data, mesh, str(tmp_path / "c"))
    for key in ("valid/ndcg@20", "test/ndcg@20", "test/recall@10"):
        np.testing.assert_allclose(packed[2][key], replicated[0][key], rtol=1e-4)
        np.testing.assert_allclose(dim_sharded[0][key], replicated[0][key], rtol=1e-4)
