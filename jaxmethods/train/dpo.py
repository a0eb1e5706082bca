"""Generic DPO training pieces: preference-pair batches, the `loss_fn` for `fit`, and cached
reference log-probs. Not tied to any method (Self-Selection-RGP and DRC use it).

A pair is `{"chosen": ex, "rejected": ex}` where `ex` is a tokenised HF-layout example
(`input_ids`, `labels` with -100 on the prompt; unshifted), optionally with the reference's
summed log-probs `ref_chosen` / `ref_rejected` (floats) when they are cached.

A batch of P pairs (`gather_pairs`) keeps the two sides apart, so gradient-accumulation splits
along axis 0 keep every pair whole:

    {"chosen": {"input_ids", "attention_mask", "labels"} [P, L],
     "rejected": {...} [P, L], "pair_valid": [P] bool, ("ref_chosen", "ref_rejected": [P])}

Inside the loss the two sides are concatenated along the batch into one [2P, L] forward pass of
the policy (and one of the reference unless cached). The reference is one of

  "model"      a frozen copy of the initial trainable parameters (constants = (rest, ref_params));
  "lora_base"  the LoRA policy with its B factors zeroed (`lora_base_state`: the base model, no
               second copy; constants = rest);
  "cached"     `ref_chosen` / `ref_rejected` in the batch (`attach_reference_logprobs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.data.forget_retain import gather_examples, sft_stream
from jaxmethods.data.pipeline import BatchStream
from jaxmethods.data.tofu import QATemplate, tokenize_qa
from jaxmethods.losses.preference import dpo_loss
from jaxmethods.models.causal_lm import causal_lm_sequence_logprobs
from jaxmethods.models.lora import lora_base_state

REFERENCES = ("model", "lora_base", "cached")
NO_TEMPLATE = QATemplate("", "", "", "")  # prompts arrive fully rendered
_FIELDS = ("input_ids", "attention_mask", "labels")


def tokenize_pair(
    tokenizer: Any,
    prompt: str,
    chosen: str,
    rejected: str,
    *,
    max_length: int,
    template: QATemplate = NO_TEMPLATE,
) -> dict[str, dict]:
    """One preference pair -> {"chosen": ex, "rejected": ex} (labels on the response and EOS)."""
    kw = {"max_length": max_length}
    return {
        "chosen": tokenize_qa(tokenizer, template, prompt, chosen, **kw),
        "rejected": tokenize_qa(tokenizer, template, prompt, rejected, **kw),
    }


def gather_pairs(
    pairs: Sequence[Mapping[str, Any]], indices: np.ndarray, *, length: int, pad_id: int
) -> dict[str, Any]:
    """The batch of `pairs[indices]` (index -1 = an empty row, `pair_valid` False).

    Returns {"chosen", "rejected"}: `gather_examples` arrays [P, length]; "pair_valid" [P] bool;
    and "ref_chosen" / "ref_rejected" [P] float32 when the pairs carry cached reference log-probs.
    """
    sides = {}
    for side in ("chosen", "rejected"):
        ex = [p[side] for p in pairs]
        arrays = gather_examples(ex, indices, length=length, pad_id=pad_id)
        sides[side] = {k: arrays[k] for k in _FIELDS}
        valid = arrays["row_valid"]
    out = {**sides, "pair_valid": valid}
    if pairs and "ref_chosen" in pairs[0]:
        for name in ("ref_chosen", "ref_rejected"):
            col = np.zeros((len(indices),), np.float32)
            for row, i in enumerate(np.asarray(indices).tolist()):
                if i >= 0:
                    col[row] = pairs[i][name]
            out[name] = col
    return out


def dpo_stream(
    pairs: Sequence[Mapping[str, Any]],
    *,
    batch_size: int,
    length: int,
    pad_id: int,
    seed: int = 0,
    grad_accum: int = 1,
    prefetch: int = 2,
) -> BatchStream:
    """Epoch-shuffled, resumable batches of `batch_size` pairs (`grad_accum` micro-batches)."""
    if not pairs:
        raise ValueError("dpo_stream: no preference pairs to train on")
    return sft_stream(
        pairs, batch_size=batch_size, length=length, pad_id=pad_id, seed=seed,
        grad_accum=grad_accum, prefetch=prefetch, gather=gather_pairs,
    )  # fmt: skip


def pair_logprobs(model: Any, batch: Mapping[str, Any], *, chunk_size: int = 0):
    """Summed response log-probs of both sides in ONE forward pass over [2P, L].

    Returns (chosen [P], rejected [P], chosen_lengths [P], rejected_lengths [P]) float32.
    """
    c, r = batch["chosen"], batch["rejected"]
    both = {k: jnp.concatenate([c[k], r[k]], axis=0) for k in _FIELDS}
    logp, n = causal_lm_sequence_logprobs(
        model, both["input_ids"], both["attention_mask"], both["labels"], chunk_size=chunk_size
    )
    p = c["input_ids"].shape[0]
    return logp[:p], logp[p:], n[:p], n[p:]


def _masked_mean(x: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.sum(x * w) / jnp.maximum(jnp.sum(w), 1.0)


def make_dpo_loss_fn(
    graphdef: nnx.GraphDef,
    *,
    reference: str = "model",
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    loss_type: str = "sigmoid",
    chunk_size: int = 0,
    nll_weight: float = 0.0,
) -> Callable:
    """`loss_fn(params, constants, batch, rng) -> (loss, metrics)` for `jaxmethods.train.fit`.

    `constants` is `(rest, ref_params)` for reference "model", else `rest` (the frozen part of
    `nnx.split(model, trainable, ...)`). The loss is the mean of `dpo_loss` over valid pairs;
    `nll_weight` > 0 adds that times the chosen responses' mean token NLL (TRL's `rpo_alpha`,
    Pang et al. 2024), which keeps the chosen likelihood (and EOS) from drifting down. Metrics
    (TRL's names): rewards/chosen, rewards/rejected, rewards/margins (implicit rewards
    β·(log π − log π_ref)), rewards/accuracies (fraction with margin > 0), logps/chosen,
    logps/rejected, pairs.
    """
    if reference not in REFERENCES:
        raise ValueError(f"make_dpo_loss_fn: reference={reference!r} is not one of {REFERENCES}")

    def loss_fn(params, constants, batch, rng):
        del rng
        rest, ref_params = constants if reference == "model" else (constants, None)
        pc, pr, nc, nr = pair_logprobs(
            nnx.merge(graphdef, params, rest), batch, chunk_size=chunk_size
        )
        if reference == "cached":
            rc, rr = batch["ref_chosen"], batch["ref_rejected"]
        else:
            frozen = jax.lax.stop_gradient(params)
            ref_state = lora_base_state(frozen) if reference == "lora_base" else ref_params
            ref = nnx.merge(graphdef, ref_state, rest)
            rc, rr, _, _ = jax.lax.stop_gradient(pair_logprobs(ref, batch, chunk_size=chunk_size))
        out = dpo_loss(
            pc, pr, rc, rr, beta=beta, label_smoothing=label_smoothing, loss_type=loss_type,
            chosen_lengths=nc, rejected_lengths=nr,
        )  # fmt: skip
        w = batch["pair_valid"].astype(jnp.float32)
        loss = _masked_mean(out.losses, w)
        if nll_weight > 0:
            nll = _masked_mean(-pc / jnp.maximum(nc, 1.0), w)
            loss = loss + nll_weight * nll
        metrics = {
            "rewards/chosen": _masked_mean(out.chosen_rewards, w),
            "rewards/rejected": _masked_mean(out.rejected_rewards, w),
            "rewards/margins": _masked_mean(out.margins, w),
            "rewards/accuracies": _masked_mean((out.margins > 0).astype(jnp.float32), w),
            "logps/chosen": _masked_mean(jax.lax.stop_gradient(pc), w),
            "logps/rejected": _masked_mean(jax.lax.stop_gradient(pr), w),
            "pairs": jnp.sum(w),
        }
        return loss, metrics

    return loss_fn


def attach_reference_logprobs(
    model: nnx.Module,
    pairs: Sequence[Mapping[str, Any]],
    *,
    batch_size: int,
    length: int,
    pad_id: int,
    chunk_size: int = 0,
) -> list[dict]:
    """`pairs` with `ref_chosen` / `ref_rejected` (floats) computed once by `model` (the frozen
    reference), batch by batch with one jitted forward; for `reference="cached"`."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def score(state, batch):
        pc, pr, _, _ = pair_logprobs(nnx.merge(graphdef, state), batch, chunk_size=chunk_size)
        return pc, pr

    out = []
    for start in range(0, len(pairs), batch_size):
        idx = np.arange(start, start + batch_size)
        idx[idx >= len(pairs)] = -1
        batch = gather_pairs(pairs, idx, length=length, pad_id=pad_id)
        batch = {k: batch[k] for k in ("chosen", "rejected")}
        pc, pr = jax.device_get(score(state, batch))
        for row, i in enumerate(idx.tolist()):
            if i >= 0:
                out.append(
                    {**pairs[i], "ref_chosen": float(pc[row]), "ref_rejected": float(pr[row])}
                )
    return out


def reference_constants(reference: str, rest: Any, params: Any) -> Any:
    """The `constants` the loss of `reference` expects: `(rest, copy of params)` for "model"."""
    if reference == "model":
        return rest, jax.tree.map(jnp.copy, params)
    return rest
