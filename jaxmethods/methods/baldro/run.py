"""BalDRO end to end: data -> (demo: fine-tune target and retain models) -> unlearning of each
configured variant from the same starting weights -> TOFU / MUSE evaluation -> summary table."""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
from flax import nnx

from jaxmethods.data.forget_retain import ForgetRetainBatches, steps_per_epoch
from jaxmethods.data.tofu import warmup_steps
from jaxmethods.eval.likelihood import sequence_statistics
from jaxmethods.eval.muse_eval import MuseEvalSettings, evaluate_muse
from jaxmethods.eval.tofu_eval import TofuEvalSettings, evaluate_tofu, forget_truth_ratios
from jaxmethods.eval.unlearning import load_retain_truth_ratios, write_truth_ratio_log
from jaxmethods.methods.baldro.config import BalDROConfig, from_config_dict
from jaxmethods.methods.baldro.objective import objective
from jaxmethods.methods.baldro.setup import (
    build_model,
    build_tokenizer,
    corpus_texts,
    load_raw,
    load_run_data,
    make_token_ce,
)
from jaxmethods.methods.baldro.trainer import (
    SFTBatches,
    copy_params,
    fit,
    make_optimizer,
    sft_loss_fn,
    shard_params,
    trainable_params,
)
from jaxmethods.train.config import ConfigError
from jaxmethods.train.mesh import batch_size_multiple, make_mesh

log = logging.getLogger(__name__)

VARIANT_NAMES = {
    "plain": "",
    "group": "+BalDRO-G",
    "dv": "+BalDRO-DV",
    "dv_softmax": "+BalDRO-DV(+)",
}


def finetune(cfg: BalDROConfig, graphdef, params, examples, pad_id: int, mesh, workdir: str):
    """Plain SFT of the demo's tiny model on QA examples (HF causal-LM loss)."""
    f = cfg.finetune
    batches = SFTBatches(
        examples, batch_size=f.batch_size, length=cfg.data.max_length, pad_id=pad_id,
        seed=cfg.seed,
    )  # fmt: skip
    steps = f.epochs * batches.per_epoch
    o = cfg.optim
    tx = make_optimizer(o, steps, f.warmup_steps, lr=f.lr)
    result = fit(
        loss_fn=sft_loss_fn(make_token_ce(graphdef, cfg.model.logits_chunk_size)),
        params=copy_params(params), tx=tx, batches=batches, num_steps=steps, mesh=mesh,
        workdir=workdir, seed=cfg.seed, log_every=cfg.log_every, progress=cfg.progress,
        desc=f"finetune {os.path.basename(workdir)}",
    )  # fmt: skip
    return result.state.params


def forget_spread(model: nnx.Module, examples, pad_id: int, cfg: BalDROConfig) -> dict[str, float]:
    """Per-sample average NLL over the forget set: mean, std and the p90 - p10 range."""
    stats = sequence_statistics(
        model, examples, batch_size=cfg.eval.batch_size, length=cfg.data.max_length, pad_id=pad_id
    )
    nll = stats["avg_nll"]
    return {
        "forget_nll_mean": float(nll.mean()),
        "forget_nll_std": float(nll.std()),
        "forget_nll_p10_p90": float(np.percentile(nll, 90) - np.percentile(nll, 10)),
    }


def unlearn(cfg: BalDROConfig, variant: str, graphdef, params0, data, mesh, workdir: str):
    """Runs one unlearning variant from `params0`; returns the trained params."""
    obj = cfg.objective(variant)
    o = cfg.optim
    forget = data.forget
    extra = ()
    if obj.needs_reference and obj.reference == "precomputed":
        ref = sequence_statistics(
            nnx.merge(graphdef, params0), forget, batch_size=cfg.eval.batch_size,
            length=cfg.data.max_length, pad_id=data.pad_id,
        )["nll"]  # fmt: skip
        forget = [dict(ex, ref_nll=float(r)) for ex, r in zip(forget, ref)]
        extra = ("ref_nll",)
    batches = ForgetRetainBatches(
        forget, data.retain, micro_batch_size=o.micro_batch_size, grad_accum=o.grad_accum,
        length=cfg.data.max_length, pad_id=data.pad_id, seed=cfg.seed, extra_forget_fields=extra,
    )  # fmt: skip
    steps = o.epochs * steps_per_epoch(len(forget), o.micro_batch_size, o.grad_accum)
    if o.warmup == "tofu":
        # micro_batch_size already spans every original device (groups x per-device batch).
        warm = warmup_steps(len(forget), o.micro_batch_size, o.grad_accum)
    else:
        warm = 0 if o.warmup == "none" else int(o.warmup)
    tx = make_optimizer(o, steps, warm)
    token_ce = make_token_ce(graphdef, cfg.model.logits_chunk_size)
    loss_fn = lambda p, frozen, batch, rng: objective(obj, token_ce, p, frozen, batch, rng)
    frozen = copy_params(params0) if obj.needs_reference and obj.reference == "frozen" else None
    result = fit(
        loss_fn=loss_fn, params=copy_params(params0), tx=tx, batches=batches, num_steps=steps,
        mesh=mesh, workdir=workdir, grad_accum=o.grad_accum, frozen=frozen, seed=cfg.seed,
        checkpoint_every=cfg.checkpoint_every, keep_checkpoints=cfg.keep_checkpoints,
        log_every=cfg.log_every, progress=cfg.progress, desc=f"{obj.loss}{VARIANT_NAMES[variant]}",
    )  # fmt: skip
    return result.state.params, {"steps": steps, "warmup_steps": warm, **result.last_metrics}


def evaluate(cfg: BalDROConfig, model, tokenizer, data, retain_tr) -> dict[str, Any]:
    e = cfg.eval
    if not e.enabled:
        return {}
    if cfg.data.benchmark == "muse":
        s = MuseEvalSettings(
            batch_size=e.batch_size, length=e.length, prompt_length=e.prompt_length,
            use_stemmer=e.use_stemmer,
        )  # fmt: skip
        auc = None if e.retrain_auc < 0 else e.retrain_auc
        return evaluate_muse(model, tokenizer, data.eval_rows, retrain_auc=auc, settings=s)
    s = TofuEvalSettings(
        batch_size=e.batch_size, length=e.length, prompt_length=e.prompt_length,
        max_new_tokens=e.max_new_tokens, use_stemmer=e.use_stemmer,
    )  # fmt: skip
    out = evaluate_tofu(
        model, tokenizer, data.eval_rows, forget_config=cfg.data.forget_split,
        retain_truth_ratios=retain_tr, settings=s, with_rouge=e.with_rouge,
    )  # fmt: skip
    out.pop("forget_truth_ratio_values")
    return out


def run(config, workdir: str) -> dict:
    cfg = from_config_dict(config)
    mesh = make_mesh(cfg.mesh)
    multiple = batch_size_multiple(mesh)
    if cfg.optim.micro_batch_size % multiple or (
        cfg.finetune.enabled and cfg.finetune.batch_size % multiple
    ):
        raise ConfigError(
            f"config.optim.micro_batch_size={cfg.optim.micro_batch_size} (and "
            f"config.finetune.batch_size) must be multiples of the {multiple} devices the batch "
            f"is split over (mesh {dict(mesh.shape)})"
        )
    raw = load_raw(cfg, workdir)
    tokenizer = build_tokenizer(cfg, corpus_texts(raw) if cfg.model.source == "tiny" else None)
    data = load_run_data(cfg, tokenizer, raw)
    log.info("%d forget and %d retain examples", len(data.forget), len(data.retain))
    graphdef, params0 = trainable_params(build_model(cfg, tokenizer, mesh))
    # Same shardings as the trained params, so evaluation programs compile once for all models.
    params0, _ = shard_params(params0, mesh)

    retain_tr = None
    eval_settings = TofuEvalSettings(batch_size=cfg.eval.batch_size, length=cfg.eval.length)
    if cfg.eval.retain_logs_path:
        retain_tr = load_retain_truth_ratios(cfg.eval.retain_logs_path)
    if cfg.finetune.enabled:
        retain_params = finetune(
            cfg, graphdef, params0, data.finetune["retain"], data.pad_id, mesh,
            os.path.join(workdir, "finetune_retain"),
        )  # fmt: skip
        params0 = finetune(
            cfg, graphdef, params0, data.finetune["full"], data.pad_id, mesh,
            os.path.join(workdir, "finetune_target"),
        )  # fmt: skip
        if retain_tr is None:
            tr = forget_truth_ratios(
                nnx.merge(graphdef, retain_params), tokenizer,
                data.eval_rows[f"{cfg.data.forget_split}_perturbed"], eval_settings,
            )  # fmt: skip
            log_path = os.path.join(workdir, "finetune_retain", "TOFU_EVAL.json")
            write_truth_ratio_log(log_path, tr)
            retain_tr = load_retain_truth_ratios(log_path)

    rows = {"target": _row(cfg, nnx.merge(graphdef, params0), tokenizer, data, retain_tr)}
    train_info = {}
    for variant in cfg.variants:
        params, info = unlearn(
            cfg, variant, graphdef, params0, data, mesh, os.path.join(workdir, variant)
        )
        rows[variant] = _row(cfg, nnx.merge(graphdef, params), tokenizer, data, retain_tr)
        train_info[variant] = info
    summary = {f"{name}/{k}": v for name, row in rows.items() for k, v in row.items()}
    summary |= {f"{v}/train/{k}": x for v, info in train_info.items() for k, x in info.items()}
    if jax.process_index() == 0:
        print(format_table(cfg, rows))
    return summary


def _row(cfg, model, tokenizer, data, retain_tr) -> dict[str, Any]:
    row = forget_spread(model, data.forget, data.pad_id, cfg)
    row.update(evaluate(cfg, model, tokenizer, data, retain_tr))
    return row


def format_table(cfg: BalDROConfig, rows: dict[str, dict]) -> str:
    loss = cfg.objective(cfg.variants[0]).loss.upper() if cfg.unlearn else "NPO"
    if cfg.data.benchmark == "muse":
        cols = ("forget_verbmem_ROUGE", "forget_knowmem_ROUGE", "retain_knowmem_ROUGE", "privleak")
    else:
        cols = ("forget_quality", "model_utility", "forget_Truth_Ratio")
    cols = (*cols, "forget_nll_mean", "forget_nll_std", "forget_nll_p10_p90")
    head = f"{'model':22s}" + "".join(f"{c:>22s}" for c in cols)
    lines = [head, "-" * len(head)]
    for name, row in rows.items():
        label = "target (before)" if name == "target" else f"{loss}{VARIANT_NAMES[name]}"
        cells = []
        for c in cols:
            v = row.get(c)
            cells.append(f"{'n/a':>22s}" if v is None else f"{v:>22.4g}")
        lines.append(f"{label:22s}" + "".join(cells))
    return "\n".join(lines)
