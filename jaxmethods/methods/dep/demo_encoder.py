"""A tiny XLM-R-shaped text encoder trained in the run: the demo's and tests' stand-in for bge-m3.

The shared `EncoderModel` (family "xlm-roberta", post-LN, `layers` layers of width `dim`) with a
BPE tokenizer trained on the texts is trained with an in-batch contrastive loss through the shared
`fit`: two views of each text, each with a random `drop` fraction of its tokens deleted (word
deletion, as CLEAR / ConSERT; the CPU-cheap stand-in for SimCSE's dropout views), are the
positive pair and the other texts of the batch the negatives (`jaxmethods.losses.info_nce` on
the pooled vectors, both directions). It is returned as a `TextEncoder` with the same pooling
(CLS, bge-m3's, by default; "mean" for the demo) and L2 normalisation, so
`embeddings.extract_embeddings` writes the per-user safetensors files exactly as it does for
bge-m3.

    enc = train_text_encoder(texts, TinyEncoderConfig(dim=32), mesh=mesh, workdir=w)
    extract_embeddings(enc, test_samples, folder)            # -> EmbeddingStore(folder, 32)
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Hashable, Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from jaxmethods.data.pipeline import step_stream
from jaxmethods.losses import info_nce
from jaxmethods.models.encoder import EncoderModel
from jaxmethods.models.encoder_config import EncoderConfig
from jaxmethods.models.pooling import pool
from jaxmethods.models.text_encoder import TextEncoder
from jaxmethods.train.optim import OptimConfig
from jaxmethods.train.trainer import LoopConfig, fit

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TinyEncoderConfig:
    """dim: hidden size = embedding size E; layers / heads: the encoder's depth and heads;
    vocab_size: BPE vocabulary bound; max_length: tokens per text (special tokens included);
    steps / batch_size / lr: contrastive training (AdamW, 5 % warmup, linear decay);
    temperature: InfoNCE temperature; drop: fraction of tokens deleted in each view;
    pooling: "cls" (bge-m3's) or "mean" (the sentence vector, in training and in the files);
    group_block: texts of one group per block when `train_text_encoder` is given groups."""

    dim: int = 32
    layers: int = 2
    heads: int = 4
    vocab_size: int = 400
    max_length: int = 64
    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    temperature: float = 0.05
    drop: float = 0.15
    group_block: int = 8
    pooling: str = "cls"
    seed: int = 0


def _contrastive_loss_fn(graphdef: nnx.GraphDef, temperature: float, pooling: str = "cls"):
    """`loss_fn(params, constants, batch, rng)`: symmetric InfoNCE between the pooled rows of the
    two views; batch `input_ids` / `attention_mask` [2B, T] (view 1 then view 2), `real` [B]."""

    def loss_fn(params, constants, batch, rng):
        del constants, rng
        model = nnx.merge(graphdef, params)
        z = pool(
            model(batch["input_ids"], batch["attention_mask"]), batch["attention_mask"], pooling
        )
        z1, z2 = jnp.split(z, 2)
        real, pos = batch["real"] > 0, jnp.arange(z1.shape[0])
        loss = 0.5 * (
            info_nce(z1, z2, pos, temperature=temperature, mask=real)
            + info_nce(z2, z1, pos, temperature=temperature, mask=real)
        )
        return loss, {"info_nce": loss}

    return loss_fn


def delete_tokens(
    ids: np.ndarray, mask: np.ndarray, drop: float, rng: np.random.Generator, pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """ids, mask [B, T] (right-padded) -> the same with each real token but the first (CLS)
    deleted with probability `drop`, the kept tokens shifted left, int32."""
    keep = (mask > 0) & (rng.random(ids.shape) >= drop)
    keep[:, 0] = mask[:, 0] > 0
    order = np.argsort(~keep, axis=1, kind="stable")  # kept tokens first, in order
    kept = np.take_along_axis(keep, order, axis=1)
    out = np.where(kept, np.take_along_axis(ids, order, axis=1), pad_id)
    return out.astype(np.int32), kept.astype(np.int32)


def grouped_order(groups: Sequence[Hashable], block: int, seed: int) -> np.ndarray:
    """A permutation of range(len(groups)) made of blocks of `block` indices that share a group
    (the last block of a group may be shorter), the blocks in random order: consecutive batches
    of k * block texts then hold k groups, each with in-group (hard) negatives."""
    rng = np.random.default_rng(seed)
    by_group: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    blocks = []
    for members in by_group.values():
        members = rng.permutation(members)
        blocks += [members[k : k + block] for k in range(0, len(members), block)]
    return np.concatenate([blocks[i] for i in rng.permutation(len(blocks))]).astype(np.int64)


def train_text_encoder(
    texts: Sequence[str],
    cfg: TinyEncoderConfig,
    *,
    mesh: Mesh,
    workdir: str,
    groups: Sequence[Hashable] | None = None,
) -> TextEncoder:
    """A `TextEncoder` (CLS, L2-normalised, E = cfg.dim) trained on `texts` for `cfg.steps`.
    `groups` (e.g. each review's item): batches are built from blocks of `cfg.group_block`
    texts of one group (`grouped_order`), else drawn at random."""
    from jaxmethods.data.tokenizer import build_tiny_tokenizer

    texts = list(texts)
    if not texts:
        raise ValueError("train_text_encoder: no texts to train on")
    tok = build_tiny_tokenizer(texts, vocab_size=cfg.vocab_size, model_max_length=cfg.max_length)
    config = EncoderConfig.tiny(
        "xlm-roberta", vocab_size=len(tok), hidden_size=cfg.dim, intermediate_size=2 * cfg.dim,
        num_layers=cfg.layers, num_heads=cfg.heads, pad_token_id=tok.pad_token_id,
        max_position_embeddings=cfg.max_length + tok.pad_token_id + 1,
        hidden_dropout=0.0, attention_dropout=0.0,
    )  # fmt: skip
    model = EncoderModel(config, rngs=nnx.Rngs(cfg.seed))
    enc = tok(texts, truncation=True, max_length=cfg.max_length, padding="max_length")
    ids = np.asarray(enc["input_ids"], np.int32)
    mask = np.asarray(enc["attention_mask"], np.int32)
    width = int(mask.sum(1).max())
    ids, mask = ids[:, :width], mask[:, :width]

    order = np.arange(len(texts))
    if groups is not None:
        if len(groups) != len(texts):
            raise ValueError(f"train_text_encoder: {len(groups)} groups for {len(texts)} texts")
        order = grouped_order(groups, cfg.group_block, cfg.seed)

    def collate(idx: np.ndarray) -> dict:
        real = idx >= 0
        take = order[np.where(real, idx, 0)]
        rng = np.random.default_rng([cfg.seed, *take.tolist()])
        views = [delete_tokens(ids[take], mask[take], cfg.drop, rng, tok.pad_token_id)
                 for _ in range(2)]  # fmt: skip
        return {
            "input_ids": np.concatenate([v[0] for v in views]),
            "attention_mask": np.concatenate([v[1] for v in views]),
            "real": real.astype(np.int32),
        }

    graphdef, params = nnx.split(model)
    stream = step_stream(
        len(texts), collate, micro_batch_size=cfg.batch_size, seed=cfg.seed,
        shuffle=groups is None,
    )  # fmt: skip
    result = fit(
        params=params, optim=OptimConfig(lr=cfg.lr, warmup_ratio=0.05, weight_decay=0.01),
        num_steps=cfg.steps, batches=stream, mesh=mesh, workdir=os.path.join(workdir, "encoder"),
        loss_fn=_contrastive_loss_fn(graphdef, cfg.temperature, cfg.pooling),
        loop=LoopConfig(checkpoint_every=0, log_every=max(cfg.steps // 4, 1), progress=False),
        seed=cfg.seed, desc="dep/encoder",
    )  # fmt: skip
    log.info("text encoder: %d steps, InfoNCE %.4f", result.step, result.last_metrics["loss"])
    model = nnx.merge(graphdef, result.state.params)
    return TextEncoder(
        model, tok, pooling=cfg.pooling, normalize=True, max_length=cfg.max_length, mesh=mesh
    )
