"""PERM end to end: prompts -> (tiny: warm start) -> judges -> [perm_mrm: per-user weights] ->
GRPO (`jaxmethods.train.grpo.train_grpo`, resumable, HF export) -> [demo: the judge through the
real local server] -> [EQ-Bench-3-style evaluation] -> the reward curve (PNG) and one table.
"""

from __future__ import annotations

import logging
import os
import time

import jax
import numpy as np

from jaxmethods.methods.perm.config import PERMConfig, from_config_dict
from jaxmethods.methods.perm.judges import make_judge
from jaxmethods.methods.perm.prompts import (
    SYSTEM_PROMPT,
    USER_PROMPT,
    prompt_records,
    read_records,
    sample_records,
)
from jaxmethods.methods.perm.report import plot_curve, reward_curve_metrics, table
from jaxmethods.methods.perm.rewards import make_compose
from jaxmethods.methods.perm.synthetic import corpus, synthetic_completions, synthetic_records
from jaxmethods.models.backbone import build_backbone
from jaxmethods.train import make_mesh, make_summary, write_text_atomic
from jaxmethods.train.grpo import prompt_stream, train_grpo

log = logging.getLogger(__name__)


def load_records(cfg: PERMConfig, users: tuple = ()) -> list[dict]:
    """The training records: the JSONL sample (`num_train_samples` of them) or synthetic ones
    (assigned to `users` round-robin)."""
    d = cfg.data
    if d.source == "synthetic":
        return synthetic_records(d.num_synthetic, cfg.seed, users=users)
    rows = read_records(d.train_file, user_key=d.user_key)
    return sample_records(rows, d.num_train_samples, cfg.seed)


def load_tokenizer(cfg: PERMConfig, records: list[dict]):
    if cfg.model.is_tiny:  # the template's constant blocks are single tokens
        from jaxmethods.methods.perm.tiny_tokenizer import block_tokenizer, template_blocks

        blocks = [SYSTEM_PROMPT, *template_blocks(USER_PROMPT)]
        return block_tokenizer(corpus(records) * 4, blocks, cfg.model.vocab_size)
    from jaxmethods.hf import load_tokenizer as load_hf_tokenizer

    return load_hf_tokenizer(cfg.model.tokenizer_path, padding_side="left")


def user_rows(records: list[dict], users: tuple) -> list[dict]:
    """Each record's `"user"` id (compared as a string, as the pairs reader keys users) replaced
    by its row of the weight table; the id is kept as `"user_id"`."""
    index = {str(u): i for i, u in enumerate(users)}
    out = []
    for i, r in enumerate(records):
        key = str(r.get("user"))
        if key not in index:
            raise ValueError(
                f"training record {i}: user {key!r} (config.data.user_key) has no per-user "
                f"weights; the pairs name {len(users)} users, e.g. {list(index)[:5]}"
            )
        out.append({**r, "user_id": r["user"], "user": index[key]})
    return out


def _user_weights(cfg: PERMConfig, mesh, metrics: dict, tables: dict, workdir: str):
    """(weight table [U, K], its perspectives, the U user ids) of perm_mrm, or (None, (), ())."""
    if not cfg.user_weights.enabled:
        return None, (), ()
    from jaxmethods.methods.perm.user_weights import load_user_pairs, meta_learn_user_weights

    pairs = load_user_pairs(cfg.user_weights)
    res = meta_learn_user_weights(cfg.user_weights, pairs, mesh)
    metrics |= res.metrics
    tables["user_weights"] = res.table
    if jax.process_index() == 0:  # one row per user: too long for stdout
        write_text_atomic(os.path.join(workdir, "user_weights.md"), res.user_table + "\n")
    return np.asarray(res.weights, np.float32), tuple(res.perspectives), tuple(pairs.users)


def _warm_start(cfg: PERMConfig, model, tokenizer, prompts, mesh, workdir: str, metrics: dict):
    from jaxmethods.methods.perm.finetune import finetune
    from jaxmethods.train.trainer import LoopConfig

    w = cfg.warm_start
    texts = synthetic_completions(max(len(prompts), 4 * w.batch_size), cfg.seed + 1)
    pairs = [(prompts[i % len(prompts)]["prompt"], t) for i, t in enumerate(texts)]
    loop = LoopConfig(checkpoint_every=w.steps, progress=False, log_every=max(1, w.steps // 4))
    model, loss = finetune(
        model, cfg.model, tokenizer, pairs, steps=w.steps, batch_size=w.batch_size, lr=w.lr,
        max_length=w.max_length, mesh=mesh, workdir=os.path.join(workdir, "warm_start"),
        seed=cfg.seed, loop=loop,
    )  # fmt: skip
    metrics["warm_start/loss"] = loss
    return model


def run(config, workdir: str) -> dict:
    t_start = time.perf_counter()
    cfg = from_config_dict(config)
    os.makedirs(workdir, exist_ok=True)
    mesh = make_mesh(cfg.mesh)
    metrics: dict[str, float] = {}
    tables: dict[str, str] = {}
    table_w, perspectives, users = _user_weights(cfg, mesh, metrics, tables, workdir)
    records = load_records(cfg, users)
    if table_w is not None and cfg.compose_with_user_weights:
        records = user_rows(records, users)
    tokenizer = load_tokenizer(cfg, records)
    prompts = prompt_records(records, tokenizer)
    model = build_backbone(cfg.model, tokenizer, mesh=mesh, seed=cfg.seed)
    if cfg.warm_start.steps:
        model = _warm_start(cfg, model, tokenizer, prompts, mesh, workdir, metrics)

    kinds = cfg.reward.kinds
    cache = os.path.join(workdir, "judge_cache") if cfg.judge.backend == "llm" else ""
    judge = make_judge(cfg.judge, kinds, cache_dir=cache)
    if not cfg.compose_with_user_weights:
        table_w = None
    compose = make_compose(cfg.reward, kinds, table_w, perspectives or kinds[:3])
    g = cfg.grpo
    per_epoch = len(prompts) // g.prompts_per_step
    num_steps = cfg.num_steps or max(1, int(cfg.epochs * per_epoch))
    result = train_grpo(
        model=model, tokenizer=tokenizer,
        prompts=prompt_stream(prompts, prompts_per_step=g.prompts_per_step, seed=cfg.seed),
        reward_fn=judge, compose=compose, cfg=g, optim=cfg.optim, num_steps=num_steps,
        mesh=mesh, workdir=workdir, loop=cfg.loop, reward_names=kinds,
        feature_keys=("user",) if table_w is not None else (), seed=cfg.seed,
    )  # fmt: skip
    metrics |= reward_curve_metrics(result.metrics, kinds)
    metrics["grpo/steps"] = result.final_step
    artifacts = {"hf_export": result.export_dir, "metrics": os.path.join(workdir, "metrics.jsonl")}

    if cfg.server_judge.enabled:
        from jaxmethods.methods.perm.server_judge import server_judge_pass

        sj = cfg.server_judge
        train = (synthetic_records(sj.sft_examples, cfg.seed + 2),
                 synthetic_completions(sj.sft_examples, cfg.seed + 3))  # fmt: skip
        test = (synthetic_records(sj.num_completions, cfg.seed + 4),
                synthetic_completions(sj.num_completions, cfg.seed + 5))  # fmt: skip
        metrics |= server_judge_pass(sj, train, test, kinds, mesh, workdir, cfg.seed)
    if cfg.eqbench.scenario_files:
        from jaxmethods.methods.perm.eqbench import run_eqbench

        eq_metrics, tables["eqbench"] = run_eqbench(cfg, result.model, tokenizer, judge, workdir)
        metrics |= eq_metrics
    if cfg.plot and jax.process_index() == 0:
        artifacts["plot"] = plot_curve(result.metrics, kinds, os.path.join(workdir, "reward.png"))
    metrics["time/total_s"] = time.perf_counter() - t_start
    tables = {"perm": table(metrics, kinds), **tables}
    if jax.process_index() == 0:
        print("\n\n".join(tables.values()))
    return make_summary(metrics, tables=tables, artifacts=artifacts)
