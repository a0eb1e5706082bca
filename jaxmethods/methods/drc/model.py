"""DRCModel: the dual towers + FusionNetwork in front of a frozen (or LoRA-adapted) image-token LM.

Latent instructions are K soft tokens written over K `<emb>` placeholders (spec §3; where they
enter the prompt is unknown [reconstruction: verify]). Every sequence ends with the image to
reconstruct, so the loss is the CE of its N visual ids and the end id:

    stage 1   [<emb> x K] <img> x_a <end>                       (one per triplet and route)
    stage 2   [<img> h_j <end> x M]? [<img> ref <end>]? [<emb> x K] <img> x_t <end>

Stage 1 (disentanglement), for a triplet (x_a, x_s same style, x_m same semantics), with
E_* = the LM's input embeddings of the visual ids:
    compose        fuse(StyleTower(E_a, E_s), SemTower(E_a, E_m)) -> reconstruct x_a
    cross-compose  fuse(StyleTower(E_s, E_a), SemTower(E_m, E_a)) -> reconstruct x_a
    per-triplet loss l = CE_comp + cross_weight * CE_cross; objective mean_b w_b l_b with the
    importance weights w = 1 / (N p) of `ImportanceSampler` (1 for uniform draws).
Stage 2 (personalization): style features from the M history images (each image's tokens query
the other histories: same-style pairs as (x_a, x_s) in stage 1), semantic features from the
reference (augmented in training, so that its style must be ignored), fused, reconstruct the
target.

Trainable subsets by Variable type: `TowerParam`, `FusionParam` (and `LoRAParam` when the LM has
adapters and `train_lora`), see `model_train.split_drc`; the LM's own `nnx.Param`s go to `fit` as
`constants`.

    model = DRCModel(lm, vocab, DRCConfig())
    graphdef, params, frozen = split_drc(model)              # jaxmethods.methods.drc.model_train
    loss_fn = make_stage1_loss_fn(graphdef, model.cfg)        # batch: anchor/pos_style/pos_sem
    fit(loss_fn=loss_fn, params=params, constants=frozen, ...)
    codes = drc_generate(nnx.merge(graphdef, params, frozen), history, reference)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.methods.drc.fusion import FusionConfig, FusionNetwork
from jaxmethods.methods.drc.image_lm import (
    VisualVocab,
    inject_placeholders,
    target_token_ce,
)
from jaxmethods.methods.drc.towers import DualTower, TowerConfig
from jaxmethods.models.decoder import DecoderLM

CROSS_MODES = ("both", "split")
HISTORY_QUERIES = ("leave_one_out", "self")


@dataclass(frozen=True)
class DRCConfig:
    """Every DRC reconstruction choice [reconstruction: verify], with its default.

    tower: StyleTower / SemTower sizes (`TowerConfig`: LM width, 4 heads, FFN 2x).
    fusion: FusionNetwork (`FusionConfig`: K = 8 latent tokens, joint resampler).
    cross_weight: lambda of the cross-composed CE in the per-triplet loss (default 1.0).
    cross_mode: "both" (default: every triplet is composed and cross-composed, 2B LM rows) or
      "split" (even rows composed, odd rows cross-composed: B LM rows, half the LM cost; the
      per-triplet loss is then the one CE computed for it).
    num_history: M, history images per stage-2 sample (Pigeon: 5).
    history_query: stage-2 style features: "leave_one_out" (default: history image j queries
      the other M - 1 histories) or "self" (all history tokens query all of them).
    history_in_prompt: also put the raw history images in the stage-2 prompt (Pigeon does; off
      by default: DRC's latents replace them, and raw tokens invite copying).
    reference_in_prompt: also put the raw reference image in the stage-2 prompt (off).
    train_lora: `split_drc` also trains the LM's LoRA factors (when it has any).
    chunk_size: > 0 runs the LM head over the target positions in chunks.
    per_example_metrics: the loss functions also return `per_triplet_loss` / `per_example_loss`
      [B] (what `ImportanceSampler.observe` reads).
    """

    tower: TowerConfig = field(default_factory=TowerConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    cross_weight: float = 1.0
    cross_mode: str = "both"
    num_history: int = 5
    history_query: str = "leave_one_out"
    history_in_prompt: bool = False
    reference_in_prompt: bool = False
    train_lora: bool = False
    chunk_size: int = 0
    per_example_metrics: bool = True

    def __post_init__(self):
        if self.cross_mode not in CROSS_MODES:
            raise ValueError(f"DRCConfig.cross_mode: {self.cross_mode!r} not in {CROSS_MODES}")
        if self.history_query not in HISTORY_QUERIES:
            raise ValueError(
                f"DRCConfig.history_query: {self.history_query!r} not in {HISTORY_QUERIES}"
            )
        if self.num_history < 1 or (self.history_query == "leave_one_out" and self.num_history < 2):
            raise ValueError(
                f"DRCConfig.num_history: {self.num_history} (leave_one_out needs at least 2)"
            )
        if self.cross_weight < 0:
            raise ValueError(f"DRCConfig.cross_weight: must be >= 0, got {self.cross_weight}")


def _check_codes(name: str, x: jnp.ndarray, ndim: int) -> None:
    if x.ndim != ndim:
        raise ValueError(f"DRC batch field {name!r}: expected {ndim} axes, got shape {x.shape}")


class DRCModel(nnx.Module):
    """Args: lm (the image-token LM, any dtype; its vocabulary must hold `vocab`), vocab (id
    layout), cfg (`DRCConfig`), rngs (init of towers and fusion; default nnx.Rngs(0))."""

    def __init__(
        self, lm: DecoderLM, vocab: VisualVocab, cfg: DRCConfig = DRCConfig(), *,
        rngs: nnx.Rngs | None = None,
    ):  # fmt: skip
        if lm.config.vocab_size < vocab.vocab_size:
            raise ValueError(
                f"DRCModel: the LM's vocab_size {lm.config.vocab_size} < the visual layout's "
                f"{vocab.vocab_size}"
            )
        rngs = rngs or nnx.Rngs(0)
        hidden = lm.config.hidden_size
        self.lm = lm
        self.vocab = vocab
        self.cfg = cfg
        self.towers = DualTower(cfg.tower, hidden, rngs=rngs)
        self.fusion = FusionNetwork(cfg.fusion, cfg.tower.dim or hidden, hidden, rngs=rngs)

    @property
    def num_latents(self) -> int:
        return self.cfg.fusion.num_latents

    # ---- features ---------------------------------------------------------------------------
    def visual_embeddings(self, codes: jnp.ndarray) -> jnp.ndarray:
        """codes [..., N] -> E [..., N, H]: the LM's input embeddings of the visual ids
        (gradient-free: the embedding table is part of the frozen LM)."""
        ids = jnp.asarray(codes, jnp.int32) + self.vocab.visual_offset
        flat = ids.reshape(-1, ids.shape[-1])
        e = jax.lax.stop_gradient(self.lm.embed(flat))
        return e.reshape(*ids.shape, e.shape[-1])

    def stage1_latents(
        self, anchor: jnp.ndarray, pos_style: jnp.ndarray, pos_sem: jnp.ndarray
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """codes [B, N] each -> (composed latents [B, K, H], cross-composed latents [B, K, H])."""
        e_a, e_s, e_m = (self.visual_embeddings(x) for x in (anchor, pos_style, pos_sem))
        b = e_a.shape[0]
        # Both routes in one call per tower: rows [:B] compose (q = E_a), rows [B:] cross (q swapped).
        sty = self.towers.style(jnp.concatenate([e_a, e_s]), jnp.concatenate([e_s, e_a]))
        sem = self.towers.sem(jnp.concatenate([e_a, e_m]), jnp.concatenate([e_m, e_a]))
        lat = self.fusion(sty, sem)
        return lat[:b], lat[b:]

    def stage2_latents(
        self,
        history: jnp.ndarray,
        reference: jnp.ndarray,
        history_mask: jnp.ndarray | None = None,
        reference_kv: jnp.ndarray | None = None,
    ) -> jnp.ndarray:
        """history [B, M, N], reference [B, N] codes -> latents [B, K, H].

        history_mask: [B, M] bool, real history images (None = all); every row needs one
          (two with "leave_one_out"), which `jaxmethods.methods.drc.towers.check_kv_mask`
          checks on the host. reference_kv: [B, N] a second view of the reference for the
          SemTower's keys (None = the reference itself).
        """
        _check_codes("history", history, 3)
        _check_codes("reference", reference, 2)
        b, m, n = history.shape
        if m != self.cfg.num_history:
            raise ValueError(
                f"DRC batch field 'history': {m} images per sample, DRCConfig.num_history is "
                f"{self.cfg.num_history} (shape {history.shape})"
            )
        e_h = self.visual_embeddings(history)  # [B, M, N, H]
        hmask = jnp.ones((b, m), bool) if history_mask is None else history_mask.astype(bool)
        tok_mask = jnp.repeat(hmask, n, axis=1)  # [B, M N]
        flat = e_h.reshape(b, m * n, -1)
        if self.cfg.history_query == "self":
            f_sty = self.towers.style(flat, flat, tok_mask)
        else:
            others = np.array([[k for k in range(m) if k != j] for j in range(m)])  # [M, M-1]
            kv = e_h[:, others].reshape(b * m, (m - 1) * n, -1)
            kv_mask = jnp.repeat(hmask[:, others], n, axis=2).reshape(b * m, (m - 1) * n)
            f = self.towers.style(e_h.reshape(b * m, n, -1), kv, kv_mask)
            f_sty = f.reshape(b, m * n, -1)
        e_r = self.visual_embeddings(reference)
        e_kv = e_r if reference_kv is None else self.visual_embeddings(reference_kv)
        f_sem = self.towers.sem(e_r, e_kv)
        return self.fusion(f_sty, f_sem, sty_mask=tok_mask)

    # ---- sequences --------------------------------------------------------------------------
    def _prompt_ids(self, b: int, prefix: list[jnp.ndarray]) -> jnp.ndarray:
        """[B, P] prompt: prefix blocks, K `<emb>` placeholders, `<img>`."""
        v = self.vocab
        tail = jnp.full((b, self.num_latents + 1), v.emb_id, jnp.int32).at[:, -1].set(v.img_id)
        return jnp.concatenate([*prefix, tail], axis=1)

    def _stage2_prefix(self, history: jnp.ndarray, reference: jnp.ndarray) -> list[jnp.ndarray]:
        b = history.shape[0]
        parts = []
        if self.cfg.history_in_prompt:
            parts.append(self.vocab.image_ids(history).reshape(b, -1))
        if self.cfg.reference_in_prompt:
            parts.append(self.vocab.image_ids(reference))
        return parts

    def prompt_embeddings(self, prompt_ids: jnp.ndarray, latents: jnp.ndarray) -> jnp.ndarray:
        """[B, P] ids with K `<emb>` -> [B, P, H] LM input embeddings, latents injected."""
        return inject_placeholders(
            self.lm.embed(prompt_ids), prompt_ids, latents, self.vocab.emb_id
        )

    def reconstruction_ce(
        self,
        latents: jnp.ndarray,
        target: jnp.ndarray,
        prefix: Sequence[jnp.ndarray] = (),
        *,
        prefix_mask: jnp.ndarray | None = None,
        dropout_rng: jax.Array | None = None,
    ) -> jnp.ndarray:
        """Mean CE [B] of the target's N visual ids + end after `prefix [<emb> x K] <img>`.

        prefix_mask: [B, sum of prefix widths] 1 = real token (None = all real)."""
        b = target.shape[0]
        prompt = self._prompt_ids(b, list(prefix))
        target_ids = jnp.asarray(target, jnp.int32) + self.vocab.visual_offset
        end = jnp.full((b, 1), self.vocab.end_id, jnp.int32)
        labels = jnp.concatenate([target_ids, end], axis=1)  # [B, N + 1]
        embeds = jnp.concatenate(
            [self.prompt_embeddings(prompt, latents), self.lm.embed(labels)], axis=1
        )
        mask = None
        if prefix_mask is not None:
            rest = jnp.ones((b, embeds.shape[1] - prefix_mask.shape[1]), jnp.int32)
            mask = jnp.concatenate([prefix_mask.astype(jnp.int32), rest], axis=1)
        ce = target_token_ce(
            self.lm, embeds, labels, mask, dropout_rng=dropout_rng,
            chunk_size=self.cfg.chunk_size,
        )  # fmt: skip
        return jnp.mean(ce, axis=-1)

    # ---- losses -----------------------------------------------------------------------------
    def stage1_ce(
        self, anchor, pos_style, pos_sem, *, dropout_rng: jax.Array | None = None
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """(CE_composed [B], CE_cross [B]); both reconstruct `anchor` (x_a). With cross_mode
        "split" only one route runs per row (even rows composed, odd cross) and the other
        entry is 0."""
        for name, x in (("anchor", anchor), ("pos_style", pos_style), ("pos_sem", pos_sem)):
            _check_codes(name, x, 2)
        lat_c, lat_x = self.stage1_latents(anchor, pos_style, pos_sem)
        b = anchor.shape[0]
        if self.cfg.cross_mode == "both":
            ce = self.reconstruction_ce(
                jnp.concatenate([lat_c, lat_x]), jnp.concatenate([anchor, anchor]),
                dropout_rng=dropout_rng,
            )  # fmt: skip
            return ce[:b], ce[b:]
        composed = (jnp.arange(b) % 2 == 0)[:, None, None]
        ce = self.reconstruction_ce(
            jnp.where(composed, lat_c, lat_x), anchor, dropout_rng=dropout_rng
        )
        is_c = composed[:, 0, 0]
        return jnp.where(is_c, ce, 0.0), jnp.where(is_c, 0.0, ce)

    def stage1_per_triplet(self, ce_comp: jnp.ndarray, ce_cross: jnp.ndarray) -> jnp.ndarray:
        """The per-triplet loss [B] the objective weights and the sampler tracks."""
        if self.cfg.cross_mode == "split":
            return ce_comp + ce_cross  # exactly one is non-zero
        return ce_comp + self.cfg.cross_weight * ce_cross

    def stage2_ce(
        self, history, reference, target, *, history_mask=None, reference_kv=None,
        dropout_rng: jax.Array | None = None,
    ) -> jnp.ndarray:  # fmt: skip
        """Mean CE [B] of the target's visual ids + end given history [B, M, N] and reference
        [B, N] (augmented in training)."""
        _check_codes("target", target, 2)
        latents = self.stage2_latents(history, reference, history_mask, reference_kv)
        prefix = self._stage2_prefix(history, reference)
        prefix_mask = None
        if history_mask is not None and prefix:
            prefix_mask = jnp.ones((target.shape[0], sum(p.shape[1] for p in prefix)), bool)
            if self.cfg.history_in_prompt:
                hist = jnp.repeat(history_mask.astype(bool), history.shape[2] + 2, axis=1)
                prefix_mask = prefix_mask.at[:, : hist.shape[1]].set(hist)
        return self.reconstruction_ce(
            latents, target, prefix, prefix_mask=prefix_mask, dropout_rng=dropout_rng
        )
