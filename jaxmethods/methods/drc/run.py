"""DRC's run: the styled-shapes world, a VQ tokenizer and a tiny image-token LM trained in the
run, then Pigeon (SFT + DPO) and DRC (stage 1 + stage 2) on the same training windows, all rows
generated for the same test episodes, judged by classifiers trained in the run.

Phases (each `fit` phase checkpoints under `<workdir>/<phase>` and resumes; the VQ tokenizer is
cached in `<workdir>/vq.npz` by `data.vq_tokenizer`; DRC's stage 1 runs its own loop, because the importance sampler
reads every step's per-triplet losses, and is redone on resume):
  data      users, windows of 6 split 8:1:1, test references (`synthetic.run_inputs`)
  vq        VQ tokenizer on the training images; every image -> 16 visual codes
  judges    style and shape classifiers on VQ round-tripped held-out images
  pretrain  the image LM on same-user image sequences `<img> c <end>` x pretrain_images
  pigeon    SFT (reference = masked target), DPO (pairs from SFT samples), generation
  drc       stage 1 (triplets, importance sampling), stage 2 (augmented references), generation
  report    per-row style / semantic accuracy and collapse rate with s.e., the paired collapse
            difference DRC - Pigeon, `grid.png`, `summary.json`
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import numpy as np
from flax import nnx

from jaxmethods.data.pipeline import step_stream
from jaxmethods.methods.drc import report
from jaxmethods.methods.drc.config import DRCRunConfig, from_config_dict
from jaxmethods.methods.drc.grid import write_grid
from jaxmethods.methods.drc.image_lm import VisualVocab, visual_lm_config
from jaxmethods.methods.drc.judges import Judges, train_judges
from jaxmethods.methods.drc.model import DRCConfig, DRCModel
from jaxmethods.methods.drc.model_train import (
    drc_generate,
    make_stage1_loss_fn,
    make_stage2_loss_fn,
    split_drc,
)
from jaxmethods.methods.drc.pigeon import (
    PigeonConfig,
    PigeonModel,
)
from jaxmethods.methods.drc.pigeon_dpo import make_pigeon_dpo_loss_fn, split_pigeon_dpo
from jaxmethods.methods.drc.pigeon_train import (
    make_pigeon_sft_loss_fn,
    pigeon_generate,
    split_pigeon,
)
from jaxmethods.methods.drc.sampler import ImportanceSampler, SampledBatches
from jaxmethods.methods.drc.synthetic import run_inputs
from jaxmethods.models.causal_lm import causal_lm_loss
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.lora import apply_lora
from jaxmethods.train.config import ConfigError
from jaxmethods.train.mesh import make_mesh
from jaxmethods.train.metrics import make_summary, read_jsonl
from jaxmethods.train.optim import OptimConfig
from jaxmethods.train.trainer import fit

log = logging.getLogger(__name__)


# ---- the image LM ----------------------------------------------------------------------------
def build_lm(cfg: DRCRunConfig, vocab: VisualVocab) -> DecoderLM:
    c = cfg.lm
    if c.source != "tiny":
        raise ConfigError(
            f"config.lm.source: {c.source!r}: the LaVIT-7B-v2 LLM runs on Pigeon's data only "
            "(data.source = 'pigeon', real_run.py), whose visual-token ids come from LaVIT's "
            "external tokenizer"
        )
    dcfg = visual_lm_config(
        vocab, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_layers=c.num_layers, num_heads=c.num_heads, num_kv_heads=c.num_kv_heads,
        head_dim=c.hidden_size // c.num_heads, max_position_embeddings=512,
    )  # fmt: skip
    return DecoderLM(dcfg, rngs=nnx.Rngs(cfg.seed))


def _rows(n: int, idx: np.ndarray) -> np.ndarray:
    """Stream indices (-1 = padding) -> row numbers (padding repeats row 0)."""
    return np.where(idx < 0, 0, idx) % n


def pretrain_lm(cfg, lm, vocab, seqs: np.ndarray, mesh, workdir) -> tuple[DecoderLM, float]:
    """Causal-LM pre-training on `seqs` [S, I, N] codes (I same-user images per row)."""
    c = cfg.lm
    graphdef, params = nnx.split(lm)
    ids_all = np.asarray(vocab.image_ids(seqs)).reshape(len(seqs), -1)

    def collate(idx):
        ids = ids_all[_rows(len(ids_all), idx)]
        return {"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": ids}

    def loss_fn(p, _, batch, rng):
        loss, tokens = causal_lm_loss(nnx.merge(graphdef, p), batch)
        return loss, {"tokens": tokens}

    res = fit(
        params=params, optim=OptimConfig(lr=c.pretrain_lr, warmup_ratio=0.05, weight_decay=0.0),
        num_steps=c.pretrain_steps, batches=step_stream(
            len(ids_all), collate, micro_batch_size=c.pretrain_batch_size, seed=cfg.seed),
        mesh=mesh, workdir=os.path.join(workdir, "pretrain"), loss_fn=loss_fn,
        loop=cfg.loop, seed=cfg.seed, desc=f"{cfg.name}/pretrain",
    )  # fmt: skip
    return nnx.merge(graphdef, res.state.params), float(res.last_metrics.get("loss", np.nan))


# ---- Pigeon ----------------------------------------------------------------------------------
def train_pigeon(cfg, lm, vocab, codebook, train, mesh, workdir) -> tuple[PigeonModel, dict]:
    """SFT on (history, target) then DPO on pairs ranked among sampled SFT generations."""
    p = cfg.pigeon
    lm = nnx.clone(lm)
    lora = (p.lora_rank, p.lora_alpha, p.lora_dropout, p.lora_targets)
    apply_lora(lm, *lora, rngs=nnx.Rngs(cfg.seed + 1))
    pcfg = PigeonConfig(
        ffn_dim=p.ffn_dim, ref_hidden=p.ref_hidden, drop_prob=p.drop_prob,
        encoder_dropout=p.encoder_dropout,
    )  # fmt: skip
    model = PigeonModel(lm, vocab, pcfg, ref_table=codebook, rngs=nnx.Rngs(cfg.seed + 2))
    graphdef, params, frozen = split_pigeon(model)
    hist, tgt = train["history"], train["target"]

    def collate(idx):
        r = _rows(len(tgt), idx)
        return {"history": hist[r], "target": tgt[r]}

    res = fit(
        params=params, optim=OptimConfig(lr=p.sft_lr, warmup_steps=20, weight_decay=0.0),
        num_steps=p.sft_steps, batches=step_stream(
            len(tgt), collate, micro_batch_size=p.batch_size, seed=cfg.seed),
        mesh=mesh, workdir=os.path.join(workdir, "pigeon_sft"), constants=frozen,
        loss_fn=make_pigeon_sft_loss_fn(graphdef, per_example_metrics=False), loop=cfg.loop,
        seed=cfg.seed, desc=f"{cfg.name}/pigeon_sft",
    )  # fmt: skip
    model = nnx.merge(graphdef, res.state.params, frozen)
    info = {"sft_loss": float(res.last_metrics.get("loss", np.nan))}
    if p.dpo_steps <= 0:
        return model, info
    pairs = preference_pairs(cfg, model, codebook, hist, tgt)
    graphdef, policy, rest, ref_lora = split_pigeon_dpo(model)

    def collate_dpo(idx):
        r = _rows(len(pairs["chosen"]), idx)
        return {k: v[r] for k, v in pairs.items()}

    res = fit(
        params=policy, optim=OptimConfig(lr=p.dpo_lr, weight_decay=0.0),
        num_steps=p.dpo_steps, batches=step_stream(
            len(pairs["chosen"]), collate_dpo, micro_batch_size=p.dpo_batch_size, seed=cfg.seed),
        mesh=mesh, workdir=os.path.join(workdir, "pigeon_dpo"), constants=(rest, ref_lora),
        loss_fn=make_pigeon_dpo_loss_fn(graphdef, beta=p.dpo_beta), loop=cfg.loop,
        seed=cfg.seed, desc=f"{cfg.name}/pigeon_dpo",
    )  # fmt: skip
    info["dpo_loss"] = float(res.last_metrics.get("loss", np.nan))
    info["dpo_reward_accuracy"] = float(res.last_metrics.get("reward_accuracy", np.nan))
    return nnx.merge(graphdef, res.state.params, rest), info


def _features(codes: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """[..., N] codes -> [..., D] mean codebook vector (the demo's image feature)."""
    return codebook[codes].mean(-2)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-8)
    return np.sum(a * b / (np.linalg.norm(b, axis=-1, keepdims=True) + 1e-8), -1)


def preference_pairs(cfg, model, codebook, hist, tgt) -> dict[str, np.ndarray]:
    """Pigeon's DPO data: for `dpo_prompts` training windows, `dpo_candidates` sampled SFT
    generations ranked by similarity to the history (mean over images) plus similarity to the
    reference (Pigeon: CLIP image score and CLIP score; here cosines of mean codebook vectors,
    no judge involved); chosen = best, rejected = worst."""
    p = cfg.pigeon
    rng = np.random.default_rng(cfg.seed + 3)
    rows = rng.choice(len(tgt), min(p.dpo_prompts, len(tgt)), replace=False)
    h, r = np.repeat(hist[rows], p.dpo_candidates, 0), np.repeat(tgt[rows], p.dpo_candidates, 0)
    gen = pigeon_generate(
        model, h, r, mask_ratio=p.mask_ratio, do_sample=True,
        seeds=[cfg.seed * 100003 + i for i in range(len(r))],
    ).reshape(len(rows), p.dpo_candidates, -1)  # fmt: skip
    f_gen = _features(gen, codebook)
    f_hist = _features(hist[rows], codebook).mean(1)[:, None]
    f_ref = _features(tgt[rows], codebook)[:, None]
    score = _cos(f_gen, f_hist) + _cos(f_gen, f_ref)  # [P, C]
    best, worst = score.argmax(1), score.argmin(1)
    keep = best != worst
    i = np.arange(len(rows))
    return {
        "history": hist[rows][keep], "reference": tgt[rows][keep],
        "chosen": gen[i, best][keep], "rejected": gen[i, worst][keep],
    }  # fmt: skip


# ---- DRC -------------------------------------------------------------------------------------
def drc_model_config(cfg: DRCRunConfig) -> DRCConfig:
    d = cfg.drc
    return DRCConfig(
        tower=d.tower, fusion=d.fusion, cross_weight=d.cross_weight, cross_mode=d.cross_mode,
        history_query=d.history_query, train_lora=d.train_lora,
    )  # fmt: skip


def train_drc(cfg, lm, vocab, data: dict, mesh, workdir) -> tuple[DRCModel, dict]:
    """Stage 1 on importance-sampled triplets, then stage 2 (both with `fit`)."""
    d = cfg.drc
    lm = nnx.clone(lm)
    if d.train_lora:
        p = cfg.pigeon
        lora = (p.lora_rank, p.lora_alpha, p.lora_dropout, p.lora_targets)
        apply_lora(lm, *lora, rngs=nnx.Rngs(cfg.seed + 1))
    model = DRCModel(lm, vocab, drc_model_config(cfg), rngs=nnx.Rngs(cfg.seed + 4))
    graphdef, params, frozen = split_drc(model)
    params, info = drc_stage1(cfg, graphdef, params, frozen, model.cfg, data, mesh, workdir)
    hist, ref, tgt = data["history"], data["aug_reference"], data["target"]  # [S*A, ...]

    def collate(idx):
        r = _rows(len(tgt), idx)
        return {"history": hist[r], "reference": ref[r], "target": tgt[r]}

    res = fit(
        params=params, optim=OptimConfig(lr=d.stage2_lr, warmup_ratio=0.05, weight_decay=0.0),
        num_steps=d.stage2_steps, batches=step_stream(
            len(tgt), collate, micro_batch_size=d.stage2_batch_size, seed=cfg.seed),
        mesh=mesh, workdir=os.path.join(workdir, "drc_stage2"), constants=frozen,
        loss_fn=make_stage2_loss_fn(graphdef, dataclasses.replace(
            model.cfg, per_example_metrics=False)),
        loop=cfg.loop, seed=cfg.seed, desc=f"{cfg.name}/drc_stage2",
    )  # fmt: skip
    info["stage2_loss"] = float(res.last_metrics.get("loss", np.nan))
    return nnx.merge(graphdef, res.state.params, frozen), info


def drc_stage1(cfg, graphdef, params, frozen, mcfg, data, mesh, workdir) -> tuple[Any, dict]:
    """DRC's stage 1 with `fit`: `stage1_steps` steps on triplets drawn by the
    `ImportanceSampler` (weights 1/(N p)); `fit` hands each step's per-triplet losses to
    `SampledBatches.observe` (read one step late) and checkpoints the sampler with the state."""
    d = cfg.drc
    trip, codes = data["triplets"], data["item_codes"]
    if d.stage1_steps <= 0 or len(trip) == 0:
        return params, {"stage1_steps": 0}
    sampler = ImportanceSampler(len(trip), d.sampler, seed=cfg.seed)

    def collate(idx, w):
        a, s, m = trip[idx].T
        return {"anchor": codes[a], "pos_style": codes[s], "pos_sem": codes[m], "weight": w}

    phase_dir = os.path.join(workdir, "drc_stage1")
    res = fit(
        params=params, optim=OptimConfig(lr=d.stage1_lr, warmup_ratio=0.05, weight_decay=0.0),
        num_steps=d.stage1_steps, batches=SampledBatches(sampler, collate, d.stage1_batch_size),
        mesh=mesh, workdir=phase_dir, constants=frozen,
        loss_fn=make_stage1_loss_fn(graphdef, mcfg), loop=cfg.loop, seed=cfg.seed,
        desc=f"{cfg.name}/drc_stage1",
    )  # fmt: skip
    sampler.flush()
    probs = sampler.probs()
    rows = [r for r in read_jsonl(os.path.join(phase_dir, "metrics.jsonl")) if "loss" in r]
    last = res.last_metrics
    info = {
        "stage1_steps": d.stage1_steps,
        "stage1_loss_first": float(rows[0]["loss"]) if rows else float("nan"),
        "stage1_loss": float(last.get("loss", np.nan)),
        "stage1_ce_composed": float(last.get("ce_composed", np.nan)),
        "stage1_ce_cross": float(last.get("ce_cross", np.nan)),
        "stage1_max_weight": float(1.0 / (len(probs) * probs.min())),
    }
    return res.state.params, info


# ---- run -------------------------------------------------------------------------------------
def run(config, workdir: str) -> dict:
    cfg = from_config_dict(config)
    if cfg.data.source == "pigeon":
        from jaxmethods.methods.drc.real_run import run_real  # real_run imports this module

        return run_real(cfg, workdir)
    os.makedirs(workdir, exist_ok=True)
    mesh = make_mesh(cfg.mesh)
    inp = run_inputs(cfg, workdir)
    world, wd = inp["world"], inp["data"]
    judges: Judges = train_judges(
        inp["judge_images"], inp["judge_items"].style, inp["judge_items"].shape,
        num_styles=world.num_styles, num_shapes=world.num_shapes, steps=cfg.judges.steps,
        hidden=cfg.judges.hidden, seed=cfg.seed,
    )  # fmt: skip
    vocab = VisualVocab.tiny(cfg.vq.codebook_size)
    codebook = np.asarray(inp["vq"].codebook[...])
    train, test = inp["train"], inp["test"]
    k = min(cfg.lm.pretrain_images, 6)
    seqs = np.concatenate([train["history"], train["target"][:, None]], 1)[:, -k:]
    lm, pre_loss = pretrain_lm(cfg, build_lm(cfg, vocab), vocab, seqs, mesh, workdir)
    info: dict[str, Any] = {"pretrain/loss": pre_loss}
    gens: dict[str, np.ndarray] = {"target": test["target"]}
    g, n_test = cfg.generate, len(test["target"])
    seeds = [g.seed + i for i in range(n_test)]
    if "none" in cfg.rows:
        gens["none"] = inp["ref_codes"]
    if "pigeon" in cfg.rows:
        pig, pinfo = train_pigeon(cfg, lm, vocab, codebook, train, mesh, workdir)
        info |= {f"pigeon/{k}": v for k, v in pinfo.items()}
        gens["pigeon"] = _batched(lambda h, r, s: pigeon_generate(
            pig, h, r, mask_ratio=cfg.pigeon.mask_ratio, do_sample=g.do_sample,
            temperature=g.temperature, top_k=g.top_k, seeds=s, seed=g.seed,
        ), test["history"], inp["ref_codes"], seeds, g.batch_size)  # fmt: skip
    if "drc" in cfg.rows:
        drc_data = {
            "triplets": inp["triplets"], "item_codes": inp["item_codes"],
            "history": np.repeat(train["history"], max(cfg.drc.num_augment, 1), 0),
            "target": np.repeat(train["target"], max(cfg.drc.num_augment, 1), 0),
            "aug_reference": inp["aug_reference"],
        }  # fmt: skip
        drc, dinfo = train_drc(cfg, lm, vocab, drc_data, mesh, workdir)
        info |= {f"drc/{k}": v for k, v in dinfo.items()}
        gens["drc"] = _batched(lambda h, r, s: drc_generate(
            drc, h, r, do_sample=g.do_sample, temperature=g.temperature, top_k=g.top_k,
            seeds=s if g.do_sample else None,
        ), test["history"], inp["ref_codes"], seeds, g.batch_size)  # fmt: skip
    images = {name: inp["decode"](c) for name, c in gens.items()}
    users = wd.users
    labels = {
        "user_style": users.style[[s.uid for s in wd.splits["test"]]],
        "ref_style": inp["refs"].style, "ref_shape": inp["refs"].shape,
        "hist_shapes": users.items.shape[test["hist_ids"]],
    }  # fmt: skip
    scores = {name: report.score_images(judges, x, labels) for name, x in images.items()}
    metrics, tables = report.summarize(scores, cfg.rows)
    metrics |= info | {"test/episodes": n_test, "train/windows": len(train["target"]),
                       "drc/triplets": len(inp["triplets"])}  # fmt: skip
    r = min(cfg.grid_rows, n_test)
    columns = [inp["images"][test["hist_ids"][:r]], inp["ref_images"][:r]]
    names = ["history (5)", "reference"]
    for name in ("target", *cfg.rows):
        columns.append(images[name][:r])
        names.append(name)
    grid = write_grid(os.path.join(workdir, "grid.png"), columns, names)
    return make_summary(metrics, tables=tables, artifacts={"grid": grid})


def _batched(fn, hist, ref, seeds, bs: int) -> np.ndarray:
    """fn(history, reference, seeds) over fixed-size batches (the last one padded)."""
    out, n = [], len(ref)
    for start in range(0, n, bs):
        idx = np.minimum(np.arange(start, start + bs), n - 1)
        out.append(np.asarray(fn(hist[idx], ref[idx], [seeds[i] for i in idx]))[: n - start])
    return np.concatenate(out)[:n]
