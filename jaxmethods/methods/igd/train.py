"""IGD end to end: data -> per-beta tuning (sharded, checkpointed, early-stopped) -> IGD decoding.

For every beta of `config.tuning.betas` a fresh model is fine-tuned with the token-weighted loss
(AdamW, linear warmup then linear decay, global-norm clipping, micro-batch x accumulation as in
the authors' HF Trainer), evaluated on the weighted validation loss each epoch with early stopping,
restored to its best epoch, then decoded on the test split with trie-constrained beam search for
every alpha of `config.decode.alphas`. The summary holds HR@K / NDCG@K per (beta, alpha).
"""

from __future__ import annotations

import logging
import os

import jax
import optax
from flax import nnx

from jaxmethods.methods.igd.config import IGDConfig, from_config_dict
from jaxmethods.methods.igd.dataset import BatchIterator, reweighted, round_up
from jaxmethods.methods.igd.decoding import IGDLogitsProcessor
from jaxmethods.methods.igd.pipeline import PreparedData, prepare
from jaxmethods.methods.igd.predict import evaluate_decoding
from jaxmethods.methods.igd.steps import make_eval_loss, make_loss_fn, validation_loss
from jaxmethods.models.backbone import build_backbone
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.lora import LoRAParam, apply_lora
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train.checkpoint import Checkpointer
from jaxmethods.train.loop import put_batch, train_loop
from jaxmethods.train.mesh import batch_size_multiple, data_sharding, make_mesh
from jaxmethods.train.metrics import MetricWriter
from jaxmethods.train.sharding import param_shardings
from jaxmethods.train.state import TrainState
from jaxmethods.train.step import jit_train_step, make_train_step, state_shardings

log = logging.getLogger(__name__)


def build_model(cfg: IGDConfig, tokenizer, mesh) -> DecoderLM:
    m = cfg.model
    max_len = max(cfg.data.cutoff_len + cfg.decode.max_new_tokens, 512)
    model = build_backbone(m.backbone(max_len), tokenizer, mesh=mesh, seed=cfg.seed)
    if m.lora_rank > 0:
        apply_lora(
            model,
            rank=m.lora_rank,
            alpha=m.lora_alpha,
            dropout=m.lora_dropout,
            target_modules=m.lora_targets,
            rngs=nnx.Rngs(cfg.seed + 1),
        )
    return model


def linear_warmup_decay(lr: float, warmup: int, total: int) -> optax.Schedule:
    """HF's `get_linear_schedule_with_warmup`: 0 -> lr over `warmup`, then linearly to 0."""
    warmup = min(warmup, max(total - 1, 0))
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, lr, max(warmup, 1)),
            optax.linear_schedule(lr, 0.0, max(total - warmup, 1)),
        ],
        [warmup],
    )


def _eval_rows(writer: MetricWriter) -> dict[int, float]:
    return {r["step"]: r["eval/loss"] for r in writer.read() if "eval/loss" in r}


def train_and_evaluate(cfg: IGDConfig, data: PreparedData, beta: float, workdir: str, mesh) -> dict:
    """Fine-tunes one model with weights for `beta`, restores its best epoch, decodes the test set."""
    t = cfg.tuning
    pad_id = data.tokenizer.pad_token_id if data.tokenizer.pad_token_id is not None else 0
    train = reweighted(data.train, t.weighting, beta)
    # The authors' Pos/CFT trainer (`DebiasedTrainer`) validates with the model's plain token-mean
    # CE; IGD's trainer validates with the same weighted loss it trains on.
    valid = reweighted(data.valid, "none" if t.weighting == "pos" else t.weighting, beta)
    seq_len = round_up(
        max(train.max_length(cfg.data.cutoff_len), valid.max_length(cfg.data.cutoff_len)), 8
    )
    batch = t.micro_batch_size * t.grad_accum_steps
    multiple = batch_size_multiple(mesh)
    if t.micro_batch_size % multiple or t.eval_batch_size % multiple:
        raise ValueError(
            f"config.tuning.micro_batch_size ({t.micro_batch_size}) and eval_batch_size "
            f"({t.eval_batch_size}) must be multiples of the {multiple} data-parallel devices"
        )
    steps_per_epoch = len(train) // batch
    if steps_per_epoch < 1:
        raise ValueError(f"config.tuning: {len(train)} train examples < one batch of {batch}")

    model = build_model(cfg, data.tokenizer, mesh)
    trainable = LoRAParam if cfg.model.lora_rank > 0 else nnx.Param
    graphdef, params, frozen = nnx.split(model, trainable, ...)
    total = steps_per_epoch * t.epochs
    tx = optax.chain(
        optax.clip_by_global_norm(t.max_grad_norm),
        optax.adamw(linear_warmup_decay(t.lr, t.warmup_steps, total), b1=0.9, b2=0.999, eps=1e-8,
                    weight_decay=t.weight_decay),
    )  # fmt: skip
    param_sh = param_shardings(params, mesh, DECODER_SHARDING_RULES)
    frozen_sh = param_shardings(frozen, mesh, DECODER_SHARDING_RULES)
    state = TrainState.create(params, tx, cfg.seed)
    shardings = state_shardings(state, param_sh, mesh)
    state, frozen = jax.device_put(state, shardings), jax.device_put(frozen, frozen_sh)
    use_dropout = cfg.model.lora_rank > 0 and cfg.model.lora_dropout > 0
    loss_fn = make_loss_fn(
        graphdef, cft_alpha=t.cft_alpha, chunk_size=t.logprob_chunk, use_dropout=use_dropout
    )
    batch_sh = data_sharding(mesh)
    step_fn = jit_train_step(
        make_train_step(loss_fn, tx, grad_accum_steps=t.grad_accum_steps),
        mesh, shardings, batch_sh, frozen_shardings=frozen_sh,
    )  # fmt: skip
    eval_loss = make_eval_loss(graphdef, chunk_size=t.logprob_chunk)

    def run_eval(s: TrainState, step: int) -> dict:
        loss = validation_loss(
            eval_loss, s.params, frozen, valid, batch_size=t.eval_batch_size, seq_len=seq_len,
            pad_id=pad_id, put=lambda b: put_batch(b, batch_sh),
        )  # fmt: skip
        return {"eval/loss": loss, "epoch": step // steps_per_epoch}

    batches = BatchIterator(
        train, batch, seq_len, pad_id=pad_id, seed=cfg.seed, counterfactual=t.cft_alpha > 0
    )
    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"),
        save_every=steps_per_epoch,
        keep=max(cfg.keep_checkpoints, t.patience + 1),
    )
    writer = MetricWriter(workdir)
    best_step, best_loss, bad_epochs = 0, float("inf"), 0
    for epoch in range(1, t.epochs + 1):
        result = train_loop(
            step_fn=step_fn, state=state, frozen=frozen, batches=batches,
            num_steps=epoch * steps_per_epoch, workdir=workdir, batch_sharding=batch_sh,
            checkpointer=checkpointer, log_every=cfg.log_every, eval_fn=run_eval,
            eval_every=steps_per_epoch, items_per_step=batch, progress=cfg.progress,
            desc=f"{cfg.name} beta={beta} epoch {epoch}",
        )  # fmt: skip
        state = result.state
        step = epoch * steps_per_epoch
        loss = _eval_rows(writer).get(step)
        if loss is None:  # resumed past this epoch without its eval row
            loss = run_eval(state, step)["eval/loss"]
        log.info("beta=%g epoch %d: weighted validation loss %.4f", beta, epoch, loss)
        if loss < best_loss:
            best_step, best_loss, bad_epochs = step, loss, 0
        else:
            bad_epochs += 1
            if bad_epochs >= t.patience:
                log.info("early stopping after epoch %d (best: step %d)", epoch, best_step)
                break
    if best_step != state_step(state):
        state, _, _ = checkpointer.restore(state, step=best_step)
    checkpointer.close()
    model = nnx.merge(graphdef, state.params, frozen)

    d = cfg.decode
    processor = IGDLogitsProcessor.from_trie(
        data.trie, vocab_size=model.config.vocab_size, alpha=0.0
    )
    out = {"best_step": best_step, "best_valid_loss": best_loss, "epochs_run": epoch}
    for alpha in d.alphas:
        metrics, _ = evaluate_decoding(
            model, data.tokenizer, data.test_prompts, data.test_titles,
            processor.with_alpha(alpha), ks=d.ks, batch_size=d.batch_size, num_beams=d.num_beams,
            num_return_sequences=d.num_return_sequences, max_new_tokens=d.max_new_tokens,
            length_penalty=d.length_penalty,
        )  # fmt: skip
        out[f"alpha={alpha:g}"] = metrics
        log.info("beta=%g alpha=%g: %s", beta, alpha, _fmt(metrics))
    return out


def state_step(state: TrainState) -> int:
    return int(jax.device_get(state.step))


def _fmt(metrics: dict) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items())


def results_table(results: dict) -> str:
    """Markdown table: one row per (beta, alpha) with HR/NDCG at the paper's cut-offs."""
    header = None
    lines = []
    for beta_key, res in results.items():
        for alpha_key, metrics in res.items():
            if not alpha_key.startswith("alpha="):
                continue
            if header is None:
                header = list(metrics)
                lines.append("| beta | alpha | " + " | ".join(header) + " |")
                lines.append("|---|---|" + "---|" * len(header))
            vals = " | ".join(f"{metrics[k]:.4f}" for k in header)
            lines.append(f"| {beta_key.split('=')[1]} | {alpha_key.split('=')[1]} | {vals} |")
    return "\n".join(lines)


def run(config, workdir: str) -> dict:
    cfg = from_config_dict(config)
    mesh = make_mesh(cfg.mesh)
    data = prepare(cfg, workdir)
    results = {}
    for beta in cfg.tuning.betas:
        sub = os.path.join(workdir, f"beta_{beta:g}")
        results[f"beta={beta:g}"] = train_and_evaluate(cfg, data, beta, sub, mesh)
    table = results_table(results)
    print(f"\nIGD ({cfg.name}, weighting={cfg.tuning.weighting}, "
          f"length_penalty={cfg.decode.length_penalty:g})\n{table}\n")  # fmt: skip
    return {"data": data.stats, "results": results, "table": table}
