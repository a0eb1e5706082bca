"""Self-Selection RAG and Self-Selection-RGP end to end.

base model -> retrieval -> the three-prompt pipeline on the test questions (LLM-only, Standard
RAG and Self-Selection rows) -> the RGP pairs from sampled answers on the train questions ->
DPO (`jaxmethods.train.dpo` on the shared trainer) -> the pipeline again with the trained
policy (Self-Selection-RGP) -> one table. Every phase resumes: pre-training and DPO from their
checkpoints, the RGP file from its finished questions.
"""

from __future__ import annotations

import logging
import os
import time

import jax
import numpy as np
from flax import nnx

from jaxmethods.methods.selfselect.config import SelfSelectConfig, dpo_reference, from_config_dict
from jaxmethods.methods.selfselect.data import build_retriever, few_shot, load_questions, make_items
from jaxmethods.methods.selfselect.evaluate import evaluate, table
from jaxmethods.methods.selfselect.pipeline import ClientGenerator, LocalGenerator, self_select
from jaxmethods.methods.selfselect.pretrain import padded_length, pretrain_synthetic
from jaxmethods.methods.selfselect.rgp import build_rgp, stats_table, training_pairs
from jaxmethods.models.backbone import build_backbone, split_trainable
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train import Eval, fit, hf_max_steps, make_mesh, make_summary
from jaxmethods.train.dpo import (
    attach_reference_logprobs,
    dpo_stream,
    gather_pairs,
    make_dpo_loss_fn,
    reference_constants,
    tokenize_pair,
)
from jaxmethods.train.metrics import read_jsonl, write_json_atomic

log = logging.getLogger(__name__)


def _setup(cfg: SelfSelectConfig, mesh, workdir: str):
    """(tokenizer, model, train items, test items, phase metrics)."""
    if cfg.data.source == "synthetic":
        world, tokenizer, model, pre = pretrain_synthetic(cfg, mesh, workdir)
        from jaxmethods.retrieval.bm25 import BM25Retriever
        from jaxmethods.retrieval.docstore import DocStore

        retriever = BM25Retriever(DocStore(world.corpus))
        train_q, test_q, r_train, r_test = world.train, world.test, retriever, retriever
        metrics = {"pretrain/loss": pre.last_metrics.get("loss", float("nan"))}
    else:
        from jaxmethods.hf import load_tokenizer

        train_q, test_q = load_questions(cfg)
        tokenizer = load_tokenizer(cfg.model.tokenizer_path)
        model = build_backbone(cfg.model, tokenizer, mesh=mesh, seed=cfg.seed)
        r_train = build_retriever(cfg.retrieval, "train", mesh)
        r_test = (
            r_train if cfg.retrieval.kind != "cached" else build_retriever(cfg.retrieval, "test")
        )
        metrics = {}
    k = cfg.retrieval.k
    return tokenizer, model, make_items(train_q, r_train, k), make_items(test_q, r_test, k), metrics


def _train_dpo(cfg: SelfSelectConfig, model, tokenizer, pairs: list[dict], mesh, workdir: str):
    """DPO of `model`'s trainable part on the RGP pairs; returns (params, graphdef, rest, metrics)."""
    graphdef, params, rest = split_trainable(model, cfg.model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    m = cfg.dpo.max_length
    tok = [tokenize_pair(tokenizer, p["prompt"], p["chosen"], p["rejected"], max_length=m)
           for p in pairs]  # fmt: skip
    scored = lambda ex: any(t >= 0 for t in ex["labels"])
    tok = [t for t in tok if scored(t["chosen"]) and scored(t["rejected"])]
    dropped = len(pairs) - len(tok)
    if not tok:
        raise ValueError(
            f"no RGP pairs to train on ({len(pairs)} built, {dropped} longer than "
            f"config.dpo.max_length={m}): the model's samples were all right or all wrong; "
            "sample more (config.rgp.num_samples, temperature) or use more train questions"
        )
    length = padded_length([len(t[s]["input_ids"]) for t in tok for s in ("chosen", "rejected")])
    reference = dpo_reference(cfg)
    chunk = cfg.model.logits_chunk_size
    if reference == "cached":
        tok = attach_reference_logprobs(model, tok, batch_size=cfg.dpo.batch_size, length=length,
                                        pad_id=pad_id, chunk_size=chunk)  # fmt: skip
    loss_fn = make_dpo_loss_fn(
        graphdef, reference=reference, beta=cfg.dpo.beta, label_smoothing=cfg.dpo.label_smoothing,
        loss_type=cfg.dpo.loss_type, chunk_size=chunk, nll_weight=cfg.dpo.nll_weight,
    )  # fmt: skip
    constants = reference_constants(reference, rest, params)
    eval_fn = jax.jit(loss_fn)
    n_probe, bs = min(len(tok), cfg.dpo.eval_pairs), cfg.dpo.batch_size

    def pair_metrics(state, step: int) -> dict:
        """Loss, implicit reward margin and preference accuracy on up to 256 training pairs."""
        sums = np.zeros(3)
        for start in range(0, n_probe, bs):
            idx = np.arange(start, start + bs)
            idx[idx >= n_probe] = -1
            batch = gather_pairs(tok, idx, length=length, pad_id=pad_id)
            loss, m = jax.device_get(eval_fn(state.params, constants, batch, jax.random.key(0)))
            n = float(m["pairs"])
            sums += n * np.array([loss, m["rewards/margins"], m["rewards/accuracies"]])
        loss, margin, acc = sums / n_probe
        return {"loss": float(loss), "margin": float(margin), "pref_acc": float(acc)}

    ga = cfg.optim.grad_accum
    stream = dpo_stream(tok, batch_size=bs, length=length, pad_id=pad_id, seed=cfg.seed,
                        grad_accum=ga)  # fmt: skip
    num_steps = hf_max_steps(stream.batches_per_epoch, ga, cfg.dpo.epochs)
    result = fit(
        params=params, optim=cfg.optim, num_steps=num_steps, batches=stream, mesh=mesh,
        workdir=os.path.join(workdir, "dpo"), loss_fn=loss_fn, constants=constants,
        rules=DECODER_SHARDING_RULES, loop=cfg.loop, seed=cfg.seed, desc=f"{cfg.name}/dpo",
        evals={"pairs": Eval(pair_metrics, at_start=True)} if n_probe else None,
        items_per_step=bs * ga,
        item_name="pairs",
    )  # fmt: skip
    first = result.eval_history[0] if result.eval_history else {}
    if not n_probe:  # the first and last logged steps' batch metrics (before their update)
        rows = read_jsonl(os.path.join(workdir, "dpo", "metrics.jsonl"))
        rows = [r for r in rows if "rewards/margins" in r]
        first, last = (rows[0], rows[-1]) if rows else ({}, {})
        pick = {"margin": "rewards/margins", "pref_acc": "rewards/accuracies", "loss": "loss"}
        first = {"step": 0, **{f"pairs/{k}": first[v] for k, v in pick.items() if v in first}}
        result.last_eval.update({f"pairs/{k}": last[v] for k, v in pick.items() if v in last})
    metrics = {"dpo/steps": result.step, "dpo/pairs": len(tok), "dpo/too_long_dropped": dropped,
               "dpo/reference_cached": float(reference == "cached")}  # fmt: skip
    for k in ("margin", "pref_acc", "loss"):
        if f"pairs/{k}" in result.last_eval:
            metrics[f"dpo/end_{k}"] = result.last_eval[f"pairs/{k}"]
        if first.get("step") == 0 and f"pairs/{k}" in first:
            metrics[f"dpo/start_{k}"] = first[f"pairs/{k}"]
    return result.state.params, graphdef, rest, metrics


def run(config, workdir: str) -> dict:
    t0 = time.perf_counter()
    cfg = from_config_dict(config)
    os.makedirs(workdir, exist_ok=True)
    mesh = make_mesh(cfg.mesh)
    tokenizer, model, train_items, test_items, metrics = _setup(cfg, mesh, workdir)
    shots, train_items = few_shot(train_items, cfg.prompts.num_shots)
    g = cfg.generation
    local = LocalGenerator(model, tokenizer, prompt_length=g.prompt_length,
                           max_new_tokens=g.max_new_tokens, batch_size=g.batch_size)  # fmt: skip
    base_gen = local
    if g.backend == "client":
        from jaxmethods.llm import make_client

        base_gen = ClientGenerator(make_client(g.llm), max_new_tokens=g.max_new_tokens)
    paraphrase_fn = None
    if cfg.rgp.paraphrase:
        from jaxmethods.llm import make_client

        para = ClientGenerator(make_client(cfg.paraphrase_llm), max_new_tokens=64)
        paraphrase_fn = lambda qs: para([cfg.rgp.paraphrase_prompt.format(question=q) for q in qs])
    base_out = self_select(base_gen, test_items, cfg.prompts, shots=shots)
    rows = build_rgp(os.path.join(workdir, "rgp.jsonl"), train_items, base_gen, cfg.prompts,
                     cfg.rgp, paraphrase_fn=paraphrase_fn, shots=shots, log=log.info)  # fmt: skip
    pairs, stats = training_pairs(rows, cfg.rgp)
    metrics |= {f"rgp/{k}": v for k, v in stats.items()}
    params, graphdef, rest, dpo_metrics = _train_dpo(cfg, model, tokenizer, pairs, mesh, workdir)
    metrics |= dpo_metrics
    local.model = nnx.merge(graphdef, params, rest)
    rgp_out = self_select(local, test_items, cfg.prompts, shots=shots)
    outputs = {"base": base_out, "rgp": rgp_out}
    metrics |= evaluate([it.answers for it in test_items], outputs)
    metrics["time/total_s"] = time.perf_counter() - t0
    text = table(metrics)
    rgp_table = stats_table(stats)
    if jax.process_index() == 0:
        print(text + "\n\n" + rgp_table)
        write_json_atomic(os.path.join(workdir, "predictions.json"), {
            "test": [{"id": it.id, "question": it.question, "answers": it.answers,
                      "base": b, "rgp": r} for it, b, r in zip(test_items, base_out, rgp_out)],
        })  # fmt: skip
    return make_summary(
        metrics, tables={"selfselect": text, "rgp": rgp_table},
        artifacts={"rgp": os.path.join(workdir, "rgp.jsonl"),
                   "predictions": os.path.join(workdir, "predictions.json")},
    )  # fmt: skip
