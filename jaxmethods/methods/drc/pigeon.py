"""Pigeon (Xu et al.), DRC's main baseline, in the same code: mutual mask generator + reference MLP
in front of the image-token LM, and its stage-1 SFT ("masked preference reconstruction").

As in the authors' `Pigeon/models/mutual_mask_generator.py` and `lavit_for_pigeon.py` [from the
authors' code], with H the LM hidden size:

    x     = Dropout(LN(E_tok + PE_sin[pos] + TypeEmb[type]))      type: 0 pad, 1 history, 2 target
    o     = Dropout(tanh(Dense(LN(Encoder(x)))))                  (the same LN module both times)
    score = cos(E_tok, o)
    history keep  = GumbelTopK(masked_softmax(score | history), keep (1 - hist_mask_ratio))
    target keep   = GumbelTopK(1 - masked_softmax(score | target), keep (1 - mask_ratio))   train
                    GumbelTopK(masked_softmax(score | target),     keep (1 - mask_ratio))   infer
    `<emb>`       = MLP(mean of the kept target tokens' features)  MLP: F -> 512 -> H, tanh,
                                                                    dropout 0.2
    LM input      = [<img> h_j * keep_j <end>] x M, <emb>, <img> target <end>   (masked history
                    tokens get zero embeddings); CE on the target's visual ids + end.

Encoder = torch's `TransformerEncoderLayer` defaults (post-norm, ReLU, FFN 2048, dropout 0.1),
1 layer, 4 heads; positions restart at 1 for every image (max 257). Gumbel top-k: per row, over
the valid positions of a group, k = max(1, floor(n (1 - ratio))), y_soft = softmax((log p + g) /
tau), y_hard = the top-k of y_soft, output y_hard - sg(y_soft) + y_soft (straight-through).

Reconstructions [reconstruction: verify]: the target features are the LaVIT token-decoder
embeddings (2048-d) in Pigeon; here a frozen table `ref_table` [codebook, F] (e.g. the VQ
codebook vectors) or, by default, the LM's input embeddings of the visual ids. Pigeon's code
uses the hard keep decisions as integer masks, so no gradient reaches the mask generator; here
the embeddings are multiplied by the straight-through mask (`PigeonConfig.straight_through`,
default True; False detaches it as Pigeon's code effectively does). The text of Pigeon's prompt
is left out (optional `prefix_ids`). Trainable weights of the generator and MLP are `PigeonParam`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.methods.drc.image_lm import (
    VisualVocab,
    inject_placeholders,
    target_token_ce,
)
from jaxmethods.methods.drc.towers import CrossAttention, LayerNorm, typed_dense
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.dropout import dropout
from jaxmethods.models.linear import normal_init

PAD_TYPE, HIST_TYPE, TARGET_TYPE = 0, 1, 2


class PigeonParam(nnx.Param):
    """A trainable weight of Pigeon's mutual mask generator or reference MLP."""


class RefTable(nnx.Variable):
    """A frozen feature table [codebook, F] for the reference embedding (not trained)."""


@dataclass(frozen=True)
class PigeonConfig:
    """Pigeon's settings [from the authors' code] and the reconstruction switches.

    num_heads / num_layers / ffn_dim / encoder_dropout: the mask generator's
      TransformerEncoder (4 heads, 1 layer, torch defaults 2048 and 0.1).
    drop_prob: dropout of the generator's input/output and of the MLP (0.2).
    max_positions: sinusoidal table size (257: positions 1..256 within an image).
    hist_mask_ratio: fraction of history tokens masked (0.2).
    tau: Gumbel-softmax temperature (1.0).
    ref_hidden: the MLP's hidden width (512).
    num_history: M history images (5).
    straight_through: keep masks multiply the embeddings with ST gradients (see module doc).
    ln_eps: LayerNorm epsilon (1e-5). init_std: kernel init std (None = 1 / sqrt(fan_in),
      the scale of torch's default Linear init).
    """

    num_heads: int = 4
    num_layers: int = 1
    ffn_dim: int = 2048
    encoder_dropout: float = 0.1
    drop_prob: float = 0.2
    max_positions: int = 257
    hist_mask_ratio: float = 0.2
    tau: float = 1.0
    ref_hidden: int = 512
    num_history: int = 5
    straight_through: bool = True
    ln_eps: float = 1e-5
    init_std: float | None = None


def sinusoidal_table(max_len: int, dim: int) -> np.ndarray:
    """[max_len, dim] float32: sin on even, cos on odd columns (Vaswani et al.)."""
    pos = np.arange(max_len, dtype=np.float64)[:, None]
    div = np.exp(np.arange(0, dim, 2, dtype=np.float64) * (-np.log(10000.0) / dim))
    pe = np.zeros((max_len, dim), np.float64)
    pe[:, 0::2] = np.sin(pos * div)
    pe[:, 1::2] = np.cos(pos * div)[:, : dim // 2]
    return pe.astype(np.float32)


def _keys(key: jax.Array | None, n: int) -> list:
    return [None] * n if key is None else list(jax.random.split(key, n))


def masked_softmax(score: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """exp(score) * mask / sum (Pigeon's `Masked_softmax`, over the last axis); [B, T]."""
    e = jnp.exp(score.astype(jnp.float32)) * mask.astype(jnp.float32)
    return e / jnp.maximum(jnp.sum(e, axis=-1, keepdims=True), 1e-30)


def gumbel_topk_st(
    keep_prob: jnp.ndarray,
    valid: jnp.ndarray,
    mask_ratio: jnp.ndarray | float,
    key: jax.Array,
    tau: float = 1.0,
) -> jnp.ndarray:
    """Gumbel-softmax top-k with a straight-through estimator, per row over its valid positions.

    Args:
      keep_prob: [B, T] positive scores (probabilities) of keeping each position.
      valid: [B, T] bool, the positions of the group (others get 0).
      mask_ratio: scalar or [B], fraction to drop: k = max(1, floor(n (1 - ratio))) of the n
        valid positions are kept (none when n = 0).
      key: Gumbel noise (a fixed key gives a fixed mask).
      tau: softmax temperature.
    Returns:
      [B, T] float32: forward exactly k ones per row (0 elsewhere); gradient that of the soft
      Gumbel-softmax y_soft.
    """
    valid = valid.astype(bool)
    logits = jnp.log(jnp.where(valid, keep_prob.astype(jnp.float32), 1.0))
    u = jax.random.uniform(key, logits.shape, jnp.float32, minval=1e-20, maxval=1.0)
    g = -jnp.log(-jnp.log(u))  # Gumbel(0, 1)
    y = jnp.where(valid, (logits + g) / tau, -jnp.inf)
    y_soft = jax.nn.softmax(y, axis=-1)
    y_soft = jnp.where(valid, y_soft, 0.0)  # a row with no valid position: all zeros, no NaN
    n = jnp.sum(valid, axis=-1)
    ratio = jnp.broadcast_to(jnp.asarray(mask_ratio, jnp.float32), n.shape)
    k = jnp.maximum(1, jnp.floor(n * (1.0 - ratio) + 1e-4).astype(jnp.int32))
    k = jnp.where(n > 0, k, 0)
    order = jnp.argsort(-jnp.where(valid, y, -jnp.inf), axis=-1)  # rank 0 = largest
    rank = jnp.argsort(order, axis=-1)
    hard = ((rank < k[:, None]) & valid).astype(jnp.float32)
    return hard - jax.lax.stop_gradient(y_soft) + y_soft


class EncoderLayer(nnx.Module):
    """torch `TransformerEncoderLayer` (batch_first, post-norm, ReLU): x = LN1(x + SA(x)),
    x = LN2(x + FFN(x)), dropout after attention, inside and after the FFN."""

    def __init__(self, dim: int, cfg: PigeonConfig, *, rngs: nnx.Rngs):
        kw = dict(init_std=cfg.init_std, rngs=rngs)
        self.self_attn = CrossAttention(dim, cfg.num_heads, PigeonParam, **kw)
        self.norm1 = LayerNorm(dim, PigeonParam, eps=cfg.ln_eps)
        self.linear1 = typed_dense(dim, cfg.ffn_dim, PigeonParam, **kw)
        self.linear2 = typed_dense(cfg.ffn_dim, dim, PigeonParam, **kw)
        self.norm2 = LayerNorm(dim, PigeonParam, eps=cfg.ln_eps)
        self.rate = cfg.encoder_dropout

    def __call__(self, x, valid, key=None):
        k = _keys(key, 3)
        x = self.norm1(x + dropout(self.self_attn(x, x, valid), self.rate, k[0]))
        ff = self.linear2(dropout(jax.nn.relu(self.linear1(x)), self.rate, k[1]))
        return self.norm2(x + dropout(ff, self.rate, k[2]))


class MutualMaskGenerator(nnx.Module):
    """Call: token_embeds [B, T, H], valid [B, T], positions [B, T] (1-based within an image),
    types [B, T] (0 pad / 1 history / 2 target), mask_ratio (scalar or [B]), *, inference
    (static), gumbel_key, dropout_key -> keep [B, T] (ST; history and target groups summed)."""

    def __init__(self, dim: int, cfg: PigeonConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.layers = nnx.List([EncoderLayer(dim, cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.pe = nnx.Variable(jnp.asarray(sinusoidal_table(cfg.max_positions, dim)))
        self.type_embedding = PigeonParam(
            normal_init(rngs.params(), 1.0, shape=(3, dim), dtype=jnp.float32)
        )
        self.norm = LayerNorm(dim, PigeonParam, eps=cfg.ln_eps)
        self.dense = typed_dense(dim, dim, PigeonParam, init_std=cfg.init_std, rngs=rngs)

    def scores(self, token_embeds, valid, positions, types, dropout_key=None):
        """cos(E_tok, o) [B, T] float32."""
        k = _keys(dropout_key, 2 + len(self.layers))
        tok = token_embeds.astype(jnp.float32)
        x = tok + self.pe[...][positions] + self.type_embedding[...][types]
        x = dropout(self.norm(x), self.cfg.drop_prob, k[0])
        for i, layer in enumerate(self.layers):
            x = layer(x, valid, k[2 + i])
        o = jnp.tanh(self.dense(self.norm(x)))
        o = dropout(o, self.cfg.drop_prob, k[1])
        num = jnp.sum(tok * o, -1)
        den = jnp.maximum(jnp.linalg.norm(tok, axis=-1) * jnp.linalg.norm(o, axis=-1), 1e-8)
        return num / den

    def __call__(
        self, token_embeds, valid, positions, types, mask_ratio, *, inference: bool,
        gumbel_key: jax.Array, dropout_key: jax.Array | None = None,
    ):  # fmt: skip
        cos = self.scores(token_embeds, valid, positions, types, dropout_key)
        hist = (types == HIST_TYPE) & valid
        tgt = (types == TARGET_TYPE) & valid
        kh, kt = jax.random.split(gumbel_key)
        hist_keep = gumbel_topk_st(
            masked_softmax(cos, hist), hist, self.cfg.hist_mask_ratio, kh, self.cfg.tau
        )
        p_t = masked_softmax(cos, tgt)
        p_t = p_t if inference else 1.0 - p_t  # training masks the most similar target tokens
        return hist_keep + gumbel_topk_st(p_t, tgt, mask_ratio, kt, self.cfg.tau)


class ReferenceMLP(nnx.Module):
    """Pigeon's `MLP`: Linear(F, 512) -> dropout -> Linear(512, H) -> tanh -> dropout."""

    def __init__(self, in_dim: int, hid_dim: int, out_dim: int, cfg: PigeonConfig, *, rngs):
        self.encoder = typed_dense(in_dim, hid_dim, PigeonParam, init_std=cfg.init_std, rngs=rngs)
        self.decoder = typed_dense(hid_dim, out_dim, PigeonParam, init_std=cfg.init_std, rngs=rngs)
        self.rate = cfg.drop_prob

    def __call__(self, x, key=None):
        k = _keys(key, 2)
        h = self.decoder(dropout(self.encoder(x), self.rate, k[0]))
        return dropout(jnp.tanh(h), self.rate, k[1])


class PigeonModel(nnx.Module):
    """Args: lm (image-token LM), vocab (id layout), cfg, ref_table ([codebook, F] frozen
    features of the visual tokens, None = the LM's input embeddings), prefix_ids (text ids put
    before the history images, e.g. a tokenised instruction), rngs."""

    def __init__(
        self, lm: DecoderLM, vocab: VisualVocab, cfg: PigeonConfig = PigeonConfig(), *,
        ref_table: Any = None, prefix_ids: Sequence[int] = (), rngs: nnx.Rngs | None = None,
    ):  # fmt: skip
        rngs = rngs or nnx.Rngs(0)
        hidden = lm.config.hidden_size
        if ref_table is not None and np.shape(ref_table)[0] != vocab.codebook_size:
            raise ValueError(
                f"PigeonModel: ref_table has {np.shape(ref_table)[0]} rows, the codebook "
                f"{vocab.codebook_size}"
            )
        self.lm = lm
        self.vocab = vocab
        self.cfg = cfg
        self.prefix_ids = tuple(int(i) for i in prefix_ids)
        self.ref_table = nnx.data(None if ref_table is None else RefTable(jnp.asarray(ref_table)))
        feat = hidden if ref_table is None else int(np.shape(ref_table)[1])
        self.mask_generator = MutualMaskGenerator(hidden, cfg, rngs=rngs)
        self.adapter = ReferenceMLP(feat, cfg.ref_hidden, hidden, cfg, rngs=rngs)

    def _embed_codes(self, codes):
        return self.lm.embed(jnp.asarray(codes, jnp.int32) + self.vocab.visual_offset)

    def keep_masks(
        self, history, reference, mask_ratio, *, inference, gumbel_key, dropout_key=None
    ):
        """history [B, M, N], reference [B, N] codes -> (hist_keep [B, M, N], ref_keep [B, N])."""
        b, m, n = history.shape
        if m != self.cfg.num_history or reference.shape != (b, n):
            raise ValueError(
                f"Pigeon: history must be [B, {self.cfg.num_history}, N] and reference [B, N], "
                f"got {history.shape} and {reference.shape}"
            )
        ids = jnp.concatenate([history.reshape(b, m * n), reference], axis=1)
        tok = jax.lax.stop_gradient(self._embed_codes(ids))
        pos = jnp.tile(jnp.arange(1, n + 1), m + 1)[None].repeat(b, 0)
        types = jnp.concatenate(
            [jnp.full((b, m * n), HIST_TYPE), jnp.full((b, n), TARGET_TYPE)], axis=1
        )
        valid = jnp.ones((b, (m + 1) * n), bool)
        keep = self.mask_generator(
            tok, valid, pos, types, mask_ratio, inference=inference, gumbel_key=gumbel_key,
            dropout_key=dropout_key,
        )  # fmt: skip
        if not self.cfg.straight_through:
            keep = jax.lax.stop_gradient(keep)
        return keep[:, : m * n].reshape(b, m, n), keep[:, m * n :]

    def reference_embedding(self, reference, ref_keep, dropout_key=None):
        """The `<emb>` vector [B, H]: MLP(mean of the kept reference tokens' features)."""
        codes = jnp.asarray(reference, jnp.int32)
        if self.ref_table is None:
            feats = jax.lax.stop_gradient(self._embed_codes(codes))
        else:
            feats = jnp.take(self.ref_table[...], codes, axis=0)
        feats = feats.astype(jnp.float32)
        denom = jnp.maximum(jnp.sum(jax.lax.stop_gradient(ref_keep), -1, keepdims=True), 1.0)
        pooled = jnp.sum(feats * ref_keep[..., None], axis=1) / denom
        return self.adapter(pooled, dropout_key)

    def prompt(self, history, reference, mask_ratio, *, inference, gumbel_key, dropout_key=None):
        """(prompt ids [B, P], prompt embeddings [B, P, H]) ending with `<emb> <img>`."""
        v = self.vocab
        b, m, n = history.shape
        kd = _keys(dropout_key, 2)
        hist_keep, ref_keep = self.keep_masks(
            history, reference, mask_ratio, inference=inference, gumbel_key=gumbel_key,
            dropout_key=kd[0],
        )  # fmt: skip
        pre = jnp.broadcast_to(jnp.asarray(self.prefix_ids, jnp.int32), (b, len(self.prefix_ids)))
        hist_ids = v.image_ids(history)  # [B, M, N + 2]
        tail = jnp.broadcast_to(jnp.asarray([v.emb_id, v.img_id], jnp.int32), (b, 2))
        ids = jnp.concatenate([pre, hist_ids.reshape(b, -1), tail], axis=1)
        emb = self.lm.embed(ids)
        ones = jnp.ones((b, m, 1), hist_keep.dtype)
        scale = jnp.concatenate([ones, hist_keep, ones], axis=2).reshape(b, -1)  # <img>/<end> kept
        p = len(self.prefix_ids)
        emb = emb.at[:, p : p + m * (n + 2)].multiply(scale[..., None].astype(emb.dtype))
        soft = self.reference_embedding(reference, ref_keep, kd[1])[:, None]
        return ids, inject_placeholders(emb, ids, soft, v.emb_id)

    def completion_ce(self, prompt_embeds, completion, *, dropout_rng=None):
        """Per-token CE [B, N + 1] of completion codes [B, N] + end after the prompt."""
        v = self.vocab
        b = completion.shape[0]
        labels = jnp.concatenate(
            [jnp.asarray(completion, jnp.int32) + v.visual_offset, jnp.full((b, 1), v.end_id)],
            axis=1,
        ).astype(jnp.int32)
        embeds = jnp.concatenate([prompt_embeds, self.lm.embed(labels)], axis=1)
        return target_token_ce(self.lm, embeds, labels, dropout_rng=dropout_rng)
