"""BalDRO end to end: data -> (demo: fine-tune target and retain models) -> unlearning of each
configured variant from the same starting weights, evaluated every epoch -> table, curves and
summary. Every phase checkpoints; a rerun in the same workdir resumes where it stopped."""

from __future__ import annotations

import logging
import os

import jax
import numpy as np
from flax import nnx

from jaxmethods.eval.tofu_eval import TofuEvalSettings, forget_truth_ratios
from jaxmethods.eval.unlearning import load_retain_truth_ratios, write_truth_ratio_log
from jaxmethods.methods.baldro.assets import (
    build_model,
    build_tokenizer,
    corpus_texts,
    load_raw,
    load_run_data,
)
from jaxmethods.methods.baldro.config import BalDROConfig, from_config_dict
from jaxmethods.methods.baldro.evaluation import Evaluator
from jaxmethods.methods.baldro.phases import TRUTH_RATIO_FILE, finetune, unlearn
from jaxmethods.methods.baldro.report import markdown_table, phase_log, plot_curves
from jaxmethods.models.backbone import split_trainable
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train.config import ConfigError
from jaxmethods.train.mesh import check_batch_sizes, make_mesh
from jaxmethods.train.metrics import is_writer, make_summary, write_json_atomic, write_text_atomic
from jaxmethods.train.trainer import shard_and_place

log = logging.getLogger(__name__)


def _check_batches(cfg: BalDROConfig, mesh) -> None:
    sizes = {"config.train.micro_batch_size": cfg.train.micro_batch_size}
    if cfg.finetune.enabled:
        sizes["config.finetune.batch_size"] = cfg.finetune.batch_size
    check_batch_sizes(mesh, **sizes)


def _demo_models(cfg, graphdef, params0, data, tokenizer, mesh, workdir):
    """The demo's target (fine-tuned on everything) and the retain model's forget TR log."""
    retain_params = finetune(cfg, graphdef, params0, data.finetune["retain"], data.pad_id, mesh,
                             os.path.join(workdir, "finetune_retain"))  # fmt: skip
    target = finetune(cfg, graphdef, params0, data.finetune["full"], data.pad_id, mesh,
                      os.path.join(workdir, "finetune_target"))  # fmt: skip
    log_path = os.path.join(workdir, "finetune_retain", "TOFU_EVAL.json")
    s = TofuEvalSettings(batch_size=cfg.eval.batch_size, length=cfg.eval.length)
    tr = forget_truth_ratios(nnx.merge(graphdef, retain_params), tokenizer,
                             data.eval_rows[f"{cfg.data.forget_split}_perturbed"], s)  # fmt: skip
    if is_writer():
        write_truth_ratio_log(log_path, tr)
    return target, tr


def run(config, workdir: str) -> dict:
    cfg = from_config_dict(config)
    mesh = make_mesh(cfg.mesh)
    _check_batches(cfg, mesh)
    raw = load_raw(cfg, workdir)
    tokenizer = build_tokenizer(cfg, corpus_texts(raw) if cfg.model.is_tiny else None)
    data = load_run_data(cfg, tokenizer, raw)
    log.info("%d forget and %d retain examples", len(data.forget), len(data.retain))
    graphdef, params0, rest = split_trainable(build_model(cfg, tokenizer, mesh), cfg.model)
    if jax.tree.leaves(rest):
        raise ConfigError("config.model: BalDRO trains full weights; set model.lora.rank=0")
    # Placed like the trained params, so evaluation compiles once for every model.
    params0, _ = shard_and_place(params0, mesh, DECODER_SHARDING_RULES)

    retain_tr = None
    if cfg.eval.retain_logs_path:
        retain_tr = load_retain_truth_ratios(cfg.eval.retain_logs_path)
    if cfg.finetune.enabled:
        params0, demo_tr = _demo_models(cfg, graphdef, params0, data, tokenizer, mesh, workdir)
        retain_tr = demo_tr if retain_tr is None else retain_tr

    evaluator = Evaluator(cfg, graphdef, tokenizer, data, retain_tr)
    target_row, target_tr = evaluator.evaluate(params0)
    rows, curves, train = {"target": target_row}, {}, {}
    for variant in cfg.variants:
        phase = os.path.join(workdir, cfg.phase_name(variant))
        plan = unlearn(cfg, variant, graphdef, params0, data, mesh, phase, evaluator, target_row)
        curves[variant], last_train = phase_log(phase)
        final = [r for r in curves[variant] if r["step"] == plan.max_steps]
        rows[variant] = {k: v for k, v in (final[0] if final else {}).items() if k != "step"}
        train[variant] = {
            "steps": plan.max_steps, "warmup_steps": plan.warmup_steps,
            **{k: v for k, v in last_train.items() if k not in ("step", "steps_per_s")},
        }  # fmt: skip
    return _summary(cfg, workdir, rows, curves, train, target_tr)


def _summary(cfg: BalDROConfig, workdir, rows, curves, train, target_tr) -> dict:
    split, loss = cfg.data.split_name, cfg.unlearn.loss
    names = {"target": "target", **{v: cfg.phase_name(v) for v in cfg.variants}}
    metrics = {
        f"{split}/{names[name]}/{k}": v
        for name, row in rows.items()
        for k, v in row.items()
        if isinstance(v, (int, float)) and k != "epoch"
    }
    metrics |= {f"{split}/{names[v]}/train/{k}": x for v, info in train.items()
                for k, x in info.items() if isinstance(x, (int, float))}  # fmt: skip
    table = markdown_table(rows, loss, cfg.data.benchmark)
    artifacts = {}
    if is_writer():
        print(table)
        artifacts["table"] = write_text_atomic(
            os.path.join(workdir, "baldro_table.md"), table + "\n"
        )
        if target_tr is not None:
            path = os.path.join(workdir, "target_" + TRUTH_RATIO_FILE)
            artifacts["target/truth_ratios"] = write_json_atomic(path, np.asarray(target_tr))
        for v in cfg.variants:
            path = os.path.join(workdir, names[v], TRUTH_RATIO_FILE)
            if os.path.exists(path):
                artifacts[f"{names[v]}/truth_ratios"] = path
        if cfg.eval.plot:
            plot = plot_curves(curves, loss, os.path.join(workdir, "baldro_curves.png"))
            if plot:
                artifacts["curves"] = plot
    return make_summary(metrics, tables={"baldro": table}, artifacts=artifacts)
