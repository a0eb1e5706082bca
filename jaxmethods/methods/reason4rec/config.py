"""Typed configuration of Reason4Rec (the CLI's ConfigDict is converted here).

Each expert is one named LoRA adapter of one frozen base (`jaxmethods.models.multi_lora`) with
its own recipe (`ExpertConfig`); the defaults are the authors' Music scripts
(`1_Summarizer/3`, `2_Reasoner/3`, `2_Reasoner/6`, `3_Predictor/2`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jaxmethods.llm.config import LLMConfig
from jaxmethods.methods.reason4rec.synthetic import SyntheticConfig
from jaxmethods.models.backbone import BackboneConfig
from jaxmethods.train.config import ConfigError, non_negative, to_dataclass
from jaxmethods.train.trainer import LoopConfig

EXPERTS = ("summarizer", "reward", "reasoner", "predictor", "direct")


@dataclass(frozen=True)
class ExpertConfig:
    """One adapter's SFT recipe (response-only loss). `warmup_steps` wins over `warmup_ratio`
    when > 0 (HF TrainingArguments)."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    head_trainable: bool = False
    lr: float = 3e-4
    epochs: float = 3.0
    batch_size: int = 16
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0


def _summarizer() -> ExpertConfig:
    return ExpertConfig(rank=16, alpha=32.0, lr=3e-4, epochs=5.0, batch_size=16, warmup_steps=100)


def _reward() -> ExpertConfig:
    return ExpertConfig(rank=8, alpha=16.0, head_trainable=True, lr=3e-6, epochs=3.0,
                        batch_size=16, warmup_ratio=0.1)  # fmt: skip


def _reasoner() -> ExpertConfig:
    return ExpertConfig(rank=16, alpha=32.0, dropout=0.1, lr=3e-4, epochs=3.0, batch_size=32,
                        warmup_steps=100)  # fmt: skip


def _predictor() -> ExpertConfig:
    return ExpertConfig(rank=8, alpha=16.0, head_trainable=True, lr=3e-5, epochs=3.0,
                        batch_size=16, warmup_ratio=0.1)  # fmt: skip


@dataclass(frozen=True)
class DataConfig:
    """source "synthetic" (the demo world) or "parquet" (the authors' tables converted by
    `convert.py`): `train_file`, `test_file`, and optionally `teacher_summaries_file` (the GPT
    summaries, column `review_summary`: trains the Summarizer), `student_summaries_file`
    (`train_summarizer_generation_results`: skips Summarizer inference), `reasons_file`
    (`distilling_high_quality_reasons`: skips distillation; its targets are matched on
    user_id, item_id and unixReviewTime)."""

    source: str = "synthetic"
    product_class: str = "Digital Music"
    train_file: str = ""
    test_file: str = ""
    teacher_summaries_file: str = ""
    student_summaries_file: str = ""
    reasons_file: str = ""
    max_history: int = 10
    max_item_history: int = -1  # item history lines; -1 = max_history (the authors: 10 each)
    num_samples: int = 20000  # train targets sampled (random_state seed), as the authors
    reward_samples: int = 8000  # of which the reward model's; the rest the Reasoner's
    max_test: int = -1  # -1 = every test row
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass(frozen=True)
class DistillConfig:
    """The reason distillation (`2_Reasoner/4`): tau, hinted retries, teacher settings."""

    tau: float = 0.1
    max_retries: int = 10
    temperature: float = 1.0
    max_tokens: int = 1024
    chunk_size: int = 64  # targets per teacher round (one `complete` call, one RM batch)
    teacher: str = "rule"  # "rule" (synthetic only) or "llm" (the `llm` section)


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens_summary: int = 1024
    max_new_tokens_reason: int = 1024
    batch_size: int = 16
    length_multiple: int = 64  # prompt lengths are padded to a multiple (few compilations)


@dataclass(frozen=True)
class Reason4RecConfig:
    method: str = "reason4rec"
    name: str = "reason4rec"
    seed: int = 0
    mesh: dict = field(default_factory=lambda: {"data": -1, "fsdp": 1, "tensor": 1})
    prompts: str = "authors"  # or "compact" (the tiny demo decoder)
    max_length: int = 4096
    # tiny base only: full-weight LM pre-training in the run (0 = none)
    pretrain_epochs: float = non_negative(0.0)
    pretrain_lr: float = 3e-3
    target_modules: str = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
    model: BackboneConfig = field(default_factory=BackboneConfig)
    summarizer: ExpertConfig = field(default_factory=_summarizer)
    reward: ExpertConfig = field(default_factory=_reward)
    reasoner: ExpertConfig = field(default_factory=_reasoner)
    predictor: ExpertConfig = field(default_factory=_predictor)
    direct: ExpertConfig = field(default_factory=_predictor)  # the no-reasoning baseline
    data: DataConfig = field(default_factory=DataConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    llm: LLMConfig = field(default_factory=lambda: LLMConfig(model="gpt-3.5-turbo"))
    loop: LoopConfig = field(default_factory=LoopConfig)


def from_config_dict(config: Any) -> Reason4RecConfig:
    cfg = to_dataclass(Reason4RecConfig, config)
    d = cfg.data
    if d.source not in ("synthetic", "parquet"):
        raise ConfigError(f"config.data.source: {d.source!r} is not 'synthetic' or 'parquet'")
    if d.source == "parquet":
        for f in ("train_file", "test_file"):
            if not getattr(d, f):
                raise ConfigError(f"config.data.{f}: required when config.data.source='parquet'")
        if not (d.teacher_summaries_file or d.student_summaries_file):
            raise ConfigError(
                "config.data.teacher_summaries_file or config.data.student_summaries_file: one is "
                "required (the Summarizer's training labels or its released outputs)"
            )
        if cfg.distill.teacher == "rule" and not d.reasons_file:
            raise ConfigError(
                "config.distill.teacher='rule' works on synthetic data only: set "
                "config.distill.teacher='llm' (and config.llm) or config.data.reasons_file"
            )
    if cfg.prompts not in ("authors", "compact"):
        raise ConfigError(f"config.prompts: {cfg.prompts!r} is not 'authors' or 'compact'")
    if not 0 < d.reward_samples < d.num_samples:
        raise ConfigError(
            f"config.data.reward_samples={d.reward_samples} must be in (0, num_samples="
            f"{d.num_samples})"
        )
    if cfg.model.lora.rank:
        raise ConfigError("config.model.lora.rank: leave 0; each expert has its own rank")
    return cfg
