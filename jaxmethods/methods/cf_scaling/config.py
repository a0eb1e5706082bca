"""Typed configuration of the embedding-scaling study (the CLI ConfigDict is converted here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from jaxmethods.data.recsys import CFDataConfig
from jaxmethods.train.config import ConfigError, check_choice, to_dataclass

MODELS = ("bpr", "neumf", "lightgcn", "sgl", "bpr_drop")
MODES = ("single", "sweep")


@dataclass(frozen=True)
class ModelHParams:
    """Per-model hyper-parameters; defaults are RecBole's model YAMLs (see docs/cf_scaling.md)."""

    reg_weight: float = 0.0  # BPR / BPR_Drop: RecBole's BPR has no regulariser
    squared_reg: bool = False  # EmbLoss require_pow (False in RecBole's LightGCN / SGL)
    n_layers: int = 2  # LightGCN (RecBole 2, original paper 3); SGL uses 3
    dropout: float = 0.1  # NeuMF MLP dropout
    ssl_weight: float = 0.05  # SGL ssl_reg
    temperature: float = 0.5  # SGL lamb (τ)
    edge_drop: float = 0.1  # SGL ratio
    drop_max: float = 0.2  # BPR_Drop ε_max (T-CE default drop rate)
    drop_ramp_epochs: float = 10.0  # BPR_Drop: epochs for ε to ramp linearly from 0 to ε_max


DEFAULT_HPARAMS = {
    "bpr": {},
    "bpr_drop": {},
    "neumf": {},
    "lightgcn": {"reg_weight": 1e-5, "n_layers": 2},
    "sgl": {"reg_weight": 1e-5, "n_layers": 3},
}


@dataclass(frozen=True)
class TrainConfig:
    """RecBole's training protocol: Adam 1e-3, batch 2048, one uniform negative per positive,
    early stopping on valid NDCG@20 with patience 10, at most 300 epochs."""

    lr: float = 1e-3
    batch_size: int = 2048
    max_epochs: int = 300
    patience: int = 10
    metric: str = "ndcg@20"
    ks: tuple[int, ...] = (10, 20)
    neg_resample_rounds: int = 8  # redraws of negatives that hit a training positive
    eval_budget: int = 1 << 26  # floats of score activations per evaluation chunk
    propagation_budget: int = 1 << 28  # floats of gathered messages per LightGCN/SGL chunk
    checkpoint_every: int = 10  # epochs; 0 disables checkpoints
    keep_checkpoints: int = 1
    fast_compile: bool = False  # XLA backend optimisation level 0: CPU smoke tests, debugging


@dataclass(frozen=True)
class SweepConfig:
    """Which (model, dim) runs to train and how replicas are packed and sharded.

    Embedding sizes <= pack_max_dim train together as one vmapped program, zero-padded to the
    largest of them; larger sizes train one size at a time (all seeds together). Tables of a
    padded size >= shard_min_dim are sharded over the mesh's `fsdp` axis, along the embedding
    dimension (shard_axis="dim") or the rows ("rows", the automatic FSDP rule).
    """

    models: tuple[str, ...] = ("bpr", "neumf", "lightgcn", "sgl")
    dims: tuple[int, ...] = tuple(2**k for k in range(1, 16))
    max_dim: dict = field(default_factory=dict)  # model -> largest dim to train (0: no cap)
    seeds: tuple[int, ...] = (0,)
    pack_max_dim: int = 128
    max_group_replicas: int = 16
    shard_min_dim: int = 1024
    shard_axis: str = "dim"
    curve_tol: float = 0.003  # double-peak dip / rise tolerance, relative to the curve's max
    curve_drop_frac: float = 0.25  # logarithmic: late decline at most this share of the gain


@dataclass(frozen=True)
class CFScalingConfig:
    method: str = "cf_scaling"
    name: str = "cf_scaling"
    mode: str = "single"
    model: str = "bpr"  # single runs
    embed_dim: int = 64  # single runs
    seed: int = 0  # single runs
    mesh: dict = field(default_factory=lambda: {"data": 1, "fsdp": -1, "tensor": 1})
    progress: bool = True
    data: CFDataConfig = field(default_factory=CFDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    hparams: dict = field(default_factory=dict)  # model -> overrides of ModelHParams fields

    def model_hparams(self, model: str) -> ModelHParams:
        values = dict(DEFAULT_HPARAMS[model], **dict(self.hparams.get(model, {})))
        return to_dataclass(ModelHParams, values, f"config.hparams.{model}")


def _power_of_two(d: int) -> bool:
    return d > 0 and d & (d - 1) == 0


def from_config_dict(config) -> CFScalingConfig:
    try:
        cfg = to_dataclass(CFScalingConfig, config)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from e
    check_choice(cfg.mode, MODES, "config.mode")
    check_choice(cfg.model, MODELS, "config.model")
    for i, m in enumerate(cfg.sweep.models):
        check_choice(m, MODELS, f"config.sweep.models[{i}]")
    unknown = sorted(set(cfg.hparams) - set(MODELS))
    if unknown:
        raise ConfigError(f"config.hparams.{unknown[0]}: not a model (models: {MODELS})")
    unknown = sorted(set(cfg.sweep.max_dim) - set(MODELS))
    if unknown:
        raise ConfigError(f"config.sweep.max_dim.{unknown[0]}: not a model (models: {MODELS})")
    check_choice(cfg.sweep.shard_axis, ("dim", "rows"), "config.sweep.shard_axis")
    if cfg.train.metric not in {f"{m}@{k}" for m in ("ndcg", "recall") for k in cfg.train.ks}:
        raise ConfigError(
            f"config.train.metric: {cfg.train.metric!r} must be ndcg@K or recall@K with K in "
            f"config.train.ks={cfg.train.ks}"
        )
    if cfg.embed_dim < 1:
        raise ConfigError(f"config.embed_dim: must be positive, got {cfg.embed_dim}")
    bad = [d for d in cfg.sweep.dims if not _power_of_two(d)]
    if bad:
        raise ConfigError(f"config.sweep.dims: {bad} are not powers of two")
    if cfg.train.batch_size < 1 or cfg.train.max_epochs < 1 or cfg.train.patience < 0:
        raise ConfigError("config.train: batch_size and max_epochs must be >= 1, patience >= 0")
    for model in MODELS:
        cfg.model_hparams(model)  # validates the overrides now, naming the field
    return cfg
