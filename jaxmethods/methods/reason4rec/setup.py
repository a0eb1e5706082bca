"""The run's tokenizer and base decoder (a checkpoint, or the demo's tiny decoder pre-trained in
the run on the Summarizer's texts), and the distillation teacher (the rule-based mock on
synthetic data, else the LLM client)."""

from __future__ import annotations

import dataclasses
import os

import jax.numpy as jnp
from flax import nnx

from jaxmethods.data.forget_retain import sft_stream
from jaxmethods.methods.reason4rec.config import Reason4RecConfig
from jaxmethods.methods.reason4rec.experts import ChatFormat, last_epoch_loss
from jaxmethods.methods.reason4rec.prompts import get_prompts, rating_target
from jaxmethods.methods.reason4rec.resume import check_resume, fingerprint
from jaxmethods.methods.reason4rec.synthetic import RuleTeacher, reason_text
from jaxmethods.models.backbone import build_backbone
from jaxmethods.models.causal_lm import causal_lm_loss
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train import OptimConfig, fit, hf_max_steps


def _tiny_tokenizer(cfg: Reason4RecConfig, tables, summ_prompts: list[str]):
    from jaxmethods.data.tokenizer import build_tiny_tokenizer

    P, w = get_prompts(cfg.prompts), tables.world
    train = tables.train
    texts = list(summ_prompts) + list(train.teacher_summary)
    empty = dict(cls=cfg.data.product_class, title="song 1", user_history="1. song 2, 4.0;",
                 item_history="1. song 3\nx", user_avg="3.5", item_avg="4.0", rating="4.0")  # fmt: skip
    texts += [P.direct.format(**empty), P.predictor.format(**empty, analysis="a"),
              P.reasoner.format(**empty), P.reasoner_hint.format(**empty)]  # fmt: skip
    texts += [rating_target(k) for k in range(1, 6)] * 50
    if w is not None:
        texts += [reason_text(w, u, i) for u, i in zip(train.user_id, train.item_id)]
    return build_tiny_tokenizer(texts, vocab_size=cfg.model.vocab_size)


def build_base(cfg: Reason4RecConfig, mesh, workdir: str, tables, summ_prompts: list[str],
               docs: list[tuple[str, str | None]] = ()):  # fmt: skip
    """(tokenizer, base DecoderLM without adapters, metrics).

    A tiny base is language-model pre-trained (every weight, `pretrain_epochs`) on in-domain
    text of the train rows: the Summarizer's conversations (prompt + teacher summary) and `docs`
    ((user turn, assistant turn or None) pairs: the run passes the histories in the Reasoner's
    and the direct Predictor's formats, without any target, and each train review in the
    analysis slot with its rating). This stands in for what a pre-trained LLM brings: reading
    the history format, and knowing that a review ending "rhythm love" goes with a high rating.
    No reason, no Reasoner target and no test row is in it. (The direct Predictor's task is in
    it too: each history line's rating follows its title, after the user's earlier lines.)"""
    if not cfg.model.is_tiny:
        from jaxmethods.hf import load_tokenizer

        tokenizer = load_tokenizer(cfg.model.tokenizer_path)
        return tokenizer, build_backbone(cfg.model, tokenizer, mesh=mesh, seed=cfg.seed), {}
    tokenizer = _tiny_tokenizer(cfg, tables, summ_prompts)
    model = build_backbone(cfg.model, tokenizer, mesh=mesh, seed=cfg.seed)
    if cfg.pretrain_epochs <= 0:
        return tokenizer, model, {}
    # Tokenised as the experts' SFT examples are (prompt and response apart), labels on all.
    fmt = ChatFormat(tokenizer, max_length=cfg.max_length)
    pairs = [*zip(summ_prompts, tables.train.teacher_summary), *docs]
    ids = [fmt.prompt_ids(p) + ([*fmt.encode(s), fmt.eos_id] if s is not None else [])
           for p, s in pairs]  # fmt: skip
    examples = [{"input_ids": x, "labels": x} for x in ids]
    length = -(-max(len(x) for x in ids) // 16) * 16
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_fn(params, rest, batch, rng):
        loss, tokens = causal_lm_loss(nnx.merge(graphdef, params, rest), batch)
        return loss, {"tokens": tokens.astype(jnp.float32)}

    bs = 32
    settings = {"phase": "pretrain", "epochs": cfg.pretrain_epochs, "lr": cfg.pretrain_lr,
                "seed": cfg.seed, "batch_size": bs, "length": length}  # fmt: skip
    check_resume(os.path.join(workdir, "pretrain"),
                 fingerprint(base=rest, init=params, examples=examples, settings=settings))  # fmt: skip
    stream = sft_stream(examples, batch_size=bs, length=length, pad_id=tokenizer.pad_token_id,
                        seed=cfg.seed)  # fmt: skip
    result = fit(
        params=params, optim=OptimConfig(lr=cfg.pretrain_lr, warmup_ratio=0.05),
        num_steps=hf_max_steps(stream.batches_per_epoch, 1, cfg.pretrain_epochs),
        batches=stream, mesh=mesh, workdir=os.path.join(workdir, "pretrain"), loss_fn=loss_fn,
        constants=rest, rules=DECODER_SHARDING_RULES,
        loop=dataclasses.replace(cfg.loop, log_every=1), seed=cfg.seed, desc="pretrain",
        items_per_step=bs,
    )  # fmt: skip
    nnx.update(model, result.state.params)
    loss = last_epoch_loss(os.path.join(workdir, "pretrain", "metrics.jsonl"), result.step,
                           stream.batches_per_epoch)  # fmt: skip
    return tokenizer, model, {"pretrain/loss": loss}


def make_teacher(cfg: Reason4RecConfig, workdir: str, tables, rows, tps):
    """The distillation teacher: `FunctionClient(RuleTeacher)` on synthetic data ("rule"), or
    the configured LLM client ("llm": OpenAI-compatible, `jaxmethods.serve`, local)."""
    cache = os.path.join(workdir, "teacher_cache")
    if cfg.distill.teacher == "rule":
        from jaxmethods.llm import FunctionClient

        if tables.world is None:
            raise ValueError("config.distill.teacher='rule' needs the synthetic world")
        lookup = {}
        for r, tp in zip(rows.itertuples(), tps):
            lookup[tp.reason] = lookup[tp.hint] = (r.user_id, r.item_id)
        return FunctionClient(RuleTeacher(tables.world, lookup), model="rule-teacher",
                              cache_dir=cache, metrics_dir=os.path.join(workdir, "teacher"))  # fmt: skip
    from jaxmethods.llm import make_client

    return make_client(
        cfg.llm, cache_dir=cfg.llm.cache_dir or cache, metrics_dir=os.path.join(workdir, "teacher")
    )
