"""Entry point: `run(config, workdir)` for a single (model, size) run or the whole sweep."""

from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxmethods.data.recsys import load_cf_split
from jaxmethods.data.recsys.noise import add_training_noise
from jaxmethods.eval.ranking import full_sort_metrics
from jaxmethods.methods.cf_scaling.config import CFScalingConfig, from_config_dict
from jaxmethods.methods.cf_scaling.plan import Group, Replica, plan_groups
from jaxmethods.methods.cf_scaling.prepare import PreparedData
from jaxmethods.methods.cf_scaling.report import (
    classify_all,
    curves,
    markdown_table,
    plot_curves,
    read_results_json,
    write_results_csv,
)
from jaxmethods.methods.cf_scaling.trainer import train_group
from jaxmethods.train.loop import NonFiniteLossError
from jaxmethods.train.mesh import make_mesh
from jaxmethods.train.metrics import make_summary, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


def run(config, workdir: str) -> dict:
    """`config.mode`: "single" trains `config.model` at `config.embed_dim`; "sweep" trains every
    model of `config.sweep.models` at every size of `config.sweep.dims` (see `dims_for`).

    Returns the `make_summary` layout. Raises `NonFiniteLossError` naming every replica whose
    loss turned non-finite, after all results are written.
    """
    cfg = from_config_dict(config)
    os.makedirs(workdir, exist_ok=True)
    split = load_cf_split(cfg.data)
    if cfg.data.source != "synthetic" and cfg.data.noise_frac > 0:
        split = add_training_noise(split, cfg.data.noise_frac, cfg.data.seed)
    log.info("data: %s", split.summary())
    data = PreparedData.from_split(split)
    mesh = make_mesh(cfg.mesh)
    if cfg.mode == "single":
        return run_single(cfg, data, mesh, workdir)
    return run_sweep(cfg, data, mesh, workdir)


def popularity_metrics(data: PreparedData, ks) -> dict[str, float]:
    """Test metrics of the popularity baseline (RecBole's Pop): every user gets the items
    ranked by their number of training interactions, with the same masks as the models."""
    counts = np.bincount(np.asarray(data.split.train.item), minlength=data.n_items)
    pop = jnp.asarray(counts, jnp.float32)
    _, test = data.eval_data(min(data.n_users, 1024))
    scores = lambda users: jnp.broadcast_to(pop, (users.shape[0], data.n_items))
    out = jax.jit(lambda t: full_sort_metrics(scores, t, ks))(test)
    return {k: float(v) for k, v in out.items()}


def _raise_if_non_finite(rows: list[dict], where: str) -> None:
    bad = [r for r in rows if r.get("status") == "non-finite"]
    if bad:
        names = ", ".join(f"{r['model']} d={r['dim']} seed={r['seed']}" for r in bad)
        raise NonFiniteLossError(
            f"non-finite loss or gradient in {len(bad)} replica(s): {names}; their results are "
            f"those of their best epoch before it (status 'non-finite' in {where})"
        )


def run_single(cfg: CFScalingConfig, data: PreparedData, mesh, workdir: str) -> dict:
    group = Group(cfg.model, (Replica(cfg.embed_dim, cfg.seed),))
    rows = train_group(cfg, group, data, mesh, workdir)
    path = write_json_atomic(os.path.join(workdir, "result.json"), rows)
    _raise_if_non_finite(rows, path)
    (row,) = rows
    metrics = {k: v for k, v in row.items() if k != "group"}
    metrics |= {f"data/{k}": v for k, v in data.split.summary().items()}
    pop = popularity_metrics(data, cfg.train.ks)
    metrics |= {f"popularity/test/{k}": v for k, v in pop.items()}
    return make_summary(metrics, artifacts={"result": path})


def run_sweep(cfg: CFScalingConfig, data: PreparedData, mesh, workdir: str) -> dict:
    """Trains every planned group (finished groups are read back, so a rerun resumes), then
    writes results.csv, curves.json, results.md and scaling.png (all atomically)."""
    sweep = cfg.sweep
    rows = []
    csv_path = os.path.join(workdir, "results.csv")
    plans = [
        group
        for model in sweep.models
        for group in plan_groups(
            model,
            sweep.dims_for(model),
            sweep.seeds,
            pack_max_dim=sweep.pack_max_dim,
            max_group_replicas=sweep.max_group_replicas,
        )
    ]
    for i, group in enumerate(plans):
        group_dir = os.path.join(workdir, "groups", group.name)
        done = os.path.join(group_dir, "result.json")
        if os.path.exists(done):
            rows += read_results_json(done)
            log.info("group %d/%d %s: finished earlier (%s)", i + 1, len(plans), group.name, done)
            continue
        log.info("group %d/%d %s: training", i + 1, len(plans), group.name)
        group_rows = train_group(cfg, group, data, mesh, group_dir)
        write_json_atomic(done, group_rows)
        rows += group_rows
        write_results_csv(csv_path, rows)
    write_results_csv(csv_path, rows)
    curve_map = curves(rows)
    shapes = classify_all(curve_map, rel_tol=sweep.curve_tol, drop_frac=sweep.curve_drop_frac)
    pop = popularity_metrics(data, cfg.train.ks)
    write_json_atomic(
        os.path.join(workdir, "curves.json"),
        {"curves": curve_map, "shapes": shapes, "popularity": pop},
    )
    table = markdown_table(curve_map, shapes)
    pop_line = f"popularity baseline: test NDCG@20 {pop['ndcg@20']:.4f}"
    write_text_atomic(os.path.join(workdir, "results.md"), f"{table}\n\n{pop_line}\n")
    title = cfg.data.name or cfg.data.source
    plot_path = os.path.join(workdir, "scaling.png")
    plot_curves(plot_path, curve_map, shapes, title=title, baseline=pop["ndcg@20"])
    log.info("sweep results (mean test NDCG@20 over seeds):\n%s\n%s", table, pop_line)
    _raise_if_non_finite(rows, csv_path)
    metrics: dict = {f"data/{k}": v for k, v in data.split.summary().items()}
    metrics["n_runs"] = len(rows)
    metrics |= {f"popularity/test/{k}": v for k, v in pop.items()}
    for model, c in curve_map.items():
        best = max(range(len(c["dims"])), key=lambda i: c["mean"][i])
        metrics[f"{model}/best_dim"] = c["dims"][best]
        metrics[f"{model}/best_test_ndcg@20"] = c["mean"][best]
        metrics[f"{model}/shape"] = shapes[model]
    return make_summary(
        metrics,
        tables={"scaling": table},
        artifacts={"scaling.png": plot_path, "results.csv": csv_path},
    )
