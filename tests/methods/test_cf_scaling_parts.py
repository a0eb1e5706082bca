"""Pieces of the scaling study: curve classifier, replica planning, sharding rules, sampler."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxmethods.methods.cf_scaling.config import from_config_dict
from jaxmethods.methods.cf_scaling.curves import classify_curve, find_double_peak
from jaxmethods.methods.cf_scaling.plan import Group, Replica, group_rules, plan_groups
from jaxmethods.methods.cf_scaling.report import curves, markdown_table
from jaxmethods.methods.cf_scaling.sampler import build_train_pairs, epoch_batches, is_positive
from jaxmethods.train.config import ConfigError
from jaxmethods.train.mesh import make_mesh

DIMS = [2**k for k in range(1, 16)]


def test_classifier_on_hand_made_curves():
    x = np.arange(1, 16, dtype=float)
    log_curve = 0.27 + 0.19 * np.log(x) / np.log(15)  # ModCloth BPR: monotone, saturating
    assert classify_curve(DIMS, log_curve) == "logarithmic"
    flat = 0.52 + 0.0005 * np.sin(x)  # SGL on Douban: flat
    assert classify_curve(DIMS, flat) == "logarithmic"
    # Douban BPR (Figure 1): rise to 0.655 at 2^8, dip to 0.623 at 2^12, 0.627 at 2^13, 0.603.
    douban = np.interp(x, [1, 8, 12, 13, 15], [0.40, 0.655, 0.623, 0.627, 0.603])
    assert classify_curve(DIMS, douban) == "double-peak"
    assert find_double_peak(douban, 0.003 * 0.655) == (7, 11, 12)
    # One peak then a collapse, and a falling curve: neither shape.
    single = np.interp(x, [1, 8, 15], [0.30, 0.50, 0.35])
    assert classify_curve(DIMS, single) == "other"
    assert classify_curve(DIMS, log_curve[::-1]) == "other"
    # LightGCN on Douban: peak 0.689 then a mild decline to 0.663 keeps most of the gain.
    lgcn = np.interp(x, [1, 9, 15], [0.45, 0.689, 0.663])
    assert classify_curve(DIMS, lgcn) == "logarithmic"
    # Order of the dims does not matter; a wiggle below tolerance is not a second peak.
    perm = np.random.default_rng(0).permutation(15)
    assert classify_curve(np.array(DIMS)[perm], douban[perm]) == "double-peak"
    wiggle = log_curve + np.where(np.arange(15) == 9, -0.0005, 0.0)
    assert classify_curve(DIMS, wiggle) == "logarithmic"


def test_curves_aggregate_seeds_and_table():
    rows = [
        {"model": "bpr", "dim": d, "seed": s, "test/ndcg@20": 0.1 * np.log2(d) + 0.01 * s}
        for d in (2, 4, 8)
        for s in (0, 1)
    ]
    c = curves(rows)["bpr"]
    assert c["dims"] == [2, 4, 8]
    np.testing.assert_allclose(c["mean"], [0.105, 0.205, 0.305])
    np.testing.assert_allclose(c["max"], [0.11, 0.21, 0.31])
    # Population std over seeds: |0.01 - 0| / 2 at every size.
    np.testing.assert_allclose(c["std"], [0.005] * 3, rtol=1e-9)
    assert c["n"] == [2, 2, 2]
    table = markdown_table(curves(rows), {"bpr": "logarithmic"})
    want = "| bpr | 0.1050 ± 0.0050 | 0.2050 ± 0.0050 | 0.3050 ± 0.0050 | logarithmic |"
    assert want in table
    one_seed = markdown_table(curves([r for r in rows if r["seed"] == 0]), {"bpr": "x"})
    assert "| bpr | 0.1000 | 0.2000 | 0.3000 | x |" in one_seed


def test_plot_draws_a_mean_std_band_per_model_with_seeds(tmp_path, monkeypatch):
    import matplotlib.axes

    from jaxmethods.methods.cf_scaling.report import plot_curves

    bands = []
    original = matplotlib.axes.Axes.fill_between
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "fill_between",
        lambda self, x, lo, hi, **kw: bands.append((x, lo, hi)) or original(self, x, lo, hi, **kw),
    )
    rows = [
        {"model": "bpr", "dim": d, "seed": s, "test/ndcg@20": 0.1 * np.log2(d) + 0.02 * s}
        for d in (2, 4)
        for s in (0, 1, 2)
    ]
    plot_curves(str(tmp_path / "p.png"), curves(rows), {"bpr": "logarithmic"}, baseline=0.05)
    assert (tmp_path / "p.png").stat().st_size > 1000
    (x, lo, hi) = bands[0]
    std = np.std([0.0, 0.02, 0.04])
    np.testing.assert_allclose(x, [1, 2])
    np.testing.assert_allclose(lo, [0.12 - std, 0.22 - std])
    np.testing.assert_allclose(hi, [0.12 + std, 0.22 + std])


def test_plan_groups_packs_small_dims():
    groups = plan_groups("bpr", DIMS, (0, 1), pack_max_dim=128, max_group_replicas=8)
    packed = [g for g in groups if len({r.dim for r in g.replicas}) > 1]
    assert [len(g.replicas) for g in packed] == [8, 6]
    assert packed[0].padded_dim == 16 and packed[1].padded_dim == 128
    singles = groups[len(packed) :]
    assert [g.padded_dim for g in singles] == DIMS[7:]
    assert all(len(g.replicas) == 2 for g in singles)
    covered = {(r.dim, r.seed) for g in groups for r in g.replicas}
    assert covered == {(d, s) for d in DIMS for s in (0, 1)}
    assert packed[0].name == "bpr_d2-16_s0-1"


def test_group_rules_choose_replica_dim_or_no_sharding():
    mesh = make_mesh({"data": 1, "fsdp": 4, "tensor": 1})
    kw = {"shard_min_dim": 1024, "shard_axis": "dim"}
    four = Group("bpr", tuple(Replica(d, 0) for d in (2, 4, 8, 16)))
    assert group_rules(four, mesh, **kw) == [(".*", P("fsdp"))]
    big = Group("bpr", (Replica(4096, 0),))
    assert group_rules(big, mesh, **kw) == [(r"_emb$", P(None, None, "fsdp"))]
    rows = group_rules(big, mesh, shard_min_dim=1024, shard_axis="rows")
    assert rows == [(r"_emb$", P(None, "fsdp", None))]
    small = Group("bpr", (Replica(64, 0),))
    assert group_rules(small, mesh, **kw) == [(".*", P())]


def _configs():
    import importlib.util
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(root, "configs", "cf_scaling.py")
    spec = importlib.util.spec_from_file_location("cf_scaling_configs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_dim_presets_and_shortcuts():
    cf_scaling = _configs()
    cfg = from_config_dict(cf_scaling.get_config("sweep,dataset=modcloth,path=/data"))
    assert cfg.data.name == "modcloth" and cfg.sweep.preset == "modcloth"
    assert max(cfg.sweep.dims_for("bpr")) == 2**14 and max(cfg.sweep.dims_for("neumf")) == 2**14
    assert max(cfg.sweep.dims_for("lightgcn")) == 2**12 and max(cfg.sweep.dims_for("sgl")) == 2**12
    assert cfg.sweep.dims_for("sgl") == [2**k for k in range(1, 13)]
    cfg = from_config_dict(cf_scaling.get_config("sweep,dataset=ML-100k,path=/d"))
    assert cfg.data.name == "ML-100k" and cfg.sweep.preset == "ml-100k"
    assert all(max(cfg.sweep.dims_for(m)) == 2**15 for m in cfg.sweep.models)
    # max_dim caps further; an unknown dataset name has no preset.
    c = cf_scaling.get_config("sweep,dataset=modcloth,path=/d,sweep.max_dim.bpr=256")
    assert max(from_config_dict(c).sweep.dims_for("bpr")) == 256
    assert from_config_dict(cf_scaling.get_config("sweep,dataset=yelp,path=/d")).sweep.preset == ""
    c = cf_scaling.get_config("demo,seeds=0+1+2,neumf_mlp=recbole,noise=0.3,lr=0.01")
    cfg = from_config_dict(c)
    assert cfg.sweep.seeds == (0, 1, 2) and cfg.data.noise_frac == 0.3
    assert cfg.model_hparams("neumf").mlp_hidden == (128, 64) and cfg.optim.lr == 0.01
    assert cfg.optim.optimizer == "adam" and cfg.optim.max_grad_norm == 0
    with pytest.raises(ValueError, match="neumf_mlp"):
        cf_scaling.get_config("demo,neumf_mlp=wide")
    with pytest.raises(ValueError, match="unknown key 'seed_list'"):
        cf_scaling.get_config("demo,seed_list=1")


def test_every_config_variant_converts():
    cf_scaling = _configs()
    for variant in cf_scaling.VARIANTS:
        c = cf_scaling.get_config(variant)
        if c.data.source == "atomic":
            c.data.path = "/data/ml-100k"  # required for real datasets; not read here
        cfg = from_config_dict(c)
        assert cfg.method == "cf_scaling" and cfg.name == f"cf_scaling_{variant}"
    with pytest.raises(ValueError, match="unknown variant"):
        cf_scaling.get_config("paper")


def test_config_errors_name_the_field():
    cf_scaling = _configs()
    c = cf_scaling.get_config("tiny")
    c.model = "mf"
    with pytest.raises(ConfigError, match=r"config\.model"):
        from_config_dict(c)
    c = cf_scaling.get_config("tiny")
    c.sweep.dims = (2, 3)
    with pytest.raises(ConfigError, match=r"config.sweep.dims: \[3\]"):
        from_config_dict(c)
    c = cf_scaling.get_config("tiny")
    c.hparams.sgl = {"temprature": 0.2}
    with pytest.raises(ConfigError, match=r"config\.hparams\.sgl\.temprature"):
        from_config_dict(c)
    c = cf_scaling.get_config("recbole")
    with pytest.raises(ConfigError, match=r"config\.data\.path"):
        from_config_dict(c)


def test_epoch_batches_cover_pairs_and_negatives_avoid_positives():
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 12
    key = np.unique(rng.integers(0, n_users * n_items, 200))
    users, items = key // n_items, key % n_items
    pairs = build_train_pairs(users, items, n_users, n_items)
    positive = set(zip(users.tolist(), items.tolist()))
    probe_u = jnp.asarray(rng.integers(0, n_users, 500))
    probe_i = jnp.asarray(rng.integers(0, n_items, 500))
    found = jax.jit(is_positive)(pairs, probe_u, probe_i)
    want = [(u, i) in positive for u, i in zip(probe_u.tolist(), probe_i.tolist())]
    np.testing.assert_array_equal(found, want)

    fn = jax.jit(
        lambda k: epoch_batches(k, pairs, batch_size=64, neg_rounds=8, first_step=jnp.int32(6))
    )
    b = jax.tree.map(np.asarray, fn(jax.random.PRNGKey(1)))
    assert b["user"].shape == (-(-len(users) // 64), 64)
    np.testing.assert_array_equal(b["step"], 6 + np.arange(b["user"].shape[0]))
    m = b["mask"].reshape(-1)
    seen = sorted(zip(b["user"].reshape(-1)[m].tolist(), b["pos"].reshape(-1)[m].tolist()))
    assert seen == sorted(positive)  # every training pair exactly once per epoch
    negs = list(zip(b["user"].reshape(-1)[m].tolist(), b["neg"].reshape(-1)[m].tolist()))
    # density ~ 0.5 per user: 8 redraws leave ~0.4 % positives; allow a few.
    assert sum(p in positive for p in negs) <= 0.02 * len(negs)


def test_sweep_reads_finished_groups_back(tmp_path):
    """A rerun of a sweep whose groups all finished trains nothing and rewrites the report."""
    import json

    from jaxmethods.data.recsys import CFDataConfig, load_cf_split
    from jaxmethods.methods.cf_scaling.config import CFScalingConfig, SweepConfig
    from jaxmethods.methods.cf_scaling.prepare import PreparedData
    from jaxmethods.methods.cf_scaling.run import run_sweep

    sweep = SweepConfig(models=("bpr", "sgl"), dims=(2, 4, 8, 256), pack_max_dim=8)
    cfg = CFScalingConfig(mode="sweep", sweep=sweep, data=CFDataConfig(n_users=20, n_items=30))
    shape = {"bpr": [0.1, 0.2, 0.3, 0.35], "sgl": [0.3, 0.2, 0.3, 0.2]}
    for model in sweep.models:
        for g in plan_groups(model, sweep.dims, sweep.seeds, pack_max_dim=8, max_group_replicas=16):
            rows = [
                {
                    "model": model,
                    "dim": r.dim,
                    "seed": r.seed,
                    "group": g.name,
                    "test/ndcg@20": shape[model][sweep.dims.index(r.dim)],
                }
                for r in g.replicas
            ]
            (tmp_path / "groups" / g.name).mkdir(parents=True)
            (tmp_path / "groups" / g.name / "result.json").write_text(json.dumps(rows))
    data = PreparedData.from_split(load_cf_split(cfg.data))
    summary = run_sweep(cfg, data, make_mesh({"data": 1, "fsdp": -1, "tensor": 1}), str(tmp_path))
    assert summary["bpr/shape"] == "logarithmic" and summary["sgl/shape"] == "double-peak"
    assert summary["bpr/best_dim"] == 256 and summary["n_runs"] == 8
    assert summary["artifacts"]["results.csv"] == str(tmp_path / "results.csv")
    assert "| sgl |" in summary["tables"]["scaling"]
    # The popularity baseline, against a NumPy full-sort NDCG@20 of item counts.
    split = data.split
    counts = np.bincount(split.train.item, minlength=data.n_items).astype(float)
    ndcgs = []
    for u in np.unique(split.test.user):
        seen = set(split.train.item[split.train.user == u]) | set(
            split.valid.item[split.valid.user == u]
        )
        target = set(split.test.item[split.test.user == u])
        scores = np.where(np.isin(np.arange(data.n_items), list(seen)), -np.inf, counts)
        top = np.argsort(-scores, kind="stable")[:20]
        dcg = sum(1 / np.log2(r + 2) for r, i in enumerate(top) if i in target)
        ndcgs.append(dcg / sum(1 / np.log2(r + 2) for r in range(min(len(target), 20))))
    np.testing.assert_allclose(summary["popularity/test/ndcg@20"], np.mean(ndcgs), rtol=1e-5)
    assert (tmp_path / "scaling.png").stat().st_size > 1000
    assert (
        "| sgl | 0.3000 | 0.2000 | 0.3000 | 0.2000 | double-peak |"
        in (tmp_path / "results.md").read_text()
    )
