"""Supervised fine-tuning end to end: the smallest complete method, and the template of
`docs/adding_a_method.md`: data -> backbone -> `fit` (checkpointed, resumable, evaluated every
epoch, optional early stopping) -> summary."""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.data.forget_retain import gather_examples, sft_stream
from jaxmethods.data.pipeline import batches_per_epoch
from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.methods.sft.config import SFTConfig, from_config_dict
from jaxmethods.methods.sft.data import load_rows, tokenize
from jaxmethods.models.backbone import build_backbone, split_trainable
from jaxmethods.models.causal_lm import causal_lm_loss
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train import EarlyStopping, Eval, fit, hf_max_steps, make_mesh, make_summary
from jaxmethods.train.loop import put_batch
from jaxmethods.train.mesh import check_batch_sizes, data_sharding
from jaxmethods.train.trainer import shard_and_place

log = logging.getLogger(__name__)


def load_tokenizer(cfg: SFTConfig, rows: list[dict]):
    if cfg.model.is_tiny:
        texts = [r["prompt"] + " " + r["response"] for r in rows]
        texts.append(cfg.data.user_start + cfg.data.user_end + cfg.data.asst_start)
        return build_tiny_tokenizer(texts, vocab_size=cfg.model.vocab_size)
    from jaxmethods.hf import load_tokenizer as load_hf_tokenizer

    return load_hf_tokenizer(cfg.model.tokenizer_path)


def run(config, workdir: str) -> dict:
    cfg = from_config_dict(config)
    mesh = make_mesh(cfg.mesh)
    check_batch_sizes(mesh, **{"config.batch_size": cfg.batch_size})
    train_rows, valid_rows = load_rows(cfg.data)
    tokenizer = load_tokenizer(cfg, train_rows + valid_rows)
    train, valid = (
        tokenize(tokenizer, train_rows, cfg.data),
        tokenize(tokenizer, valid_rows, cfg.data),
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    pad = functools.partial(gather_examples, length=cfg.data.max_length, pad_id=pad_id)

    model = build_backbone(cfg.model, tokenizer, mesh=mesh, seed=cfg.seed)
    graphdef, params, base = split_trainable(model, cfg.model)
    base, _ = shard_and_place(base, mesh, DECODER_SHARDING_RULES)
    chunk = cfg.model.logits_chunk_size

    def loss_fn(params, base, batch, rng):
        m = nnx.merge(graphdef, params, base)
        loss, tokens = causal_lm_loss(m, batch, chunk_size=chunk, dropout_rng=rng)
        return loss, {"tokens": tokens.astype(jnp.float32)}

    @jax.jit
    def eval_batch(params, base, batch):
        m = nnx.merge(graphdef, params, base)
        return causal_lm_loss(m, batch, chunk_size=chunk)

    def valid_loss(state, step: int) -> dict:
        total, tokens, sharding = 0.0, 0, data_sharding(mesh)
        n, b = len(valid), cfg.eval_batch_size
        for start in range(0, n, b):
            idx = [*range(start, min(start + b, n)), *[-1] * max(0, start + b - n)]
            loss, count = eval_batch(state.params, base, put_batch(pad(valid, idx), sharding))
            total, tokens = total + float(loss) * int(count), tokens + int(count)
        mean = total / max(tokens, 1)
        return {"loss": mean, "perplexity": float(jnp.exp(mean))}

    o = cfg.optim
    stream = sft_stream(
        train, batch_size=cfg.batch_size, length=cfg.data.max_length, pad_id=pad_id,
        seed=cfg.seed, grad_accum=o.grad_accum,
    )  # fmt: skip
    steps_per_epoch = hf_max_steps(batches_per_epoch(len(train), cfg.batch_size), o.grad_accum, 1)
    num_steps = hf_max_steps(stream.batches_per_epoch, o.grad_accum, cfg.epochs)
    evals = {"valid": Eval(valid_loss, every=steps_per_epoch, at_start=True)} if valid else {}
    early = EarlyStopping("valid/loss", patience=cfg.patience) if cfg.patience and valid else None
    result = fit(
        params=params, optim=o, num_steps=num_steps, batches=stream, mesh=mesh, workdir=workdir,
        loss_fn=loss_fn, constants=base, rules=DECODER_SHARDING_RULES, loop=cfg.loop,
        evals=evals, early_stopping=early, seed=cfg.seed,
        items_per_step=cfg.batch_size * o.grad_accum, desc=cfg.name,
    )  # fmt: skip
    metrics = {"steps": result.step, "train/loss": result.last_metrics.get("loss", float("nan"))}
    if valid:
        first = result.eval_history[0] if result.eval_history else {}
        # The returned state (the best evaluated one under early stopping), evaluated again.
        metrics |= {f"valid/{k}": v for k, v in valid_loss(result.state, result.step).items()}
        if result.best_step is not None:
            metrics["best_step"] = result.best_step
        metrics |= {
            f"start/{k}": v for k, v in first.items() if first.get("step") == 0 and k != "step"
        }
    table = _table(metrics)
    if jax.process_index() == 0:
        print(table)
    return make_summary(metrics, tables={"sft": table})


def _table(metrics: dict) -> str:
    rows = [("before training", "start/valid/"), ("after training", "valid/")]
    lines = ["| model | valid loss | valid perplexity |", "|---|---|---|"]
    for label, prefix in rows:
        if prefix + "loss" in metrics:
            lines.append(
                f"| {label} | {metrics[prefix + 'loss']:.4f} | {metrics[prefix + 'perplexity']:.2f} |"
            )
    return "\n".join(lines)
