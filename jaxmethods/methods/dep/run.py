"""DEP end to end: data -> embeddings -> peer maps -> prompts -> (tiny LM pre-training) -> per arm
(non-personalized, history-only, DEP) the adapter trained with `fit` on the frozen LLM, a
checkpoint and a sampled validation evaluation per epoch, the epoch with the best validation
METEOR kept -> test generation -> metrics table and summary.

Arms differ only in the 16 soft-prompt rows fed to the same adapter and prompt: "none" zeroes all
16 (every user gets the same soft tokens), "history" zeroes the 8 difference rows, "dep" keeps
them all. Sampling uses one seed per request (`generate.seed + i`), so the arms are decoded with
the same random draws.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os

import jax
import numpy as np
from flax import nnx

from jaxmethods.data.pipeline import batches_per_epoch, step_stream
from jaxmethods.eval.generation_metrics import (
    MeteorOptions,
    generation_metrics,
    meteor,
    meteor_label,
    rouge_f1,
)
from jaxmethods.methods.dep import data as dep_data
from jaxmethods.methods.dep.config import ARMS, DEPConfig, from_config_dict
from jaxmethods.methods.dep.dataset import Examples, build_examples
from jaxmethods.methods.dep.differences import DiffOptions, build_peer_maps
from jaxmethods.methods.dep.model import DEPModel
from jaxmethods.methods.dep.model_train import dep_generate, make_dep_loss_fn, split_dep
from jaxmethods.methods.dep.prompts import (
    IGNORE,
    NEW_TOKENS,
    SYSTEM_PROMPT,
    add_dep_tokens,
    placeholder_ids,
)
from jaxmethods.methods.dep.report import gaps_table, paired_gaps, results_table
from jaxmethods.models.backbone import build_backbone
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train import EarlyStopping, Eval, fit, hf_max_steps, make_mesh, make_summary
from jaxmethods.train.mesh import check_batch_sizes
from jaxmethods.train.optim import OptimConfig
from jaxmethods.train.trainer import shard_and_place

log = logging.getLogger(__name__)
NUM_HIS = 8


def load_data(cfg: DEPConfig, workdir: str):
    """(splits {"train", "val", "test"} -> Selection, meta {asin: (title, description)},
    pre-training users' train Selection or None, every test-split sample for the peer maps).

    With `pretrain.users` = P (synthetic data only), users u000 .. u{P-1} are the pre-training
    corpus: their reviews are embedded and act as peers, their (i = 7) training rows pre-train
    the LLM, and they are dropped from DEP's val / test selections (val keeps the first
    `num_val` of the others, in DEP's shuffled order) and, unless `pretrain.share_train`, from
    its train selection."""
    d, extra = cfg.data, cfg.pretrain.users
    if d.source == "synthetic":
        from jaxmethods.methods.dep.synthetic import synthetic_dpl

        main_rows, meta_rows = synthetic_dpl(
            d.num_users + extra, d.num_items, d.reviews_per_user, d.synthetic_seed, d.world
        )
        main, meta = dep_data.write_local(
            main_rows, meta_rows, os.path.join(workdir, "data"), d.categories[0]
        )
        categories = d.categories[:1]
    else:
        main, meta, categories = d.source, d.meta, d.categories
    splits = dep_data.load_splits(main, categories, num_val=d.num_val if not extra else 10**9)
    everyone = splits["test"].samples
    pre = None
    if extra:
        corpus = {f"u{u:03d}" for u in range(extra)}

        def only(sel, keep: bool):
            samples = [s for s in sel.samples if (s.user_id in corpus) == keep]
            return dataclasses.replace(sel, samples=samples)

        pre = only(splits["train"], True)
        shared = {"train": splits["train"]} if cfg.pretrain.share_train else {}
        splits = {k: shared.get(k) or only(v, False) for k, v in splits.items()}
        splits["val"].samples = splits["val"].samples[: d.num_val]
    return splits, dep_data.read_meta(meta, categories), pre, everyone


def load_tokenizer(cfg: DEPConfig, splits) -> object:
    """The run's tokenizer with DEP's 20 special tokens added."""
    d = cfg.data
    if cfg.model.is_tiny:
        from jaxmethods.data.tokenizer import build_tiny_tokenizer
        from jaxmethods.methods.dep.prompts import qwen2_prompt, review_block, user_message

        texts = [r["text"] for s in splits["test"].samples for r in (*s.profile, s.target)]
        texts += [r["title"] for s in splits["test"].samples for r in s.profile]
        empty, only = {"rating": "", "title": "", "text": ""}, d.prompt_history == "placeholders"
        blocks = (review_block(k, empty, ("", ""), placeholders_only=only) for k in range(8))
        prompt = qwen2_prompt(
            user_message(("t", "d"), {"rating": 5.0, "title": "t"}, "".join(blocks)),
            SYSTEM_PROMPT if d.system_prompt else None,
        )
        texts += [prompt] * (len(texts) // 8)  # as often as the reviews: its words get merged
        tok = build_tiny_tokenizer(texts, vocab_size=cfg.model.vocab_size, model_max_length=10**6)
    else:
        from jaxmethods.hf import load_tokenizer as load_hf_tokenizer

        tok = load_hf_tokenizer(cfg.model.tokenizer or cfg.model.source)
    add_dep_tokens(tok)
    return tok


def load_embeddings(cfg: DEPConfig, samples, mesh, workdir: str):
    """`load(sample) -> [len(test profile) + 1, E]` for every user of `samples` (test split)."""
    from jaxmethods.methods.dep.embeddings import EmbeddingStore, extract_embeddings, user_texts

    e = cfg.embed
    folder = e.folder
    if e.source == "tiny":
        from jaxmethods.methods.dep.demo_encoder import TinyEncoderConfig, train_text_encoder

        folder = folder or os.path.join(workdir, "embeddings")
        texts = [t for s in samples for t in user_texts(s)[:-2]]  # not the val / test targets
        tiny = TinyEncoderConfig(
            dim=e.dim, layers=e.layers, vocab_size=e.vocab_size, max_length=e.max_length,
            steps=e.train_steps, batch_size=e.train_batch_size, lr=e.lr,
            temperature=e.temperature, drop=e.drop, pooling=e.pooling, seed=cfg.seed,
        )  # fmt: skip
        enc = train_text_encoder(texts, tiny, mesh=mesh, workdir=workdir)
        extract_embeddings(enc, samples, folder, batch_size=e.batch_size)
    elif e.source == "bge":
        from jaxmethods.models.text_encoder import TextEncoder

        enc = TextEncoder.from_pretrained(e.encoder, dtype=e.dtype, mesh=mesh)
        extract_embeddings(enc, samples, folder, batch_size=e.batch_size)
    return EmbeddingStore(folder, dim=e.dim)


def arm_inputs(arm: str, his_diff: np.ndarray) -> np.ndarray:
    """The soft-prompt rows [B, 16, E] an arm sees: "none" all zero, "history" the difference
    rows zero, "dep" unchanged."""
    out = np.array(his_diff, np.float32, copy=True)
    if arm == "none":
        out[:] = 0.0
    elif arm == "history":
        out[:, NUM_HIS:] = 0.0
    return out


def _gather(
    ex: Examples,
    arm: str | None,
    *,
    mask_arms: bool = False,
    all_labels: bool = False,
    seed: int = 0,
):
    """collate(indices) for `step_stream`: an arm's rows, or (arm None) the pre-training rows,
    every real token a label with `all_labels` (else the target only) and, with `mask_arms`,
    each row's soft rows zeroed as one of the arms' inputs drawn uniformly (the draw is a
    function of the batch's indices)."""
    ids, mask, labels = ex.stack("input_ids"), ex.stack("attention_mask"), ex.stack("labels")
    emb = ex.stack("his_diff_emb").astype(np.float32)
    if arm is not None:
        emb = arm_inputs(arm, emb)
    elif all_labels:  # LM pre-training on the whole row
        labels = np.where(mask > 0, ids, IGNORE).astype(np.int32)

    def collate(idx: np.ndarray) -> dict:
        real = idx >= 0
        take = np.where(real, idx, 0)
        keep = real[:, None]
        rows = emb[take]
        if arm is None and mask_arms:
            draw = np.random.default_rng([seed, *take.tolist()]).integers(len(ARMS), size=len(idx))
            rows = np.stack([arm_inputs(ARMS[a], r[None])[0] for a, r in zip(draw, rows)])
        return {
            "input_ids": np.where(keep, ids[take], 0).astype(np.int32),
            "attention_mask": np.where(keep, mask[take], 0).astype(np.int32),
            "labels": np.where(keep, labels[take], IGNORE).astype(np.int32),
            "his_diff_emb": np.where(keep[..., None], rows, 0.0).astype(np.float32),
        }

    return collate


def pretrain_lm(cfg: DEPConfig, lm, ids, train: Examples, mesh, workdir: str):
    """Trains the tiny decoder, with a throw-away DEP adapter, on `train` (labels on every real
    token with `pretrain.all_labels`, else on the target; the soft rows injected, each row zeroed as a random arm's with
    `pretrain.mask_arms`), so that the small LLM learns to read its soft-token positions as a
    pretrained one does; the adapter is then discarded and every arm trains a fresh one on the
    frozen decoder (or, with `pretrain.keep_adapter`, starts from it). Returns (lm, its last
    CE, the adapter's state)."""
    p = cfg.pretrain
    model = DEPModel(lm, *ids, cfg.adapter, rngs=nnx.Rngs(cfg.seed + 1))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    stream = step_stream(
        len(train.rows),
        _gather(train, None, mask_arms=p.mask_arms, all_labels=p.all_labels, seed=cfg.seed),
        micro_batch_size=p.batch_size, seed=cfg.seed,
    )  # fmt: skip
    optim = OptimConfig(lr=p.lr, warmup_ratio=0.05, weight_decay=0.0, max_grad_norm=1.0)
    result = fit(
        params=params, optim=optim, num_steps=p.steps, batches=stream, mesh=mesh,
        workdir=os.path.join(workdir, "pretrain"), loss_fn=make_dep_loss_fn(graphdef),
        constants=rest, rules=DECODER_SHARDING_RULES,
        loop=dataclasses.replace(cfg.loop, checkpoint_every=0), seed=cfg.seed,
        desc=f"{cfg.name}/pretrain",
    )  # fmt: skip
    log.info("LM pre-training: %d steps, loss %.4f", result.step, result.last_metrics["loss"])
    model = nnx.merge(graphdef, result.state.params, rest)
    return model.lm, float(result.last_metrics["lm"]), nnx.state(model.adapter)


def generate_texts(model: DEPModel, ex: Examples, arm: str, cfg: DEPConfig, tok) -> list[str]:
    """Sampled continuations of `ex`'s prompts, decoded and stripped, request i seeded with
    `generate.seed + i`."""
    g, b, n = cfg.generate, cfg.eval_batch_size, len(ex.rows)
    ids, mask = ex.stack("input_ids"), ex.stack("attention_mask")
    emb = arm_inputs(arm, ex.stack("his_diff_emb"))
    out: list[str] = []
    for start in range(0, n, b):
        idx = np.minimum(np.arange(start, start + b), n - 1)  # the last batch repeats its row
        res = dep_generate(
            model, ids[idx], mask[idx], emb[idx], max_new_tokens=g.max_new_tokens,
            seeds=[g.seed + int(i) for i in range(start, start + b)], temperature=g.temperature,
            top_p=g.top_p, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id or 0,
        )  # fmt: skip
        seqs, lengths = np.asarray(res.sequences), np.asarray(res.lengths)
        for r in range(min(b, n - start)):
            text = tok.decode(seqs[r, : lengths[r]].tolist(), skip_special_tokens=True)
            out.append(text.strip())
    return out


def train_arm(
    cfg: DEPConfig, arm: str, lm, ids, train, val, mesh, tok, workdir, meteor_opts, init=None
):
    """The adapter of one arm trained on the frozen `lm`, fresh or starting from the adapter
    state `init` (the same for every arm); returns (model, selection info)."""
    his_ids, diff_ids = ids
    model = DEPModel(lm, his_ids, diff_ids, cfg.adapter, rngs=nnx.Rngs(cfg.seed))
    if init is not None:  # a copy: `fit` donates the buffers it trains
        nnx.update(model.adapter, jax.tree.map(lambda a: jax.numpy.array(a, copy=True), init))
    graphdef, params, frozen = split_dep(model)
    frozen, _ = shard_and_place(frozen, mesh, DECODER_SHARDING_RULES)
    o = cfg.optim
    stream = step_stream(
        len(train.rows), _gather(train, arm),
        micro_batch_size=cfg.batch_size, grad_accum=o.grad_accum, seed=cfg.seed,
    )  # fmt: skip
    steps_per_epoch = hf_max_steps(
        batches_per_epoch(len(train.rows), cfg.batch_size), o.grad_accum, 1
    )
    num_steps = hf_max_steps(stream.batches_per_epoch, o.grad_accum, cfg.epochs)
    refs = [r["target"].strip() for r in val.rows]
    select = cfg.eval.select

    def valid(state, step: int) -> dict:
        m = nnx.merge(graphdef, state.params, frozen)
        preds = generate_texts(m, val, arm, cfg, tok)
        return generation_metrics(refs, preds, meteor_options=meteor_opts)

    loop = cfg.loop
    if cfg.checkpoint_per_epoch:
        loop = dataclasses.replace(
            loop, checkpoint_every=steps_per_epoch,
            keep_checkpoints=max(loop.keep_checkpoints, cfg.epochs),
        )  # fmt: skip
    result = fit(
        params=params, optim=o, num_steps=num_steps, batches=stream, mesh=mesh,
        workdir=os.path.join(workdir, arm), loss_fn=make_dep_loss_fn(
            graphdef, chunk_size=cfg.model.logits_chunk_size, sae_weight=cfg.sae_weight
        ),
        constants=frozen, constants_rules=DECODER_SHARDING_RULES, loop=loop,
        evals={"valid": Eval(valid, every=steps_per_epoch)},
        early_stopping=EarlyStopping(
            f"valid/{select}", mode="max", patience=cfg.epochs + 1, restore_best=True
        ),
        seed=cfg.seed, items_per_step=cfg.batch_size * o.grad_accum, desc=f"{cfg.name}/{arm}",
    )  # fmt: skip
    best = result.best_step if result.best_step is not None else result.step
    info = {
        "steps": result.step,
        "best_step": best,
        "best_epoch": -(-best // steps_per_epoch),
        "train_loss": float(result.last_metrics.get("loss", float("nan"))),
    }
    return nnx.merge(graphdef, result.state.params, frozen), info


def run(config, workdir: str) -> dict:
    cfg = from_config_dict(config)
    mesh = make_mesh(cfg.mesh)
    check_batch_sizes(mesh, **{"config.batch_size": cfg.batch_size})
    splits, meta, pre_users, everyone = load_data(cfg, workdir)
    tok = load_tokenizer(cfg, splits)
    ids = placeholder_ids(tok)  # raises at setup when a placeholder is missing
    load = load_embeddings(cfg, everyone, mesh, workdir)
    d = cfg.data
    opts = DiffOptions(mean_rows=d.mean_rows, peer_rule=d.peer_rule, pad_missing=d.pad_missing)
    maps = build_peer_maps(everyone, load, opts)
    build = functools.partial(
        build_examples, meta=meta, load_embeddings=load, maps=maps, tokenizer=tok,
        options=opts, align_prompt=d.align_prompt, max_length=d.max_length,
        total_length=d.total_length, prompt_history=d.prompt_history,
        system_prompt=SYSTEM_PROMPT if d.system_prompt else None,
    )  # fmt: skip

    train = build(splits["train"], training=True)
    scored = splits["test"]  # every test user keeps its embeddings and peer rows
    if d.max_test > 0:
        scored = dataclasses.replace(scored, samples=scored.samples[: d.max_test])
    val, test = build(splits["val"], training=False), build(scored, training=False)
    for name, ex in (("train", train), ("val", val), ("test", test)):
        if ex.skipped:
            log.warning("DEP %s: skipped %s", name, dict(ex.skipped))
        if not ex.rows:
            raise ValueError(f"DEP: no {name} examples left (skipped: {dict(ex.skipped)})")

    lm = build_backbone(cfg.model, tok, mesh=mesh, seed=cfg.seed)
    if len(tok) > lm.config.vocab_size:
        raise ValueError(
            f"DEP: the tokenizer has {len(tok)} ids with the {len(NEW_TOKENS)} added tokens but "
            f"{cfg.model.source}'s embeddings have {lm.config.vocab_size} rows; resize them"
        )
    metrics: dict = {
        "data/train": len(train.rows), "data/val": len(val.rows), "data/test": len(test.rows),
        **{f"skipped/{k}": v for k, v in train.skipped.items()},
    }  # fmt: skip
    init = None
    if cfg.pretrain.enabled:
        corpus = train if pre_users is None else build(pre_users, training=True)
        metrics["data/pretrain"] = len(corpus.rows)
        lm, metrics["pretrain/lm_loss"], adapter = pretrain_lm(cfg, lm, ids, corpus, mesh, workdir)
        init = adapter if cfg.pretrain.keep_adapter else None

    meteor_opts = MeteorOptions(cfg.eval.meteor_wordnet, cfg.eval.meteor_tokenizer)
    refs = [r["target"].strip() for r in test.rows]
    results, per_sample = {}, {}
    for arm in cfg.arms:
        model, info = train_arm(
            cfg, arm, lm, ids, train, val, mesh, tok, workdir, meteor_opts, init=init
        )
        preds = generate_texts(model, test, arm, cfg, tok)
        results[arm] = generation_metrics(
            refs, preds, meteor_options=meteor_opts, bertscore=cfg.eval.bertscore,
            bertscore_model=cfg.eval.bertscore_model,
        )  # fmt: skip
        per_sample[arm] = {
            "rougeL": rouge_f1(refs, preds)["rougeL"], "meteor": meteor(refs, preds, meteor_opts)
        }  # fmt: skip
        metrics |= {f"{arm}/{k}": v for k, v in info.items()}
        metrics |= {f"test/{arm}/{k}": v for k, v in results[arm].items()}
        if d.source == "synthetic":
            metrics |= {f"test/{arm}/{k}": v for k, v in _slot_accuracy(refs, preds).items()}
        _write_predictions(os.path.join(workdir, "predictions", f"{arm}.jsonl"), test, preds)
    gaps = paired_gaps(per_sample)
    metrics |= {f"test/gap/{k}": v for k, v in gaps.items()}
    label = meteor_label(meteor_opts)
    table = results_table(results, label)
    tables = {"dep": table}
    if gaps:
        tables["dep_gaps"] = gaps_table(gaps, label)
    if jax.process_index() == 0:
        print("\n\n".join(tables.values()))
    metrics = {k: v for k, v in metrics.items() if not isinstance(v, str)}
    return make_summary(metrics, tables=tables)


def _slot_accuracy(refs: list[str], preds: list[str]) -> dict[str, float]:
    """Synthetic data: the fraction of test samples whose prediction shows the reference's
    value of each style slot (`synthetic.style_slots`), as `slot/<name>`."""
    from jaxmethods.methods.dep.synthetic import style_slots

    got = [(style_slots(r), style_slots(p)) for r, p in zip(refs, preds, strict=True)]
    names = got[0][0] if got else {}
    return {f"slot/{k}": float(np.mean([r[k] == p[k] for r, p in got])) for k in names}


def _write_predictions(path: str, ex: Examples, preds: list[str]) -> None:
    """One JSON line per test sample: user_id, target, prediction."""
    if jax.process_index() != 0:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for row, pred in zip(ex.rows, preds, strict=True):
            line = {"user_id": row["user_id"], "target": row["target"], "prediction": pred}
            f.write(json.dumps(line) + "\n")
