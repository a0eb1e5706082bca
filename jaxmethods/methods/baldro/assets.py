"""Model, tokenizer and data of a BalDRO run (tiny synthetic, TOFU or MUSE)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import jax
from flax import nnx

from jaxmethods.data.muse import chunk_corpus, load_muse
from jaxmethods.data.synthetic_authors import synthetic_tofu, write_tofu_folder
from jaxmethods.data.tofu import HF_ID, LLAMA2_CHAT_TEMPLATE, load_tofu, tokenize_rows
from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.methods.baldro.config import BalDROConfig
from jaxmethods.models.backbone import build_backbone
from jaxmethods.models.causal_lm import causal_lm_token_ce
from jaxmethods.models.decoder import DecoderLM

log = logging.getLogger(__name__)

TOFU_EVAL_SPLITS = ("retain_perturbed", "real_authors_perturbed", "world_facts_perturbed")
MUSE_EVAL_SPLITS = (
    ("verbmem", "forget"),
    ("knowmem", "forget_qa"),
    ("knowmem", "forget_qa_icl"),
    ("knowmem", "retain_qa"),
    ("knowmem", "retain_qa_icl"),
    ("privleak", "forget"),
    ("privleak", "holdout"),
)


@dataclass
class RunData:
    """Tokenised training examples and raw evaluation rows.

    forget / retain: examples with "input_ids" and "labels" (HF layout). eval_rows: rows by
    config name (TOFU) or "config/split" (MUSE). pad_id: the tokenizer's pad id. finetune: the synthetic demo's full and retain
    QA examples (empty otherwise)."""

    forget: list[dict]
    retain: list[dict]
    eval_rows: dict[str, list[dict]]
    pad_id: int
    finetune: dict[str, list[dict]] = field(default_factory=dict)


def synthetic_splits(cfg: BalDROConfig, workdir: str) -> tuple[dict[str, list[dict]], str]:
    """Generates the fictitious-author splits, writes them in TOFU's file layout, reads them back
    through the local-folder TOFU loader (so the demo exercises the real reading path)."""
    d = cfg.data
    splits = synthetic_tofu(
        num_authors=d.num_authors,
        questions_per_author=d.questions_per_author,
        forget_percent=d.forget_percent,
        seed=cfg.seed,
    )
    folder = str(write_tofu_folder(splits, os.path.join(workdir, "synthetic_tofu")))
    return {name: load_tofu(name, folder) for name in splits}, folder


def build_tokenizer(cfg: BalDROConfig, corpus: list[str] | None) -> Any:
    """The tiny BPE tokenizer trained on `corpus` (source "tiny") or the checkpoint's."""
    if cfg.model.is_tiny:
        return build_tiny_tokenizer(corpus, vocab_size=cfg.model.vocab_size)
    from jaxmethods.hf import load_tokenizer

    return load_tokenizer(cfg.model.tokenizer_path)


def build_model(cfg: BalDROConfig, tokenizer: Any, mesh: jax.sharding.Mesh) -> DecoderLM:
    return build_backbone(cfg.model, tokenizer, mesh=mesh, seed=cfg.seed)


def load_raw(cfg: BalDROConfig, workdir: str) -> dict[str, list[dict]]:
    """Raw rows of the configured benchmark: TOFU / synthetic by config name, MUSE by
    "config/split" (with "raw/forget" and "raw/retain1" for training)."""
    d = cfg.data
    if d.benchmark == "synthetic":
        return synthetic_splits(cfg, workdir)[0]
    if d.benchmark == "muse":
        src = d.source or None
        pairs = (("raw", "forget"), ("raw", "retain1"), *MUSE_EVAL_SPLITS)
        return {f"{c}/{s}": load_muse(d.corpus, c, s, src) for c, s in pairs}
    names = (d.forget_split, d.retain_split, f"{d.forget_split}_perturbed", *TOFU_EVAL_SPLITS)
    return {n: load_tofu(n, d.source or HF_ID) for n in names}


def corpus_texts(raw: dict[str, list[dict]]) -> list[str]:
    """Every string field of every row (the tiny tokenizer's training corpus)."""
    out = []
    for rows in raw.values():
        for r in rows:
            for v in r.values():
                values = v if isinstance(v, list) else [v]
                out += [x for x in values if isinstance(x, str)]
    return out


def load_run_data(cfg: BalDROConfig, tokenizer: Any, raw: dict[str, list[dict]]) -> RunData:
    """Tokenised forget/retain examples and the evaluation rows of the configured benchmark."""
    d = cfg.data
    if d.benchmark == "muse":
        # The authors' PretrainingDataset: max_length-token chunks kept as BOS + max_length.
        chunks = lambda key: chunk_corpus(
            tokenizer, [r["text"] for r in raw[key]], max_length=d.max_length
        )
        return RunData(
            forget=chunks("raw/forget"),
            retain=chunks("raw/retain1"),
            eval_rows={k: v for k, v in raw.items() if not k.startswith("raw/")},
            pad_id=tokenizer.pad_token_id,
        )
    tok = lambda rows: tokenize_rows(
        tokenizer, rows, template=LLAMA2_CHAT_TEMPLATE, max_length=d.max_length
    )
    data = RunData(
        forget=tok(raw[d.forget_split]),
        retain=tok(raw[d.retain_split]),
        eval_rows={k: v for k, v in raw.items() if k != "full"},
        pad_id=tokenizer.pad_token_id,
    )
    if "full" in raw:
        extra = raw["real_authors_perturbed"] + raw["world_facts_perturbed"]
        data.finetune = {
            "full": tok(raw["full"] + extra),
            "retain": tok(raw[d.retain_split] + extra),
        }
    return data


def make_token_ce(graphdef: nnx.GraphDef, logits_chunk_size: int = 0):
    """token_ce(params, input_ids, attention_mask, labels) -> (ce [N, T], mask [N, T]): the
    per-token CE of the decoder `graphdef` completed by `params`, labels in HF layout (unshifted,
    -100 ignored; `causal_lm_token_ce` shifts them)."""

    def token_ce(params, input_ids, attention_mask, labels):
        model = nnx.merge(graphdef, params)
        return causal_lm_token_ce(
            model, input_ids, attention_mask, labels, chunk_size=logits_chunk_size
        )

    return token_ce
