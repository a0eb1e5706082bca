"""MRM end to end: data -> meta-training (sharded, checkpointed, resumable) -> evaluation."""

from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxmethods.data.preferences import PreferenceCorpus, load_corpus
from jaxmethods.data.synthetic_prefs import make_synthetic_corpus
from jaxmethods.methods.mrm.baseline import train_global_bt
from jaxmethods.methods.mrm.config import DataConfig, MRMConfig, from_config_dict
from jaxmethods.methods.mrm.evaluate import evaluate
from jaxmethods.methods.mrm.objective import make_meta_grad_fn, split_model
from jaxmethods.methods.mrm.tasks import MetaTaskIterator
from jaxmethods.models.personalized_reward import PersonalizedReward
from jaxmethods.train.checkpoint import Checkpointer
from jaxmethods.train.loop import train_loop
from jaxmethods.train.mesh import data_sharding, make_mesh
from jaxmethods.train.metrics import MetricWriter
from jaxmethods.train.sharding import param_shardings
from jaxmethods.train.state import TrainState
from jaxmethods.train.step import jit_train_step, make_train_step, state_shardings

log = logging.getLogger(__name__)


def load_data(cfg: DataConfig) -> PreferenceCorpus:
    if cfg.source == "synthetic":
        corpus, _ = make_synthetic_corpus(
            cfg.num_users,
            cfg.dim,
            cfg.num_rewards,
            pairs_per_user=tuple(cfg.pairs_per_user),
            convs_per_user=tuple(cfg.convs_per_user),
            label_noise=cfg.label_noise,
            seed=cfg.seed,
            mixture_concentration=cfg.mixture_concentration,
            direction_cosine=cfg.direction_cosine,
            feature_scale=cfg.feature_scale,
        )
        return corpus
    return load_corpus(cfg.path)


def outer_optimizer(cfg: MRMConfig, total_steps: int) -> optax.GradientTransformation:
    """Adam with linear warmup and cosine decay to 0 (transformers' cosine-with-warmup), after
    global-norm clipping, as in the authors' outer loop."""
    o = cfg.optim
    warmup = int(o.warmup_ratio * total_steps)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, o.lr, warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1), end_value=0.0
    )
    return optax.chain(
        optax.clip_by_global_norm(o.clip_norm), optax.adam(schedule, b1=o.b1, b2=o.b2, eps=o.eps)
    )


def best_eval(rows: list[dict]) -> dict:
    """The evaluation with the best overall accuracy (the authors' reported selection)."""
    evals = [r for r in rows if "eval/overall_acc" in r]
    if not evals:
        return {}
    best = max(evals, key=lambda r: r["eval/overall_acc"])
    return {"best/" + k.split("/", 1)[1]: v for k, v in best.items() if k.startswith("eval/")} | {
        "best/step": best["step"]
    }


def run(config, workdir: str) -> dict:
    cfg = from_config_dict(config)
    mesh = make_mesh(cfg.mesh)
    corpus = load_data(cfg.data)
    seen, unseen = corpus.seen_unseen(cfg.data.seed)
    log.info("%d seen and %d unseen users, %d pairs", len(seen), len(unseen), corpus.num_pairs)

    table = {"embeddings": corpus.embeddings.astype(jnp.dtype(cfg.data.embedding_dtype))}
    emb_sharding = param_shardings(table, mesh)
    embeddings = jax.device_put(table, emb_sharding)

    model = PersonalizedReward(
        corpus.dim,
        cfg.model.hidden_layers,
        scale=cfg.model.scale,
        use_bias=cfg.model.use_bias,
        rngs=nnx.Rngs(cfg.seed),
    )
    graphdef, params = split_model(model)
    tasks = MetaTaskIterator(
        corpus,
        seen,
        tasks_per_batch=cfg.meta.tasks_per_batch,
        val_ratio=cfg.data.val_ratio,
        seed=cfg.data.seed,
    )
    steps_per_epoch = tasks.batches_per_epoch
    total_steps = cfg.epochs * steps_per_epoch
    tx = outer_optimizer(cfg, total_steps)
    state = TrainState.create(params, tx, cfg.seed)
    shardings = state_shardings(state, param_shardings(params, mesh), mesh)
    state = jax.device_put(state, shardings)
    step_fn = jit_train_step(
        make_train_step(None, tx, grad_fn=make_meta_grad_fn(graphdef, cfg.meta)),
        mesh,
        shardings,
        data_sharding(mesh),
        frozen_shardings=emb_sharding,
    )

    def run_eval(state, step: int) -> dict:
        metrics = evaluate(
            graphdef,
            state.params,
            embeddings["embeddings"],
            corpus,
            seen,
            unseen,
            cfg.meta.inner,
            inner_steps=cfg.eval.inner_steps,
            worst_frac=cfg.eval.worst_frac,
            chunk=cfg.eval.user_chunk,
        )
        return {f"eval/{k}": v for k, v in metrics.items()} | {"epoch": step // steps_per_epoch}

    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"),
        save_every=cfg.checkpoint_every,
        keep=cfg.keep_checkpoints,
    )
    result = train_loop(
        step_fn=step_fn,
        state=state,
        frozen=embeddings,
        batches=tasks,
        num_steps=total_steps,
        workdir=workdir,
        batch_sharding=data_sharding(mesh),
        checkpointer=checkpointer,
        log_every=cfg.log_every,
        eval_fn=run_eval,
        eval_every=cfg.eval.every_epochs * steps_per_epoch,
        items_per_step=cfg.meta.tasks_per_batch,
        item_name="users",
        progress=cfg.progress,
        desc=cfg.name,
    )
    checkpointer.close()
    final = result.last_eval or run_eval(result.state, result.step)
    no_adapt = evaluate(
        graphdef,
        result.state.params,
        embeddings["embeddings"],
        corpus,
        seen,
        unseen,
        cfg.meta.inner,
        inner_steps=0,
        worst_frac=cfg.eval.worst_frac,
    )
    summary = {
        "method": "mrm",
        "step": result.step,
        "epochs": cfg.epochs,
        "resumed_from": result.resumed_from,
        "train_time_s": result.train_time_s,
        **{k: v for k, v in final.items() if k.startswith("eval/")},
        **{f"no_adapt/{k}": v for k, v in no_adapt.items()},
        **best_eval(MetricWriter(workdir).read()),
    }
    if cfg.baseline.enabled:
        base = train_global_bt(
            corpus,
            embeddings["embeddings"],
            seen,
            unseen,
            cfg.model,
            cfg.baseline,
            mesh,
            seed=cfg.seed,
            worst_frac=cfg.eval.worst_frac,
        )
        summary |= {f"baseline/{k}": v for k, v in base.items()}
    if jax.process_index() == 0:
        print(format_table(summary, cfg))
    return summary


def format_table(summary: dict, cfg: MRMConfig) -> str:
    worst = f"worst{round(cfg.eval.worst_frac * 100)}_acc"
    cols = ("seen_acc", "unseen_acc", "overall_acc", worst)
    rows = [("MRM (adapted)", "eval/"), ("MRM meta-init, no adaptation", "no_adapt/")]
    if "baseline/overall_acc" in summary:
        rows.append(("global Bradley-Terry baseline", "baseline/"))
    head = f"{'user-level accuracy':34s}" + "".join(f"{c:>14s}" for c in cols)
    lines = [head, "-" * len(head)]
    for label, prefix in rows:
        vals = [summary.get(prefix + c, float("nan")) for c in cols]
        lines.append(f"{label:34s}" + "".join(f"{v:14.4f}" for v in vals))
    return "\n".join(lines)
