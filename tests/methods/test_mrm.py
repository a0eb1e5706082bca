"""MRM end to end: meta-step equivalences, sharding, resume, errors and the launcher."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import mrm as mrm_configs
from configs.common import set_path
from jaxmethods.data.synthetic_prefs import make_synthetic_corpus
from jaxmethods.methods.mrm import run as mrm_run
from jaxmethods.methods.mrm.config import from_config_dict
from jaxmethods.methods.mrm.objective import make_meta_grad_fn, per_user_loop_grads, split_model
from jaxmethods.methods.mrm.tasks import MetaTaskIterator
from jaxmethods.models.personalized_reward import PersonalizedReward
from jaxmethods.train.config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny(**overrides):
    c = mrm_configs.get_config("tiny")
    for key, value in overrides.items():
        set_path(c, key, value)
    return c


@pytest.fixture(scope="module")
def problem():
    corpus, _ = make_synthetic_corpus(12, 8, pairs_per_user=(6, 12), convs_per_user=(2, 4), seed=3)
    seen, _ = corpus.seen_unseen(3)
    model = PersonalizedReward(corpus.dim, (2,), rngs=nnx.Rngs(0))
    graphdef, params = split_model(model)
    tasks = MetaTaskIterator(corpus, seen, tasks_per_batch=4, val_ratio=0.5, seed=3)
    batch = jax.tree.map(jnp.asarray, next(tasks))
    return graphdef, params, batch, jnp.asarray(corpus.embeddings * 20.0)


# The per-user reference loop compiles one program per user (> 40 s on 2 cores); the generic meta
# module's hypergradients are checked against finite differences in tests/train/test_meta.py.
@pytest.mark.slow
@pytest.mark.parametrize("hypergrad", ["second_order", "first_order"])
def test_vmapped_meta_step_equals_per_user_loop(problem, hypergrad):
    graphdef, params, batch, emb = problem
    cfg = from_config_dict(tiny(**{"meta.hypergrad": hypergrad, "meta.inner.lr": 0.1}))
    (obj, _), grads = make_meta_grad_fn(graphdef, cfg.meta)(params, emb, batch, None)
    obj_loop, grads_loop = per_user_loop_grads(graphdef, cfg.meta, params, batch, emb)
    np.testing.assert_allclose(obj, obj_loop, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_loop)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.slow  # > 15 s on 2 cores
def test_forward_mode_equals_reverse_and_padding_tasks_do_not_count(problem):
    graphdef, params, batch, emb = problem
    get = lambda mode, b: make_meta_grad_fn(
        graphdef, from_config_dict(tiny(**{"meta.hypergrad": mode})).meta
    )(params, emb, b, None)
    (o2, _), g2 = get("second_order", batch)
    (of, _), gf = get("forward", batch)
    np.testing.assert_allclose(o2, of, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g2), jax.tree.leaves(gf)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    # Masking out a task equals dropping it (partial meta-batch at the end of an epoch).
    masked = dict(batch, task_mask=jnp.array([True, True, True, False]))
    dropped = jax.tree.map(lambda x: x[:3], batch)
    (om, _), gm = get("second_order", masked)
    (od, _), gd = get("second_order", dropped)
    np.testing.assert_allclose(om, od, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(gm), jax.tree.leaves(gd)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
        assert np.all(np.isfinite(a))


def test_support_query_redrawn_every_epoch_and_state_roundtrip(problem):
    corpus, _ = make_synthetic_corpus(12, 8, pairs_per_user=(6, 12), convs_per_user=(3, 5), seed=3)
    seen, _ = corpus.seen_unseen(3)
    it = MetaTaskIterator(corpus, seen, tasks_per_batch=4, val_ratio=0.5, seed=3)
    first = [next(it) for _ in range(it.batches_per_epoch)]
    assert it.get_state() == {"epoch": 2, "batch": 0}
    second = next(it)
    assert not all(np.array_equal(a, b) for a, b in zip(first[0]["support"], second["support"]))
    it2 = MetaTaskIterator(corpus, seen, tasks_per_batch=4, val_ratio=0.5, seed=3)
    it2.set_state({"epoch": 2, "batch": 0})
    again = next(it2)
    for a, b in zip(jax.tree.leaves(second), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)


def metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow  # > 20 s on 2 cores
def test_sharded_over_4_devices_matches_one_device(tmp_path):
    common = {"meta.tasks_per_batch": 4, "data.num_users": 16, "epochs": 2, "meta.inner.lr": 0.1}
    one = mrm_run.run(tiny(**common, mesh={"data": 1, "fsdp": 1, "tensor": 1}), str(tmp_path / "1"))
    four = mrm_run.run(
        tiny(**common, mesh={"data": 4, "fsdp": 1, "tensor": 1}), str(tmp_path / "4")
    )
    for key in ("eval/overall_acc", "eval/seen_acc", "eval/unseen_acc"):
        np.testing.assert_allclose(one[key], four[key], rtol=1e-5)
    l1 = [r["loss"] for r in metrics(tmp_path / "1") if "loss" in r]
    l4 = [r["loss"] for r in metrics(tmp_path / "4") if "loss" in r]
    np.testing.assert_allclose(l1, l4, rtol=1e-5)


def test_kill_and_resume_gives_the_same_loss_trajectory(tmp_path, monkeypatch):
    cfg = {"epochs": 3, "loop.checkpoint_every": 4, "loop.log_every": 1}
    mrm_run.run(tiny(**cfg), str(tmp_path / "straight"))
    original = MetaTaskIterator.__next__
    calls = {"n": 0}

    def killed(self):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt  # dies after the step-4 checkpoint (2 steps per epoch)
        return original(self)

    monkeypatch.setattr(MetaTaskIterator, "__next__", killed)
    with pytest.raises(KeyboardInterrupt):
        mrm_run.run(tiny(**cfg), str(tmp_path / "killed"))
    monkeypatch.setattr(MetaTaskIterator, "__next__", original)
    resumed = mrm_run.run(tiny(**cfg), str(tmp_path / "killed"))
    assert resumed["resumed_from"] == 4
    loss = lambda d: [(r["step"], r["loss"]) for r in metrics(d) if "loss" in r]
    assert loss(tmp_path / "straight") == loss(tmp_path / "killed")


@pytest.mark.slow  # > 15 s on 2 cores
def test_demo_like_run_beats_global_baseline_and_adaptation_helps(tmp_path):
    c = mrm_configs.get_config("demo")
    c.data.num_users = 120
    c.epochs = 20
    c.peers = ()
    c.loop.progress = False
    s = mrm_run.run(c, str(tmp_path))
    assert s["eval/unseen_acc"] > s["baseline/unseen_acc"] + 0.03
    assert s["eval/overall_acc"] > 0.7
    assert s["eval/overall_acc"] >= s["no_adapt/overall_acc"]


def test_unknown_key_missing_path_and_malformed_row_errors(tmp_path):
    bad = tiny()
    bad.meta.unlock()
    bad.meta.inner_lr = 0.1
    with pytest.raises(ConfigError, match=r"config\.meta\.inner_lr: unknown field"):
        mrm_run.run(bad, str(tmp_path / "a"))
    with pytest.raises(ValueError, match=r"config\.data\.path"):
        mrm_run.run(tiny(**{"data.source": "corpus"}), str(tmp_path / "b"))
    corpus_dir = tmp_path / "corpus"
    from jaxmethods.data.preferences import save_corpus

    corpus, _ = make_synthetic_corpus(4, 4, pairs_per_user=(4, 6), convs_per_user=(2, 3), seed=0)
    save_corpus(corpus, corpus_dir)
    lines = (corpus_dir / "pairs.jsonl").read_text().splitlines()
    lines[2] = '{"user": "u0", "chosen": 1'
    (corpus_dir / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"pairs\.jsonl:3: malformed"):
        mrm_run.run(
            tiny(**{"data.source": "corpus", "data.path": str(corpus_dir)}), str(tmp_path / "c")
        )


def read_json(path):
    with open(path) as f:
        return json.load(f)


def launch(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "launch/run.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


@pytest.mark.slow  # > 15 s on 2 cores
def test_launcher_runs_tiny_end_to_end_and_resumes(tmp_path):
    workdir = str(tmp_path / "run")
    first = launch("--config", "configs/mrm.py:tiny", "--workdir", workdir, "--config.epochs=2")
    assert first.returncode == 0, first.stderr[-3000:]
    summary = read_json(os.path.join(workdir, "summary.json"))
    assert summary["step"] == 4 and summary["resumed_from"] == 0  # 2 epochs x 2 meta-batches
    second = launch("--config", "configs/mrm.py:tiny", "--workdir", workdir, "--config.epochs=2")
    assert second.returncode == 0, second.stderr[-3000:]
    summary = read_json(os.path.join(workdir, "summary.json"))
    assert summary["resumed_from"] == 4
    steps = [r["step"] for r in metrics(workdir) if "loss" in r]
    assert steps == sorted(set(steps))  # no step repeated
    bad = launch("--config", "configs/mrm.py:tiny", "--workdir", workdir, "--config.meta.nope=1")
    assert bad.returncode != 0 and "nope" in bad.stderr
