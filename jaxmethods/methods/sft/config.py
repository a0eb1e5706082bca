"""Typed configuration of supervised fine-tuning (the CLI's ConfigDict is converted here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jaxmethods.models.backbone import BackboneConfig
from jaxmethods.train.config import ConfigError, to_dataclass
from jaxmethods.train.optim import OptimConfig
from jaxmethods.train.trainer import LoopConfig


@dataclass(frozen=True)
class DataConfig:
    """source "synthetic": fictitious-author QA generated in the run (`synthetic_tofu`);
    "jsonl": `train_file` / `valid_file` with one `{prompt_key: ..., response_key: ...}` object a
    line. The prompt is wrapped as `user_start + prompt + user_end + asst_start`, the response
    follows (labels on the response and EOS only)."""

    source: str = "synthetic"
    train_file: str = ""
    valid_file: str = ""
    prompt_key: str = "prompt"
    response_key: str = "response"
    valid_frac: float = 0.1
    max_length: int = 128
    user_start: str = "[INST] "
    user_end: str = " [/INST]"
    asst_start: str = ""
    asst_end: str = " "
    num_authors: int = 20
    questions_per_author: int = 5
    seed: int = 0


@dataclass(frozen=True)
class SFTConfig:
    method: str = "sft"
    name: str = "sft"
    seed: int = 0
    mesh: dict = field(default_factory=lambda: {"data": -1, "fsdp": 1, "tensor": 1})
    epochs: float = 3.0
    batch_size: int = 8  # micro-batch; optim.grad_accum micro-batches make one step
    eval_batch_size: int = 8
    patience: int = 0  # early stopping on valid/loss after this many bad epochs; 0 = off
    model: BackboneConfig = field(default_factory=BackboneConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-5, warmup_ratio=0.03))
    loop: LoopConfig = field(default_factory=LoopConfig)


def from_config_dict(config: Any) -> SFTConfig:
    cfg = to_dataclass(SFTConfig, config)
    if cfg.data.source not in ("synthetic", "jsonl"):
        raise ConfigError(f"config.data.source: {cfg.data.source!r} is not synthetic or jsonl")
    if cfg.data.source == "jsonl" and not cfg.data.train_file:
        raise ConfigError("config.data.train_file: required when config.data.source = 'jsonl'")
    return cfg
