"""The demo's base model: a tiny decoder pre-trained in the run on the synthetic world
(`synthetic.pretraining_rows`) with the shared trainer; resumable like every `fit`."""

from __future__ import annotations

import dataclasses
import os

import jax.numpy as jnp
from flax import nnx

from jaxmethods.data.forget_retain import sft_stream
from jaxmethods.data.tofu import tokenize_qa
from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.methods.selfselect.config import SelfSelectConfig
from jaxmethods.methods.selfselect.prompts import render
from jaxmethods.methods.selfselect.synthetic import World, make_world, pretraining_rows
from jaxmethods.models.backbone import build_backbone, split_trainable
from jaxmethods.models.causal_lm import causal_lm_loss
from jaxmethods.models.lora import apply_lora
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train import OptimConfig, fit
from jaxmethods.train.dpo import NO_TEMPLATE


def padded_length(lengths, multiple: int = 8) -> int:
    return -(-max(lengths) // multiple) * multiple


def pretrain_synthetic(cfg: SelfSelectConfig, mesh, workdir: str):
    """(world, tokenizer, model): the world, a tiny BPE trained on its texts, and the tiny
    decoder after `data.pretrain_epochs` epochs of SFT on the pre-training rows."""
    world: World = make_world(cfg.data.world)
    rows = pretraining_rows(world, cfg.prompts, cfg.data.world)
    texts = [r["prompt"] + r["response"] for r in rows] + [p.text for p in world.corpus]
    texts += [render("select", cfg.prompts, q["question"], [("", "x")], ["a", "b"])
              for q in world.train + world.test]  # fmt: skip
    tokenizer = build_tiny_tokenizer(texts, vocab_size=cfg.model.vocab_size)
    examples = [tokenize_qa(tokenizer, NO_TEMPLATE, r["prompt"], r["response"], max_length=512)
                for r in rows]  # fmt: skip
    length = padded_length([len(e["input_ids"]) for e in examples])
    # Pre-training updates every weight; LoRA adapters (if any) come afterwards, for DPO.
    full = dataclasses.replace(cfg.model, lora=dataclasses.replace(cfg.model.lora, rank=0))
    model = build_backbone(full, tokenizer, mesh=mesh, seed=cfg.seed)
    graphdef, params, rest = split_trainable(model, full)

    def loss_fn(params, rest, batch, rng):
        loss, tokens = causal_lm_loss(nnx.merge(graphdef, params, rest), batch, dropout_rng=rng)
        return loss, {"tokens": tokens.astype(jnp.float32)}

    d = cfg.data
    stream = sft_stream(examples, batch_size=d.pretrain_batch_size, length=length,
                        pad_id=tokenizer.pad_token_id, seed=cfg.seed)  # fmt: skip
    num_steps = max(1, int(d.pretrain_epochs * len(examples) / d.pretrain_batch_size))
    optim = OptimConfig(lr=d.pretrain_lr, warmup_ratio=0.05, schedule="linear")
    result = fit(
        params=params, optim=optim, num_steps=num_steps, batches=stream, mesh=mesh,
        workdir=os.path.join(workdir, "pretrain"), loss_fn=loss_fn, constants=rest,
        rules=DECODER_SHARDING_RULES, loop=cfg.loop, seed=cfg.seed, desc=f"{cfg.name}/pretrain",
    )  # fmt: skip
    nnx.update(model, result.state.params)
    lora = cfg.model.lora
    if lora.rank > 0:
        apply_lora(model, rank=lora.rank, alpha=lora.alpha, dropout=lora.dropout,
                   target_modules=lora.targets, rngs=nnx.Rngs(cfg.seed + 1))  # fmt: skip
    return world, tokenizer, model, result
