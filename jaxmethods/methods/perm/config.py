"""Typed configuration of PERM (the CLI's ConfigDict is converted here).

Defaults are the authors' `perm/grpo_train.sh` (see configs/perm.py:perm_qwen7b): GRPO with 8
generations per prompt, 8 prompts (64 completions) per optimizer step, lr 1e-6 with 10% warmup,
β 0.01, harmonic empathy + length penalty (768, 0.001) + bystander term (0.5), gpt-4o-mini judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jaxmethods.methods.perm.judges import JudgeConfig
from jaxmethods.methods.perm.rewards import RewardConfig
from jaxmethods.methods.perm.user_weights_config import UserWeightsConfig
from jaxmethods.models.backbone import BackboneConfig
from jaxmethods.train.config import ConfigError, non_negative, positive, to_dataclass
from jaxmethods.train.grpo import GRPOConfig
from jaxmethods.train.optim import OptimConfig
from jaxmethods.train.trainer import LoopConfig


@dataclass(frozen=True)
class DataConfig:
    """source "jsonl": `train_file` in PERM's format (`prompts.read_records`), of which
    `num_train_samples` random records are used (0 = all); "synthetic": `num_synthetic`
    persona/scenario/query records generated in the run. `user_key`: the JSONL field holding an
    integer user id (perm_mrm; synthetic records get ids 0..U-1 round-robin)."""

    source: str = "jsonl"
    train_file: str = ""
    num_train_samples: int = non_negative(3000)
    user_key: str = ""
    num_synthetic: int = positive(64)


@dataclass(frozen=True)
class WarmStartConfig:
    """Supervised warm start of a tiny policy on synthetic formatted completions of mixed
    quality before GRPO (what an instruct checkpoint brings; `steps` 0 = none)."""

    steps: int = non_negative(0)
    batch_size: int = positive(16)
    lr: float = positive(3e-3)
    max_length: int = positive(256)


@dataclass(frozen=True)
class ServerJudgeConfig:
    """The demo's pass through the real OpenAI-compatible server (`jaxmethods.serve` under
    uvicorn in a thread): a tiny judge LM is fine-tuned for `sft_steps` on the rule judge's
    replies, served, and scores `num_completions` rollouts through the judge layer; reported:
    its parse rate and agreement with the rule judge."""

    enabled: bool = False
    sft_steps: int = non_negative(150)
    sft_examples: int = positive(256)
    batch_size: int = positive(16)
    lr: float = positive(5e-3)
    vocab_size: int = positive(1024)
    num_completions: int = positive(16)
    max_tokens: int = positive(12)


@dataclass(frozen=True)
class EQBenchConfig:
    """The EQ-Bench-3-style evaluation after training (`eqbench.py`): scenario JSON files
    (empty = skip), the policy's answer length, the judge's sampling (the run's judge)."""

    scenario_files: tuple[str, ...] = ()
    max_new_tokens: int = positive(256)
    judge_max_tokens: int = positive(1024)


@dataclass(frozen=True)
class PERMConfig:
    method: str = "perm"
    name: str = "perm"
    seed: int = 42
    mesh: dict = field(default_factory=lambda: {"data": -1, "fsdp": 1, "tensor": 1})
    epochs: float = positive(1.0)
    num_steps: int = non_negative(0)  # 0 = epochs x prompts / grpo.prompts_per_step
    plot: bool = True
    # perm_mrm: GRPO composes with each prompt's user weights (False: the weights are only
    # meta-learned and evaluated, GRPO keeps config.reward's composition)
    compose_with_user_weights: bool = True
    model: BackboneConfig = field(
        default_factory=lambda: BackboneConfig(source="Qwen/Qwen2.5-7B-Instruct", remat="full")
    )
    data: DataConfig = field(default_factory=DataConfig)
    grpo: GRPOConfig = field(default_factory=lambda: GRPOConfig(micro_batch_size=16))
    reward: RewardConfig = field(default_factory=RewardConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-6, warmup_ratio=0.1))
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(checkpoint_every=200))
    user_weights: UserWeightsConfig = field(default_factory=UserWeightsConfig)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    server_judge: ServerJudgeConfig = field(default_factory=ServerJudgeConfig)
    eqbench: EQBenchConfig = field(default_factory=EQBenchConfig)


def from_config_dict(config: Any) -> PERMConfig:
    cfg = to_dataclass(PERMConfig, config)
    if cfg.data.source not in ("synthetic", "jsonl"):
        raise ConfigError(f"config.data.source: {cfg.data.source!r} is not synthetic or jsonl")
    if cfg.data.source == "jsonl" and not cfg.data.train_file:
        raise ConfigError("config.data.train_file: required when config.data.source = 'jsonl'")
    if cfg.user_weights.enabled:
        absent = [p for p in cfg.user_weights.perspectives if p not in cfg.reward.kinds]
        if absent:
            raise ConfigError(
                f"config.user_weights.perspectives: {absent} are not judged (config.reward."
                f"use_standby={cfg.reward.use_standby})"
            )
        if cfg.data.source == "jsonl" and not cfg.data.user_key:
            raise ConfigError(
                "config.data.user_key: required with config.user_weights.enabled and JSONL data "
                "(the field of each record holding its user's row in the weight table)"
            )
    if cfg.warm_start.steps and not cfg.model.is_tiny:
        raise ConfigError("config.warm_start.steps: only for the tiny policy (source 'tiny')")
    return cfg
