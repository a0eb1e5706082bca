"""Supervised fine-tuning of a decoder on (chat-templated prompt, completion) texts, through the
shared `fit` (checkpointed, resumable): PERM's tiny-policy warm start and the demo's tiny judge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
from flax import nnx

from jaxmethods.data.forget_retain import sft_stream
from jaxmethods.models.backbone import BackboneConfig, split_trainable
from jaxmethods.models.causal_lm import causal_lm_loss
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train import fit
from jaxmethods.train.optim import OptimConfig
from jaxmethods.train.trainer import LoopConfig, shard_and_place

IGNORE = -100


def tokenize_pairs(
    tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int
) -> list[dict[str, list[int]]]:
    """HF-layout examples: prompt ids (the template's own special tokens) + completion ids + EOS;
    labels -100 on the prompt. Prompts are cut from the left to fit `max_length`."""
    out = []
    for prompt, completion in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(c) >= max_length:
            raise ValueError(
                f"a completion of {len(c)} tokens does not fit max_length={max_length}"
            )
        p = p[len(p) + len(c) - max_length :] if len(p) + len(c) > max_length else p
        out.append({"input_ids": p + c, "labels": [IGNORE] * len(p) + c})
    return out


def finetune(
    model: nnx.Module,
    model_cfg: BackboneConfig,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    max_length: int,
    mesh: Any,
    workdir: str,
    seed: int = 0,
    loop: LoopConfig | None = None,
) -> tuple[nnx.Module, float]:
    """(the fine-tuned model, its last training loss) after `steps` AdamW steps (constant lr)."""
    examples = tokenize_pairs(tokenizer, pairs, max_length)
    length = max(len(e["input_ids"]) for e in examples)
    length = -(-length // 16) * 16
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    graphdef, params, rest = split_trainable(model, model_cfg)
    rest, _ = shard_and_place(rest, mesh, DECODER_SHARDING_RULES)

    def loss_fn(params, rest, batch, rng):
        m = nnx.merge(graphdef, params, rest)
        loss, tokens = causal_lm_loss(m, batch)
        return loss, {"tokens": tokens.astype(jnp.float32)}

    stream = sft_stream(examples, batch_size=batch_size, length=length, pad_id=pad_id, seed=seed)
    optim = OptimConfig(lr=lr, schedule="constant")
    loop = loop or LoopConfig(checkpoint_every=0, progress=False, log_every=max(1, steps // 4))
    result = fit(
        params=params, optim=optim, num_steps=steps, batches=stream, mesh=mesh, workdir=workdir,
        loss_fn=loss_fn, constants=rest, rules=DECODER_SHARDING_RULES, loop=loop, seed=seed,
        items_per_step=batch_size, desc="sft",
    )  # fmt: skip
    trained = nnx.merge(graphdef, result.state.params, rest)
    return trained, float(result.last_metrics.get("loss", float("nan")))
