"""Typed MRM configuration (the CLI's ConfigDict is converted here, with errors naming fields)."""

from __future__ import annotations

from dataclasses import dataclass, field

from jaxmethods.data.user_splits import PROTOCOLS
from jaxmethods.train.config import ConfigError, check_choice, to_dataclass
from jaxmethods.train.meta import HYPERGRAD_MODES, InnerLoopConfig
from jaxmethods.train.optim import OptimConfig
from jaxmethods.train.trainer import LoopConfig

PEERS = ("per_user", "lore", "pal", "vpl")


@dataclass(frozen=True)
class DataConfig:
    """`source`: "synthetic" (generated in the run) or "corpus" (a folder written by
    `jaxmethods.data.preferences.save_corpus`).

    `protocol` ("none", "prism", "reddit") applies the dataset's split protocol in memory with
    seed `seed + repeat` (seen/unseen users, per-user train/test, the train limits), so a full
    corpus from the extractor can be re-split on every repeat; "none" uses the corpus's own
    split (e.g. one written by the extractor's `split` step) and allows only one repeat.
    """

    source: str = "synthetic"
    path: str = ""
    protocol: str = "none"
    seen_train_limit: int = -1
    unseen_train_limit: int = -1
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


def outer_optim() -> OptimConfig:
    """The authors' outer loop: Adam (no decay), 5% warmup then cosine, global-norm clip 1.0."""
    return OptimConfig(
        optimizer="adam", lr=1e-3, schedule="cosine", warmup_ratio=0.05, max_grad_norm=1.0
    )


def adamw_cosine(lr: float, weight_decay: float, max_grad_norm: float) -> OptimConfig:
    """AdamW with 5% warmup then cosine (HF Trainer's schedule, as PAL and VPL train)."""
    return OptimConfig(
        optimizer="adamw", lr=lr, schedule="cosine", warmup_ratio=0.05,
        weight_decay=weight_decay, max_grad_norm=max_grad_norm,
    )  # fmt: skip


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
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            optimizer="adam", lr=1e-2, schedule="constant", max_grad_norm=0.0
        )
    )


@dataclass(frozen=True)
class PerUserConfig:
    """Per-user linear heads r_u(x) = w_u · (scale x), each fitted on its own user's train pairs
    only (LoRe's per-user baseline: Adam, lr 0.01, 1000 iterations, zero initialisation here)."""

    fit: InnerLoopConfig = field(
        default_factory=lambda: InnerLoopConfig(optimizer="adam", lr=1e-2, steps=1000)
    )
    l2: float = 0.0


@dataclass(frozen=True)
class LoReConfig:
    """LoRe (Bose et al. 2025): shared basis V [D, rank], user weights softmax(w_u) on the simplex.

    Joint full-batch Adam (lr 0.5, 1000 iterations: `epochs` are full-batch steps while
    `users_per_batch` covers every seen user) on V and the seen users' logits; unseen users fit
    their logits with V frozen (Adam, lr 0.5, 500 iterations), as in the authors' `run`.
    """

    rank: int = 5
    epochs: int = 1000
    users_per_batch: int = 4096
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            optimizer="adam", lr=0.5, schedule="constant", max_grad_norm=0.0
        )
    )
    fit: InnerLoopConfig = field(
        default_factory=lambda: InnerLoopConfig(optimizer="adam", lr=0.5, steps=500)
    )


@dataclass(frozen=True)
class PALConfig:
    """PAL-A (Chen et al. 2024): K prototypes P [K, D] in the input space, a shared projector f,
    user ideal point a_u = f(softmax(w_u) P), reward -‖f(x) - a_u‖ (or its square)."""

    num_prototypes: int = 5
    pref_dim: int = 64
    distance: str = "euclidean"  # PAL's `dist` learner; "squared": a mixture of prototype rewards
    epochs: int = 50
    users_per_batch: int = 64
    optim: OptimConfig = field(default_factory=lambda: adamw_cosine(1e-3, 0.0, 0.0))
    fit: InnerLoopConfig = field(
        default_factory=lambda: InnerLoopConfig(optimizer="adam", lr=0.1, steps=200)
    )


@dataclass(frozen=True)
class VPLConfig:
    """VPL (Poddar et al. 2024): q(z | support) from mean-pooled pair encodings, r(x, z) an MLP,
    ELBO = BT log-likelihood of the query pairs - kl_weight * KL(q || N(0, I))."""

    latent_dim: int = 512
    hidden_dim: int = 512
    kl_weight: float = 0.01
    epochs: int = 50
    users_per_batch: int = 64
    optim: OptimConfig = field(default_factory=lambda: adamw_cosine(1e-3, 1e-3, 1.0))


@dataclass(frozen=True)
class MRMConfig:
    method: str = "mrm"
    name: str = "mrm"
    seed: int = 42
    epochs: int = 200
    # Re-split users and conversations with seed + r and retrain, r = 0 .. repeats - 1.
    repeats: int = 1
    # Personalized baselines trained and evaluated beside MRM: any of PEERS.
    peers: tuple[str, ...] = ()
    mesh: dict = field(default_factory=lambda: {"data": -1, "fsdp": 1, "tensor": 1})
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(keep_checkpoints=3))
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    optim: OptimConfig = field(default_factory=outer_optim)
    eval: EvalConfig = field(default_factory=EvalConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    per_user: PerUserConfig = field(default_factory=PerUserConfig)
    lore: LoReConfig = field(default_factory=LoReConfig)
    pal: PALConfig = field(default_factory=PALConfig)
    vpl: VPLConfig = field(default_factory=VPLConfig)


def from_config_dict(config) -> MRMConfig:
    cfg = to_dataclass(MRMConfig, config)
    check_choice(cfg.data.source, ("synthetic", "corpus"), "config.data.source")
    check_choice(cfg.data.protocol, PROTOCOLS, "config.data.protocol")
    check_choice(cfg.data.embedding_dtype, ("float32", "bfloat16"), "config.data.embedding_dtype")
    check_choice(cfg.meta.hypergrad, HYPERGRAD_MODES, "config.meta.hypergrad")
    check_choice(cfg.meta.inner.optimizer, ("adam", "sgd"), "config.meta.inner.optimizer")
    check_choice(cfg.pal.distance, ("squared", "euclidean"), "config.pal.distance")
    for i, peer in enumerate(cfg.peers):
        check_choice(peer, PEERS, f"config.peers[{i}]")
    if cfg.data.source == "corpus" and not cfg.data.path:
        raise ConfigError("config.data.path: required when config.data.source = 'corpus'")
    if cfg.meta.tasks_per_batch < 1:
        raise ConfigError("config.meta.tasks_per_batch: must be >= 1")
    if cfg.repeats < 1:
        raise ConfigError(f"config.repeats: must be >= 1, got {cfg.repeats}")
    if cfg.repeats > 1 and cfg.data.source == "corpus" and cfg.data.protocol == "none":
        raise ConfigError(
            "config.repeats: re-splitting a corpus needs config.data.protocol = 'prism' or "
            "'reddit' (and the full corpus written by the extractor's `extract` step)"
        )
    return cfg
