"""Typed BalDRO configuration; the CLI's ConfigDict is converted here (errors name the field)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from jaxmethods.methods.baldro.objective import ObjectiveConfig
from jaxmethods.models.backbone import BackboneConfig, TinyDecoderSize, tiny_decoder_size
from jaxmethods.train.config import ConfigError, check_choice, to_dataclass

# "dv_softmax" runs BalDRO-DV with the paper text's soft-max sign (dv_sign = +1).
VARIANT_CHOICES = ("plain", "group", "dv", "dv_softmax")


@dataclass(frozen=True)
class ModelConfig(TinyDecoderSize):
    """`source`: "tiny" (a random `DecoderConfig.tiny` sized by the `TinyDecoderSize` fields, for
    demos and CI) or an HF model folder / hub id loaded with `jaxmethods.hf.load_pretrained`.
    `tokenizer`: tokenizer folder / id (default: the model's); unused for "tiny", whose
    tokenizer is trained on the synthetic corpus. `logits_chunk_size` > 0 computes the token
    CE from hidden states in chunks of that many positions (no [B, T, V] logits)."""

    source: str = "tiny"
    tokenizer: str = ""
    dtype: str = "float32"
    param_dtype: str = "float32"
    scan_layers: bool = True
    remat: str = "none"
    logits_chunk_size: int = 0

    def backbone(self) -> BackboneConfig:
        hf = self.source != "tiny"
        return BackboneConfig(
            source="hf" if hf else "tiny",
            path=self.source if hf else "",
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            scan_layers=self.scan_layers,
            remat=self.remat,
            **tiny_decoder_size(self),
        )


@dataclass(frozen=True)
class DataConfig:
    """`benchmark`: "synthetic" (fictitious authors generated in the run), "tofu" or "muse".
    `source`: hub id or local folder (default: the benchmark's hub id). For TOFU the splits are
    `forget_split` / `retain_split` (e.g. forget01 / retain99); MUSE uses `corpus` ("News" or
    "Books") with the raw forget / retain1 text."""

    benchmark: str = "synthetic"
    source: str = ""
    forget_split: str = "forget10"
    retain_split: str = "retain90"
    corpus: str = "News"
    max_length: int = 512
    num_authors: int = 20
    questions_per_author: int = 5
    forget_percent: int = 10


@dataclass(frozen=True)
class OptimConfig:
    """AdamW (`paged_adamw_32bit` without the paging), HF's linear schedule with warmup or
    constant, gradient clipping at `max_grad_norm` (HF Trainer's default 1.0).
    `warmup`: "tofu" = int(|forget|) // (bs * GA * devices) steps (`warmup_epochs: 1`), "none",
    or a number of steps written as a string (e.g. "10")."""

    lr: float = 1e-5
    epochs: int = 10
    micro_batch_size: int = 8
    grad_accum: int = 2
    weight_decay: float = 0.01
    schedule: str = "linear"
    warmup: str = "tofu"
    max_grad_norm: float = 1.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8


@dataclass(frozen=True)
class FinetuneConfig:
    """Demo only: before unlearning, fine-tune the tiny model on the full synthetic set (the
    "target") and on the retain split (the "retain model" whose forget truth ratios give the
    forget-quality reference), like TOFU's full and retain checkpoints."""

    enabled: bool = False
    epochs: int = 30
    lr: float = 3e-3
    batch_size: int = 16
    warmup_steps: int = 10


@dataclass(frozen=True)
class EvalConfig:
    enabled: bool = True
    retain_logs_path: str = ""
    retrain_auc: float = -1.0
    batch_size: int = 32
    length: int = 512
    prompt_length: int = 256
    max_new_tokens: int = 200
    use_stemmer: bool = True
    with_rouge: bool = True


@dataclass(frozen=True)
class BalDROConfig:
    name: str = "baldro"
    method: str = "baldro"
    seed: int = 0
    variants: tuple[str, ...] = ("plain",)
    mesh: dict = field(default_factory=lambda: {"data": -1, "fsdp": 1, "tensor": 1})
    checkpoint_every: int = 0
    keep_checkpoints: int = 1
    log_every: int = 10
    progress: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    unlearn: dict = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def objective(self, variant: str) -> ObjectiveConfig:
        """The method arguments of one variant (`config.unlearn` with `variant` set)."""
        try:
            base = to_dataclass(ObjectiveConfig, self.unlearn, "config.unlearn")
            if variant == "dv_softmax":  # the paper text's "+" form, next to the code's "-"
                return replace(base, variant="dv", dv_sign=1)
            return replace(base, variant=variant)
        except ValueError as e:
            raise ConfigError(str(e)) from e


def from_config_dict(config: Any) -> BalDROConfig:
    cfg = to_dataclass(BalDROConfig, config)
    check_choice(cfg.data.benchmark, ("synthetic", "tofu", "muse"), "config.data.benchmark")
    check_choice(cfg.optim.schedule, ("linear", "constant"), "config.optim.schedule")
    check_choice(cfg.model.remat, ("none", "full", "dots_saveable"), "config.model.remat")
    if not cfg.variants:
        raise ConfigError(f"config.variants: give at least one of {VARIANT_CHOICES}")
    for v in cfg.variants:
        check_choice(v, VARIANT_CHOICES, "config.variants")
        cfg.objective(v)  # validates config.unlearn for every variant
    if cfg.optim.warmup not in ("tofu", "none") and not cfg.optim.warmup.isdigit():
        raise ConfigError(
            f"config.optim.warmup: expected 'tofu', 'none' or a step count, got {cfg.optim.warmup!r}"
        )
    if cfg.data.benchmark == "synthetic" and cfg.model.source != "tiny":
        raise ConfigError("config.data.benchmark='synthetic' needs config.model.source='tiny'")
    if cfg.finetune.enabled and cfg.data.benchmark != "synthetic":
        raise ConfigError("config.finetune.enabled is for the synthetic demo only")
    return cfg
