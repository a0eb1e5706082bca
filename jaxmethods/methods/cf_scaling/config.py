"""Typed configuration of the embedding-scaling study (the CLI ConfigDict is converted here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from jaxmethods.data.recsys import CFDataConfig
from jaxmethods.methods.cf_scaling.presets import PAPER_DIM_RANGES
from jaxmethods.train.config import ConfigError, check_choice, to_dataclass
from jaxmethods.train.optim import OptimConfig
from jaxmethods.train.trainer import LoopConfig

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
    # NeuMF MLP widths: () scales them with d as [2d, d]; (128, 64) is RecBole's fixed default.
    mlp_hidden: tuple[int, ...] = ()


DEFAULT_HPARAMS = {
    "bpr": {},
    "bpr_drop": {},
    "neumf": {},
    "lightgcn": {"reg_weight": 1e-5, "n_layers": 2},
    "sgl": {"reg_weight": 1e-5, "n_layers": 3},
}


def default_hparams() -> dict:
    """model -> every ModelHParams field with RecBole's value (so each can be overridden)."""
    base = ModelHParams().__dict__
    return {m: {**base, **DEFAULT_HPARAMS[m]} for m in MODELS}


def cf_optim(lr: float = 1e-3) -> OptimConfig:
    """RecBole's optimizer: plain Adam at a constant rate, no clipping, no weight decay."""
    return OptimConfig(optimizer="adam", lr=lr, schedule="constant", max_grad_norm=0.0)


def cf_loop() -> LoopConfig:
    """One loop step is one epoch: log every epoch, checkpoint every 10 epochs, keep one."""
    return LoopConfig(checkpoint_every=10, keep_checkpoints=1, log_every=1)


@dataclass(frozen=True)
class TrainConfig:
    """RecBole's training protocol (with `optim`: Adam 1e-3): batch 2048, one uniform negative
    per positive, early stopping on valid NDCG@20 with patience 10, at most 300 epochs."""

    batch_size: int = 2048
    max_epochs: int = 300
    patience: int = 10
    metric: str = "ndcg@20"
    ks: tuple[int, ...] = (10, 20)
    neg_resample_rounds: int = 8  # redraws of negatives that hit a training positive
    eval_budget: int = 1 << 26  # floats of score activations per evaluation chunk
    propagation_budget: int = 1 << 28  # floats of gathered messages per LightGCN/SGL chunk
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
    # The paper's per-dataset size ranges ("" none; see presets.PAPER_DIM_RANGES), then
    # max_dim: model -> largest dim to train (0: no cap beyond the preset's).
    preset: str = ""
    max_dim: dict = field(default_factory=lambda: {m: 0 for m in MODELS})
    seeds: tuple[int, ...] = (0,)
    pack_max_dim: int = 128
    max_group_replicas: int = 16
    shard_min_dim: int = 1024
    shard_axis: str = "dim"
    curve_tol: float = 0.003  # double-peak dip / rise tolerance, relative to the curve's max
    curve_drop_frac: float = 0.25  # logarithmic: late decline at most this share of the gain

    def dims_for(self, model: str) -> list[int]:
        """The sizes `model` trains: `dims` capped by the preset, then by `max_dim[model]`."""
        cap = max(self.dims)
        if self.preset:
            cap = min(cap, PAPER_DIM_RANGES[self.preset][model])
        if int(self.max_dim.get(model, 0)) > 0:
            cap = min(cap, int(self.max_dim[model]))
        return [d for d in self.dims if d <= cap]


@dataclass(frozen=True)
class CFScalingConfig:
    method: str = "cf_scaling"
    name: str = "cf_scaling"
    mode: str = "single"
    model: str = "bpr"  # single runs
    embed_dim: int = 64  # single runs
    seed: int = 0  # single runs
    mesh: dict = field(default_factory=lambda: {"data": 1, "fsdp": -1, "tensor": 1})
    # With a real dataset (data.source != "synthetic"), data.noise_frac > 0 adds uniformly random
    # (user, item) pairs to the training split until they are that share of it (see noise.py);
    # the synthetic generator applies it itself, before the split.
    data: CFDataConfig = field(default_factory=CFDataConfig)
    optim: OptimConfig = field(default_factory=cf_optim)
    loop: LoopConfig = field(default_factory=cf_loop)
    train: TrainConfig = field(default_factory=TrainConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    hparams: dict = field(default_factory=default_hparams)  # model -> ModelHParams fields

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
    if cfg.sweep.preset:
        check_choice(cfg.sweep.preset, tuple(PAPER_DIM_RANGES), "config.sweep.preset")
    if not 0.0 <= cfg.data.noise_frac < 1.0:
        raise ConfigError(f"config.data.noise_frac: must be in [0, 1), got {cfg.data.noise_frac}")
    if cfg.optim.grad_accum != 1:
        raise ConfigError("config.optim.grad_accum: CF steps are whole batches; must be 1")
    bad_hidden = [h for h in cfg.model_hparams("neumf").mlp_hidden if h < 1]
    if bad_hidden:
        raise ConfigError(f"config.hparams.neumf.mlp_hidden: widths must be >= 1, got {bad_hidden}")
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
    for model in cfg.sweep.models if cfg.mode == "sweep" else ():
        if not cfg.sweep.dims_for(model):
            raise ConfigError(
                f"config.sweep.max_dim.{model}: no size of config.sweep.dims={cfg.sweep.dims} "
                "is within the preset / max_dim cap"
            )
    for model in MODELS:
        cfg.model_hparams(model)  # validates the overrides now, naming the field
    return cfg
