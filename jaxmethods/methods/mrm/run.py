"""MRM end to end: data -> meta-training on the shared trainer -> evaluation, beside the global
BT baseline and the personalized peers, optionally repeated over re-split users."""

from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.data.preferences import PreferenceCorpus, load_corpus
from jaxmethods.data.synthetic_prefs import make_synthetic_corpus
from jaxmethods.data.user_splits import apply_protocol
from jaxmethods.methods.mrm.baseline import train_global_bt
from jaxmethods.methods.mrm.config import DataConfig, MRMConfig, from_config_dict
from jaxmethods.methods.mrm.evaluate import evaluate
from jaxmethods.methods.mrm.objective import make_meta_grad_fn, split_model
from jaxmethods.methods.mrm.peers import PeerContext, build, run_peers
from jaxmethods.methods.mrm.report import aggregate, format_table
from jaxmethods.methods.mrm.tasks import MetaTaskIterator
from jaxmethods.models.personalized_reward import PersonalizedReward
from jaxmethods.train.loop import Eval
from jaxmethods.train.mesh import make_mesh
from jaxmethods.train.metrics import make_summary, read_jsonl, write_text_atomic
from jaxmethods.train.trainer import fit, shard_and_place

log = logging.getLogger(__name__)


def load_data(cfg: DataConfig, repeat: int = 0) -> PreferenceCorpus:
    """The corpus of repeat `repeat`: the same users and pairs, split with seed `cfg.seed + repeat`."""
    split_seed = cfg.seed + repeat
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
            split_seed=split_seed,
        )
        return corpus
    return apply_protocol(
        load_corpus(cfg.path),
        cfg.protocol,
        seed=split_seed,
        seen_train_limit=cfg.seen_train_limit,
        unseen_train_limit=cfg.unseen_train_limit,
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


def make_context(cfg: MRMConfig, mesh, repeat: int) -> PeerContext:
    corpus = load_data(cfg.data, repeat)
    seen, unseen = corpus.seen_unseen(cfg.data.seed + repeat)
    log.info(
        "repeat %d: %d seen and %d unseen users, %d pairs",
        repeat, len(seen), len(unseen), corpus.num_pairs,
    )  # fmt: skip
    table = corpus.embeddings.astype(jnp.dtype(cfg.data.embedding_dtype))
    embeddings, _ = shard_and_place(table, mesh)
    return PeerContext(
        corpus, seen, unseen, embeddings, mesh, cfg.data.seed + repeat, cfg.seed + repeat
    )


def train_mrm(cfg: MRMConfig, ctx: PeerContext, workdir: str) -> dict:
    """Meta-trains MRM in `workdir` (resumable); final, best and unadapted accuracies."""
    model = build(
        lambda: PersonalizedReward(
            ctx.corpus.dim,
            cfg.model.hidden_layers,
            scale=cfg.model.scale,
            use_bias=cfg.model.use_bias,
            rngs=nnx.Rngs(ctx.seed),
        )
    )
    graphdef, params = split_model(model)
    tasks = MetaTaskIterator(
        ctx.corpus,
        ctx.seen,
        tasks_per_batch=cfg.meta.tasks_per_batch,
        val_ratio=cfg.data.val_ratio,
        seed=ctx.data_seed,
    )
    steps_per_epoch = tasks.batches_per_epoch

    def evaluate_with(params, inner_steps: int) -> dict:
        return evaluate(
            graphdef, params, ctx.embeddings, ctx.corpus, ctx.seen, ctx.unseen, cfg.meta.inner,
            inner_steps=inner_steps, worst_frac=cfg.eval.worst_frac, chunk=cfg.eval.user_chunk,
        )  # fmt: skip

    def run_eval(state, step: int) -> dict:
        return evaluate_with(state.params, cfg.eval.inner_steps) | {
            "epoch": step // steps_per_epoch
        }

    result = fit(
        grad_fn=make_meta_grad_fn(graphdef, cfg.meta),
        params=params,
        optim=cfg.optim,
        num_steps=cfg.epochs * steps_per_epoch,
        batches=tasks,
        mesh=ctx.mesh,
        workdir=workdir,
        constants=ctx.embeddings,
        loop=cfg.loop,
        evals={"eval": Eval(run_eval, every=steps_per_epoch * cfg.eval.every_epochs)},
        seed=ctx.seed,
        items_per_step=cfg.meta.tasks_per_batch,
        item_name="users",
        desc=cfg.name,
    )
    final = result.last_eval or {
        f"eval/{k}": v for k, v in run_eval(result.state, result.step).items()
    }
    no_adapt = evaluate_with(result.state.params, 0)
    return {
        "step": result.step,
        "epochs": cfg.epochs,
        "resumed_from": result.resumed_from,
        "train_time_s": result.train_time_s,
        **final,
        **{f"no_adapt/{k}": v for k, v in no_adapt.items()},
        **best_eval(read_jsonl(os.path.join(workdir, "metrics.jsonl"))),
    }


def run_repeat(cfg: MRMConfig, mesh, repeat: int, workdir: str) -> dict:
    """MRM, the baseline and the peers on one split (`seed + repeat`), all in `workdir`."""
    ctx = make_context(cfg, mesh, repeat)
    metrics = train_mrm(cfg, ctx, workdir)
    if cfg.baseline.enabled:
        base = train_global_bt(cfg, ctx, os.path.join(workdir, "baseline"))
        metrics |= {f"baseline/{k}": v for k, v in base.items()}
    return metrics | run_peers(cfg, ctx, os.path.join(workdir, "peers"))


def run(config, workdir: str) -> dict:
    cfg = from_config_dict(config)
    mesh = make_mesh(cfg.mesh)
    if cfg.repeats == 1:
        metrics = run_repeat(cfg, mesh, 0, workdir)
        artifacts = {"checkpoints": os.path.join(workdir, "checkpoints")}
    else:
        dirs = [os.path.join(workdir, f"repeat_{r}") for r in range(cfg.repeats)]
        metrics = aggregate([run_repeat(cfg, mesh, r, d) for r, d in enumerate(dirs)])
        metrics["repeats"] = cfg.repeats
        artifacts = {f"repeat_{r}": d for r, d in enumerate(dirs)}
    table = format_table(metrics, cfg.peers, cfg.eval.worst_frac, repeats=cfg.repeats)
    if jax.process_index() == 0:
        print(table)
        artifacts["table"] = write_text_atomic(os.path.join(workdir, "mrm_table.md"), table + "\n")
    return make_summary({"method": "mrm", **metrics}, tables={"mrm": table}, artifacts=artifacts)
