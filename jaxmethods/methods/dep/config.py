"""Typed configuration of a DEP run (the CLI's ConfigDict is converted here).

Defaults are the authors' settings (`shared/specs/dep.md` §7): AdamW lr 1e-5, weight decay
0.025, 1 % warmup then linear decay, clip 1.0, micro-batch 1 x 16 accumulation, 5 epochs, a
checkpoint per epoch, selection by validation METEOR on 512 samples, sampling at temperature
0.8 / top-p 0.95 up to 2048 new tokens, prompts of 3072 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jaxmethods.methods.dep.dataset import PROMPT_HISTORY
from jaxmethods.methods.dep.model import DEPAdapterConfig
from jaxmethods.methods.dep.synthetic import WORLDS
from jaxmethods.models.backbone import BackboneConfig
from jaxmethods.train.config import ConfigError, to_dataclass
from jaxmethods.train.optim import OptimConfig
from jaxmethods.train.trainer import LoopConfig

ARMS = ("none", "history", "dep")  # non-personalized, history-only soft tokens, DEP


@dataclass(frozen=True)
class DataConfig:
    """source: "synthetic" (`synthetic_dpl`, written under the workdir), a hub id
    (`SnowCharmQ/DPL-main`) or a local folder in DPL's layout; meta likewise (ignored for
    synthetic). num_val: validation samples used for selection (the authors' 512); max_test: test
    samples scored (-1 = all). max_length: prompt tokens (3072); total_length: training row length
    (the authors' max_length + 2048 + 1 = 5121). mean_rows / peer_rule / pad_missing /
    align_prompt: the quirk switches of `differences.DiffOptions` and `build_examples`.
    prompt_history: "full" (the authors' past-review blocks), "items" (title and text blanked,
    items and ratings listed) or "placeholders" (only the soft-token placeholders), so a user's
    style reaches the LLM only through the soft tokens (the demo). system_prompt: the authors'
    instruction as the system turn (False: Qwen's default one, shorter). num_users / num_items /
    reviews_per_user / synthetic_seed / world: `synthetic_dpl` ("mixed", or "favourite": the
    demo's world, where history alone cannot tell a user's word from their favourite tone)."""

    source: str = "synthetic"
    meta: str = "SnowCharmQ/DPL-meta"
    categories: tuple[str, ...] = ("Books", "Movies_and_TV", "CDs_and_Vinyl")
    num_val: int = 512
    max_test: int = -1
    max_length: int = 3072
    total_length: int = 5121
    mean_rows: str = "code"
    peer_rule: str = "code"
    pad_missing: bool = False
    align_prompt: bool = False
    prompt_history: str = "full"
    system_prompt: bool = True
    num_users: int = 24
    num_items: int = 36
    reviews_per_user: int = 20
    synthetic_seed: int = 0
    world: str = "mixed"


@dataclass(frozen=True)
class EmbedConfig:
    """source: "bge" (`encoder` through the shared `TextEncoder`, files under `folder`), "files"
    (precomputed per-user files in `folder`: ours or the authors' `.emb`), or "tiny" (a tiny
    XLM-R-shaped encoder of width `dim` trained in the run, `demo_encoder.train_text_encoder`, on
    the reviews before the val / test targets; its files go under `<workdir>/embeddings` unless
    `folder` is set: demo and tests). layers ... pooling: the tiny encoder's
    `TinyEncoderConfig` (pooling "cls", bge-m3's, or "mean")."""

    source: str = "bge"
    encoder: str = "BAAI/bge-m3"
    folder: str = ""
    dtype: str = "bfloat16"
    batch_size: int = 32
    dim: int = 1024
    layers: int = 2
    vocab_size: int = 400
    max_length: int = 64
    train_steps: int = 200
    train_batch_size: int = 32
    lr: float = 3e-3
    drop: float = 0.1
    temperature: float = 0.05
    pooling: str = "cls"


@dataclass(frozen=True)
class PretrainConfig:
    """Pre-training of a tiny decoder with a throw-away DEP adapter (the demo's LLM is trained in
    the run before it is frozen); off for a pretrained LLM. users: extra synthetic users whose
    training rows are the pre-training corpus (0: DEP's own training rows); their reviews are
    embedded and serve as peers, but they are never trained on, validated or tested by an arm.
    mask_arms: each row's soft rows are zeroed as one of the arms' inputs, drawn uniformly
    (none / history / dep), so the LLM learns to read whichever rows an arm gives it.
    all_labels: every real token of a row is a label (causal-LM pre-training), else only the
    target's, as in the arms' training. share_train: the `users` pre-training users' training
    rows are also the arms' training rows (DEP's val / test users stay unseen by the
    pre-training). keep_adapter: every arm's adapter starts from the pre-training adapter (the
    same start for the three arms) instead of a fresh initialisation."""

    enabled: bool = False
    users: int = 0
    share_train: bool = False
    keep_adapter: bool = False
    mask_arms: bool = False
    all_labels: bool = True
    steps: int = 100
    lr: float = 3e-3
    batch_size: int = 8


@dataclass(frozen=True)
class GenerateConfig:
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 2048
    seed: int = 0  # request i of a split samples with seed + i (the authors have none)


@dataclass(frozen=True)
class EvalConfig:
    """select: the validation metric that picks the epoch checkpoint (METEOR, as the authors'
    commented-out code). meteor_wordnet / meteor_tokenizer: `MeteorOptions` (False / "wordpunct"
    only where nltk data cannot be installed; reported under another name). bertscore: the
    `torch` extra, model `allenai/led-base-16384` as the authors."""

    select: str = "meteor"
    meteor_wordnet: bool = True
    meteor_tokenizer: str = "punkt"
    bertscore: bool = False
    bertscore_model: str = "allenai/led-base-16384"


@dataclass(frozen=True)
class DEPConfig:
    method: str = "dep"
    name: str = "dep"
    seed: int = 42
    mesh: dict = field(default_factory=lambda: {"data": -1, "fsdp": 1, "tensor": 1})
    epochs: int = 5
    batch_size: int = 1  # micro-batch; optim.grad_accum micro-batches make one step
    eval_batch_size: int = 8
    arms: tuple[str, ...] = ARMS
    checkpoint_per_epoch: bool = True  # the authors' per-epoch checkpoints (keeps them all)
    sae_weight: float = 100.0
    model: BackboneConfig = field(
        default_factory=lambda: BackboneConfig(
            source="Qwen/Qwen2.5-7B-Instruct",
            dtype="bfloat16",
            param_dtype="bfloat16",
            remat="full",
            logits_chunk_size=512,
            max_position_embeddings=8192,
        )
    )
    adapter: DEPAdapterConfig = field(default_factory=DEPAdapterConfig)
    data: DataConfig = field(default_factory=DataConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=1e-5, weight_decay=0.025, warmup_ratio=0.01, max_grad_norm=1.0, grad_accum=16
        )
    )
    loop: LoopConfig = field(default_factory=LoopConfig)


def from_config_dict(config: Any) -> DEPConfig:
    cfg = to_dataclass(DEPConfig, config)
    bad = [a for a in cfg.arms if a not in ARMS]
    if bad or not cfg.arms:
        raise ConfigError(f"config.arms: {list(cfg.arms)} must be a non-empty subset of {ARMS}")
    if cfg.embed.source not in ("bge", "files", "tiny"):
        raise ConfigError(f"config.embed.source: {cfg.embed.source!r} is not bge, files or tiny")
    if cfg.data.prompt_history not in PROMPT_HISTORY:
        raise ConfigError(
            f"config.data.prompt_history: {cfg.data.prompt_history!r} is not one of "
            f"{PROMPT_HISTORY}"
        )
    if cfg.data.world not in WORLDS:
        raise ConfigError(f"config.data.world: {cfg.data.world!r} is not one of {WORLDS}")
    if cfg.pretrain.users and cfg.data.source != "synthetic":
        raise ConfigError("config.pretrain.users: extra pre-training users need synthetic data")
    if cfg.embed.pooling not in ("cls", "mean"):
        raise ConfigError(f"config.embed.pooling: {cfg.embed.pooling!r} is not cls or mean")
    if cfg.embed.source == "files" and not cfg.embed.folder:
        raise ConfigError("config.embed.folder: required when config.embed.source = 'files'")
    if cfg.embed.dim != cfg.adapter.embed_size:
        raise ConfigError(
            f"config.adapter.embed_size={cfg.adapter.embed_size} differs from "
            f"config.embed.dim={cfg.embed.dim} (the encoder's width)"
        )
    if cfg.eval.select not in ("meteor", "rougeL", "rouge1", "sacrebleu"):
        raise ConfigError(f"config.eval.select: {cfg.eval.select!r} is not a generation metric")
    if cfg.eval.meteor_tokenizer not in ("punkt", "wordpunct"):
        raise ConfigError(
            f"config.eval.meteor_tokenizer: {cfg.eval.meteor_tokenizer!r} is not punkt or wordpunct"
        )
    if cfg.data.mean_rows not in ("code", "history"):
        raise ConfigError(f"config.data.mean_rows: {cfg.data.mean_rows!r} is not code or history")
    if cfg.data.peer_rule not in ("code", "others"):
        raise ConfigError(f"config.data.peer_rule: {cfg.data.peer_rule!r} is not code or others")
    if cfg.pretrain.enabled and not cfg.model.is_tiny:
        raise ConfigError("config.pretrain.steps: LM pre-training is for the tiny decoder only")
    return cfg
