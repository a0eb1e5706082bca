"""Typed BalDRO configuration; the CLI's ConfigDict is converted here (errors name the field)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from jaxmethods.methods.baldro.objective import ObjectiveConfig
from jaxmethods.models.backbone import BackboneConfig
from jaxmethods.train.config import ConfigError, check_choice, non_negative, to_dataclass
from jaxmethods.train.optim import OptimConfig
from jaxmethods.train.trainer import LoopConfig

# "dv_softmax" runs BalDRO-DV with the paper text's soft-max sign (dv_sign = +1).
VARIANT_CHOICES = ("plain", "group", "dv", "dv_softmax")
BENCHMARKS = ("synthetic", "tofu", "muse")


@dataclass(frozen=True)
class DataConfig:
    """`benchmark`: "synthetic" (fictitious authors generated in the run), "tofu" or "muse".
    `source`: hub id or local folder (default: the benchmark's hub id). For TOFU the splits are
    `forget_split` / `retain_split` (e.g. forget01 / retain99); MUSE uses `corpus` ("News" or
    "Books") with the raw forget / retain1 text. `max_length`: tokens of a QA sequence (TOFU,
    BOS included) or of a MUSE text chunk after its BOS (MUSE rows hold BOS + `max_length`)."""

    benchmark: str = "synthetic"
    source: str = ""
    forget_split: str = "forget10"
    retain_split: str = "retain90"
    corpus: str = "News"
    max_length: int = 512
    num_authors: int = 20
    questions_per_author: int = 5
    forget_percent: int = 10

    @property
    def sequence_length(self) -> int:
        """The padded length of a training row."""
        return self.max_length + 1 if self.benchmark == "muse" else self.max_length

    @property
    def split_name(self) -> str:
        """The prefix of the summary's metric names (`forget01`, `news`, ...)."""
        return self.corpus.lower() if self.benchmark == "muse" else self.forget_split


@dataclass(frozen=True)
class TrainConfig:
    """The epoch arithmetic of an unlearning run (HF Trainer's, transformers 4.45).

    micro_batch_size: pairs per micro-batch, i.e. the authors' per-device batch x GPUs.
    epochs: `num_train_epochs`; steps = `hf_max_steps(batches_per_epoch, grad_accum, epochs)`.
    warmup_epochs: TOFU's custom rule, warmup = int(warmup_epochs * |forget|) //
      (micro_batch_size * grad_accum); 0 = `optim.warmup_steps` / `optim.warmup_ratio`.
    """

    micro_batch_size: int = 8
    epochs: float = 10.0
    warmup_epochs: float = non_negative(1.0)


@dataclass(frozen=True)
class FinetuneConfig:
    """Demo only: before unlearning, fine-tune the tiny model on the full synthetic set (the
    "target") and on the retain split (the "retain model" whose forget truth ratios give the
    forget-quality reference), like TOFU's full and retain checkpoints."""

    enabled: bool = False
    epochs: float = 30.0
    lr: float = 3e-3
    batch_size: int = 16
    warmup_steps: int = 10


@dataclass(frozen=True)
class EvalConfig:
    """every_epoch: evaluate at each epoch end (the authors' `eval_strategy=epoch`); at_start:
    also at step 0 (the authors' TOFU NPO scripts); plot: draw the curves into the workdir;
    gibberish_classifier: see `jaxmethods.eval.gibberish`."""

    enabled: bool = True
    every_epoch: bool = True
    at_start: bool = True
    plot: bool = True
    retain_logs_path: str = ""
    retrain_auc: float = -1.0
    batch_size: int = 32
    length: int = 512
    prompt_length: int = 256
    max_new_tokens: int = 200
    use_stemmer: bool = True
    with_rouge: bool = True
    # TOFU forget_Q_A_gibberish (in the authors' configs/eval/tofu.yaml): an HF text classifier
    # (hub id or folder) scoring the forget-set generations; "" skips it, and absent weights skip
    # it with one log line.
    gibberish_classifier: str = ""


def _tiny_backbone() -> BackboneConfig:
    return BackboneConfig(vocab_size=384, dtype="float32", scan_layers=True)


@dataclass(frozen=True)
class BalDROConfig:
    """One BalDRO run: every loss variant of `variants` unlearns the same starting weights.

    unlearn: the method arguments (`ObjectiveConfig`); `unlearn.variant` is replaced by each
    entry of `variants`. optim: AdamW, HF schedule, clipping and `grad_accum` (shared
    `OptimConfig`). loop: checkpoints (on by default), logging, progress (`LoopConfig`).
    """

    name: str = "baldro"
    method: str = "baldro"
    seed: int = 0
    variants: tuple[str, ...] = ("plain",)
    mesh: dict = field(default_factory=lambda: {"data": -1, "fsdp": 1, "tensor": 1})
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(checkpoint_every=50))
    model: BackboneConfig = field(default_factory=_tiny_backbone)
    data: DataConfig = field(default_factory=DataConfig)
    unlearn: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-5, weight_decay=0.01, grad_accum=2)
    )
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def objective(self, variant: str) -> ObjectiveConfig:
        """The method arguments of one entry of `variants`."""
        try:
            if variant == "dv_softmax":  # the paper text's "+" form, next to the code's "-"
                return replace(self.unlearn, variant="dv", dv_sign=1)
            return replace(self.unlearn, variant=variant)
        except ValueError as e:
            raise ConfigError(str(e)) from e

    def phase_name(self, variant: str) -> str:
        """`{loss}_{variant}`: the variant's folder and its summary prefix."""
        return f"{self.unlearn.loss}_{variant}"


def from_config_dict(config: Any) -> BalDROConfig:
    try:
        cfg = to_dataclass(BalDROConfig, config)
    except ConfigError:
        raise
    except ValueError as e:  # a dataclass's own check (e.g. unlearn.loss), naming its field
        raise ConfigError(str(e)) from e
    check_choice(cfg.data.benchmark, BENCHMARKS, "config.data.benchmark")
    if not cfg.variants:
        raise ConfigError(f"config.variants: give at least one of {VARIANT_CHOICES}")
    for v in cfg.variants:
        check_choice(v, VARIANT_CHOICES, "config.variants")
        cfg.objective(v)
    if cfg.data.benchmark == "synthetic" and not cfg.model.is_tiny:
        raise ConfigError("config.data.benchmark='synthetic' needs config.model.source='tiny'")
    if cfg.finetune.enabled and cfg.data.benchmark != "synthetic":
        raise ConfigError("config.finetune.enabled is for the synthetic demo only")
    return cfg
