"""Entry point: `run(config, workdir)` for a single (model, size) run or the whole sweep."""

from __future__ import annotations

import json
import logging
import os

from jaxmethods.data.recsys import load_cf_split
from jaxmethods.methods.cf_scaling.config import CFScalingConfig, from_config_dict
from jaxmethods.methods.cf_scaling.plan import Group, Replica, plan_groups
from jaxmethods.methods.cf_scaling.prepare import PreparedData
from jaxmethods.methods.cf_scaling.report import (
    classify_all,
    curves,
    markdown_table,
    plot_curves,
    write_results_csv,
)
from jaxmethods.methods.cf_scaling.trainer import train_group
from jaxmethods.train.mesh import make_mesh

log = logging.getLogger(__name__)


def run(config, workdir: str) -> dict:
    """`config.mode`: "single" trains `config.model` at `config.embed_dim`; "sweep" trains every
    model of `config.sweep.models` at every size of `config.sweep.dims`."""
    cfg = from_config_dict(config)
    os.makedirs(workdir, exist_ok=True)
    split = load_cf_split(cfg.data)
    log.info("data: %s", split.summary())
    data = PreparedData.from_split(split)
    mesh = make_mesh(cfg.mesh)
    if cfg.mode == "single":
        return run_single(cfg, data, mesh, workdir)
    return run_sweep(cfg, data, mesh, workdir)


def run_single(cfg: CFScalingConfig, data: PreparedData, mesh, workdir: str) -> dict:
    group = Group(cfg.model, (Replica(cfg.embed_dim, cfg.seed),))
    (row,) = train_group(cfg, group, data, mesh, workdir)
    return {**row, "embed_dim": cfg.embed_dim, "data": data.split.summary()}


def run_sweep(cfg: CFScalingConfig, data: PreparedData, mesh, workdir: str) -> dict:
    """Trains every planned group (finished groups are read back, so a rerun resumes), then
    writes results.csv, curves.json, results.md and scaling.png."""
    sweep = cfg.sweep
    rows = []
    for model in sweep.models:
        cap = int(sweep.max_dim.get(model, 0)) or max(sweep.dims)
        dims = [d for d in sweep.dims if d <= cap]
        groups = plan_groups(
            model,
            dims,
            sweep.seeds,
            pack_max_dim=sweep.pack_max_dim,
            max_group_replicas=sweep.max_group_replicas,
        )
        for group in groups:
            group_dir = os.path.join(workdir, "groups", group.name)
            done = os.path.join(group_dir, "result.json")
            if os.path.exists(done):
                with open(done) as f:
                    rows += json.load(f)
                continue
            group_rows = train_group(cfg, group, data, mesh, group_dir)
            with open(done, "w") as f:
                json.dump(group_rows, f, indent=1)
            rows += group_rows
            write_results_csv(os.path.join(workdir, "results.csv"), rows)
    write_results_csv(os.path.join(workdir, "results.csv"), rows)
    curve_map = curves(rows)
    shapes = classify_all(curve_map, rel_tol=sweep.curve_tol, drop_frac=sweep.curve_drop_frac)
    with open(os.path.join(workdir, "curves.json"), "w") as f:
        json.dump({"curves": curve_map, "shapes": shapes}, f, indent=1)
    table = markdown_table(curve_map, shapes)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(table + "\n")
    title = cfg.data.name or cfg.data.source
    plot_curves(os.path.join(workdir, "scaling.png"), curve_map, shapes, title=title)
    log.info("sweep results:\n%s", table)
    summary = {"shapes": shapes, "data": data.split.summary(), "n_runs": len(rows)}
    for model, c in curve_map.items():
        best = max(range(len(c["dims"])), key=lambda i: c["mean"][i])
        summary[f"{model}/best_dim"] = c["dims"][best]
        summary[f"{model}/best_test_ndcg@20"] = c["mean"][best]
    return summary
