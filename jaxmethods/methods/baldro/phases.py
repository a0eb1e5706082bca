"""The training phases of a BalDRO run, each on the shared trainer (`jaxmethods.train.fit`) in
its own folder: the demo's two fine-tunes and one unlearning run per variant.

Every phase checkpoints (`config.loop`), so a rerun continues the phase it was in. A finished
unlearning phase leaves `phase_done.json`, and a rerun skips it without restoring its weights;
a finished fine-tune is restored from its final checkpoint (its weights are needed next).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.data.forget_retain import forget_retain_stream, sft_stream
from jaxmethods.data.pipeline import batches_per_epoch
from jaxmethods.eval.likelihood import sequence_statistics
from jaxmethods.methods.baldro.assets import RunData, make_token_ce
from jaxmethods.methods.baldro.config import BalDROConfig
from jaxmethods.methods.baldro.evaluation import Evaluator
from jaxmethods.methods.baldro.objective import objective
from jaxmethods.methods.baldro.schedule import StepPlan, plan_steps
from jaxmethods.models.causal_lm import causal_lm_loss
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train.loop import Eval
from jaxmethods.train.metrics import write_json_atomic
from jaxmethods.train.optim import hf_max_steps, num_warmup_steps
from jaxmethods.train.trainer import fit

log = logging.getLogger(__name__)

DONE_FILE = "phase_done.json"
TRUTH_RATIO_FILE = "forget_truth_ratios.json"


def copy_params(params: Any) -> Any:
    """A fresh copy (a donated train state must not alias the caller's arrays)."""
    return jax.tree.map(lambda x: jnp.array(x, copy=True), params)


def sft_loss_fn(graphdef: nnx.GraphDef, chunk_size: int) -> Callable:
    """HF causal-LM loss: the token mean over the micro-batch's label tokens (padding rows have
    none)."""

    def loss_fn(params, constants, batch, rng):
        del constants, rng
        loss, _ = causal_lm_loss(nnx.merge(graphdef, params), batch, chunk_size=chunk_size)
        return loss, {}

    return loss_fn


def finetune(cfg: BalDROConfig, graphdef, params, examples, pad_id: int, mesh, workdir: str) -> Any:
    """Plain SFT of the demo's tiny model on QA examples; returns the trained params."""
    f = cfg.finetune
    stream = sft_stream(examples, batch_size=f.batch_size, length=cfg.data.sequence_length,
                        pad_id=pad_id, seed=cfg.seed)  # fmt: skip
    steps = hf_max_steps(batches_per_epoch(len(examples), f.batch_size), 1, f.epochs)
    optim = dataclasses.replace(cfg.optim, lr=f.lr, warmup_steps=f.warmup_steps, grad_accum=1)
    result = fit(
        params=copy_params(params), optim=optim, num_steps=steps, batches=stream, mesh=mesh,
        workdir=workdir, loss_fn=sft_loss_fn(graphdef, cfg.model.logits_chunk_size),
        rules=DECODER_SHARDING_RULES, loop=cfg.loop, seed=cfg.seed,
        desc=f"finetune {os.path.basename(workdir)}",
    )  # fmt: skip
    return result.state.params


def unlearning_plan(cfg: BalDROConfig, num_forget: int) -> StepPlan:
    """Steps, warmup (TOFU's rule, else `optim.warmup_steps` / `warmup_ratio`) and eval steps."""
    t = cfg.train
    plan = plan_steps(num_forget, t.micro_batch_size, cfg.optim.grad_accum, t.epochs,
                      warmup_epochs=t.warmup_epochs)  # fmt: skip
    if t.warmup_epochs <= 0:
        plan = dataclasses.replace(plan, warmup_steps=num_warmup_steps(cfg.optim, plan.max_steps))
    return plan


def _with_reference_nll(cfg, graphdef, params0, data: RunData) -> list[dict]:
    """Forget examples with the starting weights' summed NLL as "ref_nll" (NPO's reference)."""
    ref = sequence_statistics(
        nnx.merge(graphdef, params0), data.forget, batch_size=cfg.eval.batch_size,
        length=cfg.data.sequence_length, pad_id=data.pad_id,
    )["nll"]  # fmt: skip
    return [dict(ex, ref_nll=float(r)) for ex, r in zip(data.forget, ref)]


def unlearn(
    cfg: BalDROConfig,
    variant: str,
    graphdef,
    params0,
    data: RunData,
    mesh,
    workdir: str,
    evaluator: Evaluator,
    start_row: dict[str, float],
) -> StepPlan:
    """Unlearns `params0` with one variant, evaluating at every epoch end (and at step 0 with
    `eval.at_start`, where the weights are `params0` and `start_row` is their evaluation).

    The evaluations go to `<workdir>/metrics.jsonl` as `eval/<metric>` with `eval/epoch`; the
    final forget truth ratios to `forget_truth_ratios.json`. Returns the step plan.
    """
    obj = cfg.objective(variant)
    plan = unlearning_plan(cfg, len(data.forget))
    if os.path.exists(os.path.join(workdir, DONE_FILE)):
        log.info("%s: finished earlier, skipped", workdir)
        return plan
    forget, extra = data.forget, ()
    if obj.needs_reference and obj.reference == "precomputed":
        forget, extra = _with_reference_nll(cfg, graphdef, params0, data), ("ref_nll",)
    stream = forget_retain_stream(
        forget, data.retain, micro_batch_size=cfg.train.micro_batch_size,
        grad_accum=cfg.optim.grad_accum, length=cfg.data.sequence_length, pad_id=data.pad_id,
        seed=cfg.seed, extra_forget_fields=extra,
    )  # fmt: skip
    token_ce = make_token_ce(graphdef, cfg.model.logits_chunk_size)

    def loss_fn(params, reference, batch, rng):
        return objective(obj, token_ce, params, reference, batch, rng)

    last_tr: dict[str, Any] = {}

    def eval_fn(state, step: int) -> dict[str, float]:
        if step == 0:
            row = dict(start_row)
        else:
            row, last_tr["values"] = evaluator.evaluate(state.params)
        return {**row, "epoch": plan.epoch_at(step)}

    steps = frozenset(plan.epoch_end_steps) if cfg.eval.every_epoch else frozenset()
    evals = {"eval": Eval(eval_fn, at_start=cfg.eval.at_start, steps=steps)}
    reference = copy_params(params0) if obj.needs_reference and obj.reference == "frozen" else None
    optim = dataclasses.replace(cfg.optim, warmup_steps=plan.warmup_steps)
    fit(
        params=copy_params(params0), optim=optim, num_steps=plan.max_steps, batches=stream,
        mesh=mesh, workdir=workdir, loss_fn=loss_fn, constants=reference,
        rules=DECODER_SHARDING_RULES, loop=cfg.loop, evals=evals, seed=cfg.seed,
        items_per_step=cfg.train.micro_batch_size * cfg.optim.grad_accum, item_name="pairs",
        desc=cfg.phase_name(variant),
    )  # fmt: skip
    if jax.process_index() == 0:
        if "values" in last_tr and last_tr["values"] is not None:
            write_json_atomic(os.path.join(workdir, TRUTH_RATIO_FILE), last_tr["values"])
        write_json_atomic(os.path.join(workdir, DONE_FILE), dataclasses.asdict(plan))
    return plan
