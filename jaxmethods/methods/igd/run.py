"""IGD end to end: data -> one `fit` per beta (early-stopped on the weighted validation loss,
best epoch restored) -> IGD decoding of the test split for every alpha -> HR@K / NDCG@K.

Training is the authors' HF Trainer run on the shared trainer: AdamW with HF's linear schedule
and warmup, global-norm clipping, `optim.grad_accum` micro-batches per step with windows that
cross epoch boundaries (`hf_max_steps`), evaluation every epoch, EarlyStopping(patience) and
load_best_model_at_end.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os

from flax import nnx

from jaxmethods.data.pipeline import batches_per_epoch, step_stream
from jaxmethods.methods.igd.config import IGDConfig, from_config_dict
from jaxmethods.methods.igd.dataset import assemble_batch, reweighted, round_up
from jaxmethods.methods.igd.decoding import IGDLogitsProcessor
from jaxmethods.methods.igd.loss import make_eval_loss, make_loss_fn, validation_loss
from jaxmethods.methods.igd.pipeline import PreparedData, prepare
from jaxmethods.methods.igd.predict import evaluate_decoding
from jaxmethods.models.backbone import build_backbone, split_trainable
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train import (
    EarlyStopping,
    Eval,
    LoopResult,
    batch_size_multiple,
    data_sharding,
    fit,
    hf_max_steps,
    make_mesh,
    make_summary,
    put_batch,
    shard_and_place,
)

log = logging.getLogger(__name__)


def build_model(cfg: IGDConfig, tokenizer, mesh) -> DecoderLM:
    """The backbone (LoRA inside when `model.lora.rank` > 0); a tiny decoder's positions cover
    the longest prompt plus the generated tokens."""
    m = cfg.model
    if m.is_tiny:
        need = cfg.data.cutoff_len + cfg.decode.max_new_tokens
        m = dataclasses.replace(m, max_position_embeddings=max(m.max_position_embeddings, need))
    return build_backbone(m, tokenizer, mesh=mesh, seed=cfg.seed)


def step_plan(num_train: int, cfg: IGDConfig) -> tuple[int, int]:
    """(optimizer steps, steps per epoch) as HF Trainer 4.45 counts them: a DataLoader of
    `micro_batch_size` (last batch short unless `drop_last`), `grad_accum` per step."""
    t = cfg.tuning
    bpe = batches_per_epoch(num_train, t.micro_batch_size, drop_last=t.drop_last)
    return hf_max_steps(bpe, cfg.optim.grad_accum, t.epochs), max(bpe // cfg.optim.grad_accum, 1)


def tune(cfg: IGDConfig, data: PreparedData, beta: float, workdir: str, mesh) -> tuple:
    """Fine-tunes one model with the weights of `beta`; returns (model at its best epoch,
    the loop's result, steps per epoch)."""
    t = cfg.tuning
    pad_id = data.tokenizer.pad_token_id if data.tokenizer.pad_token_id is not None else 0
    train = reweighted(data.train, t.weighting, beta)
    # The authors' Pos/CFT trainer (`DebiasedTrainer`) validates with the model's plain token-mean
    # CE; IGD's trainer validates with the same weighted loss it trains on.
    valid = reweighted(data.valid, "none" if t.weighting == "pos" else t.weighting, beta)
    cutoff = cfg.data.cutoff_len
    seq_len = round_up(max(train.max_length(cutoff), valid.max_length(cutoff)), 8)
    multiple = batch_size_multiple(mesh)
    if t.micro_batch_size % multiple or t.eval_batch_size % multiple:
        raise ValueError(
            f"config.tuning.micro_batch_size ({t.micro_batch_size}) and eval_batch_size "
            f"({t.eval_batch_size}) must be multiples of the {multiple} data-parallel devices"
        )
    num_steps, steps_per_epoch = step_plan(len(train), cfg)

    model = build_model(cfg, data.tokenizer, mesh)
    graphdef, params, base = split_trainable(model, cfg.model)
    base, _ = shard_and_place(base, mesh, DECODER_SHARDING_RULES)
    chunk = cfg.model.logits_chunk_size
    use_dropout = cfg.model.lora.rank > 0 and cfg.model.lora.dropout > 0
    loss_fn = make_loss_fn(
        graphdef, cft_alpha=t.cft_alpha, chunk_size=chunk, use_dropout=use_dropout
    )
    eval_loss = make_eval_loss(graphdef, chunk_size=chunk)
    batch_sh = data_sharding(mesh)

    def valid_loss(state, step: int) -> dict:
        loss = validation_loss(
            eval_loss, state.params, base, valid, batch_size=t.eval_batch_size,
            seq_len=seq_len, pad_id=pad_id, put=lambda b: put_batch(b, batch_sh),
        )  # fmt: skip
        log.info("beta=%g step %d: weighted validation loss %.4f", beta, step, loss)
        return {"loss": loss, "epoch": step / steps_per_epoch}

    collate = functools.partial(
        assemble_batch, train, seq_len=seq_len, pad_id=pad_id, counterfactual=t.cft_alpha > 0
    )
    batches = step_stream(
        len(train), collate, micro_batch_size=t.micro_batch_size,
        grad_accum=cfg.optim.grad_accum, seed=cfg.seed, drop_last=t.drop_last,
    )  # fmt: skip
    result = fit(
        params=params, optim=cfg.optim, num_steps=num_steps, batches=batches, mesh=mesh,
        workdir=workdir, loss_fn=loss_fn, constants=base, rules=DECODER_SHARDING_RULES,
        loop=cfg.loop, evals={"valid": Eval(valid_loss, every=steps_per_epoch)},
        early_stopping=EarlyStopping("valid/loss", patience=t.patience, restore_best=True),
        seed=cfg.seed, items_per_step=t.micro_batch_size * cfg.optim.grad_accum,
        desc=f"{cfg.name} beta={beta:g}",
    )  # fmt: skip
    return nnx.merge(graphdef, result.state.params, base), result, steps_per_epoch


def decode_all(cfg: IGDConfig, data: PreparedData, model: DecoderLM) -> dict[str, dict]:
    """HR@K / NDCG@K of IGD decoding on the test split, one entry `alpha=<a>` per alpha."""
    d = cfg.decode
    processor = IGDLogitsProcessor.from_trie(
        data.trie, vocab_size=model.config.vocab_size, alpha=0.0
    )
    out = {}
    for alpha in d.alphas:
        metrics, _ = evaluate_decoding(
            model, data.tokenizer, data.test_prompts, data.test_titles,
            processor.with_alpha(alpha), ks=d.ks, batch_size=d.batch_size, num_beams=d.num_beams,
            num_return_sequences=d.num_return_sequences, max_new_tokens=d.max_new_tokens,
            length_penalty=d.length_penalty,
        )  # fmt: skip
        out[f"alpha={alpha:g}"] = metrics
        log.info("alpha=%g: %s", alpha, " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    return out


def training_summary(result: LoopResult, steps_per_epoch: int) -> dict[str, float]:
    return {
        "best_step": result.best_step if result.best_step is not None else result.step,
        "best_valid_loss": result.best_metric if result.best_metric is not None else float("nan"),
        "steps": result.step,
        "epochs_run": result.step / steps_per_epoch,
        "stopped_early": int(result.stopped_early),
    }


def results_table(results: dict[str, dict]) -> str:
    """Markdown: one row per (beta, alpha) with every HR/NDCG cut-off of the run."""
    lines: list[str] = []
    for beta_key, res in results.items():
        for alpha_key, metrics in res.items():
            if not alpha_key.startswith("alpha="):
                continue
            if not lines:
                lines.append("| beta | alpha | " + " | ".join(metrics) + " |")
                lines.append("|---|---|" + "---|" * len(metrics))
            vals = " | ".join(f"{v:.4f}" for v in metrics.values())
            lines.append(f"| {beta_key.split('=')[1]} | {alpha_key.split('=')[1]} | {vals} |")
    return "\n".join(lines)


def run(config, workdir: str) -> dict:
    """Every beta of `tuning.betas` x every alpha of `decode.alphas`; returns `make_summary` with
    flat keys `beta=<b>/alpha=<a>/ndcg@10`, `beta=<b>/best_step`, `data/<stat>` and the table."""
    cfg = from_config_dict(config)
    mesh = make_mesh(cfg.mesh)
    data = prepare(cfg, workdir)
    results: dict[str, dict] = {}
    for beta in cfg.tuning.betas:
        sub = os.path.join(workdir, f"beta_{beta:g}")
        model, result, steps_per_epoch = tune(cfg, data, beta, sub, mesh)
        results[f"beta={beta:g}"] = {
            **training_summary(result, steps_per_epoch),
            **decode_all(cfg, data, model),
        }
    table = results_table(results)
    print(f"\nIGD ({cfg.name}, weighting={cfg.tuning.weighting}, "
          f"length_penalty={cfg.decode.length_penalty:g})\n{table}\n")  # fmt: skip
    return make_summary({"data": data.stats, **results}, tables={"igd": table})
