"""Typed configuration of a DRC run (the CLI's ConfigDict is converted here).

A run trains, on the same data and for the same test episodes, the rows
  none    the reference itself (VQ round trip): no personalization at all;
  pigeon  Pigeon (mutual mask generator + reference MLP + LoRA; SFT then DPO);
  drc     DRC (dual towers + FusionNetwork over the frozen LM; stage 1 on importance-sampled
          triplets, stage 2 on augmented references).
Defaults are the authors' settings where they are known (Pigeon's LoRA r 8 / alpha 16 / dropout
0.05 on q_proj, v_proj; SFT lr 1e-5, DPO lr 5e-6 and beta 0.1; 5 history images) and
reconstructions otherwise (`docs/drc.md`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from jaxmethods.methods.drc.augment import AugmentConfig
from jaxmethods.methods.drc.fusion import FusionConfig
from jaxmethods.methods.drc.sampler import SamplerConfig
from jaxmethods.methods.drc.towers import TowerConfig
from jaxmethods.train.config import ConfigError, to_dataclass
from jaxmethods.train.trainer import LoopConfig

ROWS = ("none", "pigeon", "drc")


@dataclass(frozen=True)
class DataConfig:
    """source: "synthetic" (the styled-shapes world, `synthetic.py`) or "pigeon" (a Pigeon
    processed_seq folder `path` with `scenario` sticker / movie and visual-token ids per item in
    `codes_file`, [num_items, N] int, made by an external tokenizer). num_users / seq_len: the
    synthetic users (seq_len - 5 windows each). split_mode: `data.split_samples` ("random" over
    all samples, or "chronological" per user). max_test: test episodes scored (-1 = all).
    image_size / on_mismatch: images of another size or channel count are resized
    ("resize") or rejected ("reject"); on Pigeon's data, image_size is the side every image is
    resized to for the pixel metrics (Pigeon: 512). noise: the synthetic pixel noise.
    decoded_dir: (source pigeon) the PNGs that LaVIT's external pixel decoder made of the run's
    generations, `<decoded_dir>/<row>/<i>.png` for line i of `<workdir>/generations/index.jsonl`
    ("" = `<workdir>/decoded`); when complete they are scored with Pigeon's metric set."""

    source: str = "synthetic"
    path: str = ""
    scenario: str = "sticker"
    codes_file: str = ""
    num_users: int = 120
    seq_len: int = 9
    split_mode: str = "random"
    max_test: int = -1
    image_size: int = 32
    on_mismatch: str = "resize"
    noise: float = 0.02
    motifs: str = "bold"
    decoded_dir: str = ""


@dataclass(frozen=True)
class VQSection:
    """The VQ tokenizer trained in the run (`jaxmethods.models.vision.vq`), cached in
    `<workdir>/vq.npz` (reused when its config matches). kmeans_iters: > 0 starts the codebook
    from k-means centres of the encoder outputs (`train_vq`), 0 from random encoder outputs."""

    num_downsamples: int = 3
    codebook_size: int = 128
    code_dim: int = 16
    hidden: int = 24
    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    kmeans_iters: int = 0


@dataclass(frozen=True)
class LMSection:
    """The image-token LM: source "tiny" (a `DecoderConfig.tiny` sized by the fields below,
    pre-trained in the run on visual-token sequences of `pretrain_images` same-user images) or
    a LaVIT-7B-v2 folder / hub id (`image_lm.load_lavit_llm`)."""

    source: str = "tiny"
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    dtype: str = "float32"
    pretrain_steps: int = 200
    pretrain_batch_size: int = 16
    pretrain_images: int = 3
    pretrain_lr: float = 3e-3


@dataclass(frozen=True)
class PigeonSection:
    """Pigeon's baseline: mask generator sizes and dropouts (`PigeonConfig`), LoRA (also DRC's
    when `drc.train_lora`), SFT and DPO.
    dpo_candidates: sampled generations per DPO prompt (the best / worst by the feature
    similarity of `run.preference_pairs` become chosen / rejected). mask_ratio: alpha_r at
    inference (Pigeon sweeps it per sample with a CLIP-based selection; one value here).
    lora_targets: regex over the LM's module paths that get LoRA factors (Pigeon: q_proj,
    v_proj)."""

    ffn_dim: int = 2048
    ref_hidden: int = 512
    drop_prob: float = 0.2
    encoder_dropout: float = 0.1
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_targets: str = r"(q_proj|v_proj)$"
    sft_steps: int = 1000
    sft_lr: float = 1e-5
    dpo_steps: int = 200
    dpo_lr: float = 5e-6
    dpo_beta: float = 0.1
    dpo_prompts: int = 64
    dpo_candidates: int = 4
    batch_size: int = 16
    dpo_batch_size: int = 8
    mask_ratio: float = 0.2


@dataclass(frozen=True)
class DRCSection:
    """DRC: towers, fusion, the loss composition (`model.DRCConfig`), stage 1 on triplets mined
    by `triplet_rule` with the importance `sampler`, stage 2 with `augment`ed references
    (`num_augment` copies per training sample, drawn once). restyle: the fraction of those
    copies replaced by a style transfer, the target's semantics re-rendered in another style of
    the synthetic world (the stand-in of the optional style-transfer augmentation; 0 = off)."""

    tower: TowerConfig = field(default_factory=TowerConfig)
    fusion: FusionConfig = field(default_factory=lambda: FusionConfig(num_latents=16))
    cross_weight: float = 1.0
    cross_mode: str = "both"
    history_query: str = "leave_one_out"
    train_lora: bool = False
    triplet_rule: str = "labels"
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    stage1_steps: int = 300
    stage1_lr: float = 1e-3
    stage1_batch_size: int = 16
    stage2_steps: int = 300
    stage2_lr: float = 1e-3
    stage2_batch_size: int = 16
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    num_augment: int = 2
    restyle: float = 0.0


@dataclass(frozen=True)
class JudgeSection:
    steps: int = 300
    hidden: int = 64
    images: int = 2000


@dataclass(frozen=True)
class GenerateSection:
    """Greedy by default (the demo); do_sample with per-episode seeds seed + i otherwise."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    seed: int = 0
    batch_size: int = 32


@dataclass(frozen=True)
class DRCRunConfig:
    method: str = "drc"
    name: str = "drc"
    seed: int = 0
    mesh: dict = field(default_factory=lambda: {"data": -1, "fsdp": 1, "tensor": 1})
    rows: tuple[str, ...] = ROWS
    grid_rows: int = 8
    data: DataConfig = field(default_factory=DataConfig)
    vq: VQSection = field(default_factory=VQSection)
    lm: LMSection = field(default_factory=LMSection)
    pigeon: PigeonSection = field(default_factory=PigeonSection)
    drc: DRCSection = field(default_factory=DRCSection)
    judges: JudgeSection = field(default_factory=JudgeSection)
    generate: GenerateSection = field(default_factory=GenerateSection)
    loop: LoopConfig = field(default_factory=LoopConfig)


def from_config_dict(config: Any) -> DRCRunConfig:
    """The ConfigDict as a `DRCRunConfig`, with cross-field checks naming the field."""
    cfg = to_dataclass(DRCRunConfig, config)
    bad = [r for r in cfg.rows if r not in ROWS]
    if bad or not cfg.rows:
        raise ConfigError(f"config.rows: {list(cfg.rows)} must be a non-empty subset of {ROWS}")
    d = cfg.data
    if d.source not in ("synthetic", "pigeon"):
        raise ConfigError(f"config.data.source: {d.source!r} is not synthetic or pigeon")
    if d.source == "pigeon" and not (d.path and d.codes_file):
        raise ConfigError("config.data.path / config.data.codes_file: required for source pigeon")
    if d.decoded_dir and d.source != "pigeon":
        raise ConfigError("config.data.decoded_dir: only for source pigeon (decoded generations)")
    if d.decoded_dir and os.path.exists(d.decoded_dir) and not os.path.isdir(d.decoded_dir):
        raise ConfigError(f"config.data.decoded_dir: {d.decoded_dir!r} is not a folder")
    if d.motifs not in ("bold", "notch"):
        raise ConfigError(f"config.data.motifs: {d.motifs!r} is not bold or notch")
    if not 0.0 <= cfg.drc.restyle <= 1.0:
        raise ConfigError(f"config.drc.restyle: {cfg.drc.restyle} is not in [0, 1]")
    if d.scenario not in ("sticker", "movie"):
        raise ConfigError(f"config.data.scenario: {d.scenario!r} is not sticker or movie")
    if d.on_mismatch not in ("resize", "reject"):
        raise ConfigError(f"config.data.on_mismatch: {d.on_mismatch!r} is not resize or reject")
    if d.split_mode not in ("random", "chronological"):
        raise ConfigError(f"config.data.split_mode: {d.split_mode!r} is not random/chronological")
    if d.source == "synthetic" and d.seq_len < 6:
        raise ConfigError(f"config.data.seq_len: {d.seq_len} < 6 (a window of 5 + 1)")
    if d.source == "synthetic" and d.image_size != 32:
        raise ConfigError(
            f"config.data.image_size: the synthetic world is 32 px, got {d.image_size}"
        )
    if cfg.drc.triplet_rule not in ("labels", "sticker", "movie"):
        raise ConfigError(f"config.drc.triplet_rule: {cfg.drc.triplet_rule!r} is unknown")
    if cfg.drc.cross_mode not in ("both", "split"):
        raise ConfigError(f"config.drc.cross_mode: {cfg.drc.cross_mode!r} is not both or split")
    if cfg.lm.source == "tiny" and cfg.lm.hidden_size % cfg.lm.num_heads:
        raise ConfigError(
            f"config.lm.hidden_size: {cfg.lm.hidden_size} is not divisible by num_heads "
            f"{cfg.lm.num_heads}"
        )
    if not 0.0 <= cfg.pigeon.mask_ratio <= 1.0:
        raise ConfigError(f"config.pigeon.mask_ratio: {cfg.pigeon.mask_ratio} is not in [0, 1]")
    if cfg.pigeon.dpo_steps and cfg.pigeon.dpo_candidates < 2:
        raise ConfigError("config.pigeon.dpo_candidates: DPO needs >= 2 candidates per prompt")
    return cfg
