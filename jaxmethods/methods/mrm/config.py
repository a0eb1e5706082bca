"""Typed MRM configuration (the CLI's ConfigDict is converted here, with errors naming fields)."""

from __future__ import annotations

from dataclasses import dataclass, field

from jaxmethods.train.config import check_choice, to_dataclass
from jaxmethods.train.meta import HYPERGRAD_MODES, InnerLoopConfig


@dataclass(frozen=True)
class DataConfig:
    """`source`: "synthetic" (generated in the run) or "corpus" (a folder written by
    `jaxmethods.data.preferences.save_corpus`; the extractor's `split` step applies the dataset
    protocol there: seen/unseen users, per-user train/test and train limits, docs/mrm_data.md)."""

    source: str = "synthetic"
    path: str = ""
    seed: int = 42
    val_ratio: float = 0.9
    # Device dtype of the embedding table. The Skywork embeddings are bf16 to begin with, so
    # "bfloat16" is exact for them, halves memory and the per-step gather traffic; the reward
    # model always computes in float32.
    embedding_dtype: str = "float32"
    # Synthetic generator (source = "synthetic"); see jaxmethods.data.synthetic_prefs.
    num_users: int = 64
    dim: int = 16
    num_rewards: int = 2
    pairs_per_user: tuple[int, ...] = (12, 32)
    convs_per_user: tuple[int, ...] = (4, 8)
    label_noise: float = 0.1
    mixture_concentration: float = 0.3
    direction_cosine: float = -0.3
    feature_scale: float = 1.0


@dataclass(frozen=True)
class ModelConfig:
    hidden_layers: tuple[int, ...] = (2,)
    scale: float = 0.01
    use_bias: bool = False


@dataclass(frozen=True)
class MetaConfig:
    inner: InnerLoopConfig = field(default_factory=InnerLoopConfig)
    tasks_per_batch: int = 2
    hypergrad: str = "second_order"
    rpo_tail_frac: float = 0.5
    rpo_gamma: float = 0.5


@dataclass(frozen=True)
class OptimConfig:
    """Outer Adam with linear warmup then cosine decay (transformers' cosine-with-warmup)."""

    lr: float = 1e-3
    warmup_ratio: float = 0.05
    clip_norm: float = 1.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8


@dataclass(frozen=True)
class EvalConfig:
    inner_steps: int = 1
    every_epochs: int = 1
    worst_frac: float = 0.1
    user_chunk: int = 1024


@dataclass(frozen=True)
class BaselineConfig:
    """A global (non-personalized) Bradley–Terry reward model on the same pairs, for comparison."""

    enabled: bool = False
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-2


@dataclass(frozen=True)
class MRMConfig:
    method: str = "mrm"
    name: str = "mrm"
    seed: int = 42
    epochs: int = 200
    mesh: dict = field(default_factory=lambda: {"data": -1, "fsdp": 1, "tensor": 1})
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    log_every: int = 10
    progress: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)


def from_config_dict(config) -> MRMConfig:
    cfg = to_dataclass(MRMConfig, config)
    check_choice(cfg.data.source, ("synthetic", "corpus"), "config.data.source")
    check_choice(cfg.data.embedding_dtype, ("float32", "bfloat16"), "config.data.embedding_dtype")
    check_choice(cfg.meta.hypergrad, HYPERGRAD_MODES, "config.meta.hypergrad")
    check_choice(cfg.meta.inner.optimizer, ("adam", "sgd"), "config.meta.inner.optimizer")
    if cfg.data.source == "corpus" and not cfg.data.path:
        raise ValueError("config.data.path: required when config.data.source = 'corpus'")
    if cfg.meta.tasks_per_batch < 1:
        raise ValueError("config.meta.tasks_per_batch: must be >= 1")
    return cfg
