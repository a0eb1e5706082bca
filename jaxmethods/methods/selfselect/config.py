"""Typed configuration of Self-Selection RAG / Self-Selection-RGP (the CLI ConfigDict is
converted here; errors name the field)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jaxmethods.llm.config import LLMConfig
from jaxmethods.methods.selfselect.prompts import PromptConfig
from jaxmethods.methods.selfselect.rgp import RGPConfig
from jaxmethods.methods.selfselect.synthetic import WorldConfig
from jaxmethods.models.backbone import BackboneConfig
from jaxmethods.train.config import ConfigError, check_choice, non_negative, to_dataclass
from jaxmethods.train.optim import OptimConfig
from jaxmethods.train.trainer import LoopConfig

SOURCES = ("synthetic", "nq", "tqa")
RETRIEVERS = ("bm25", "dense", "cached")
BACKENDS = ("local", "client")


@dataclass(frozen=True)
class DataConfig:
    """Questions. source "synthetic": the demo world (`world`), whose base model is pre-trained
    in the run (`pretrain_*`); "nq" / "tqa": NQ-open / TriviaQA-unfiltered from `train` / `test`
    (an HF dataset id, "" = the default id, or an original file: `jaxmethods.data.open_qa`).
    `max_train` / `max_test` keep the first n questions (-1 = all)."""

    source: str = "synthetic"
    train: str = ""
    test: str = ""
    train_split: str = "train"
    test_split: str = "validation"
    max_train: int = -1
    max_test: int = -1
    world: WorldConfig = field(default_factory=WorldConfig)
    pretrain_epochs: float = 5.0
    pretrain_lr: float = 3e-3
    pretrain_batch_size: int = 32


@dataclass(frozen=True)
class RetrievalConfig:
    """kind "bm25" (bm25s over `corpus`, or the saved index folder `index`), "dense"
    (`encoder` over `corpus`, or a saved `DenseIndex` folder `index`), or "cached" (DPR/FiD
    top-k JSONL files `cached_train` / `cached_test`). `corpus` is a DPR TSV
    (`psgs_w100.tsv[.gz]`) or a BEIR `corpus.jsonl`. The synthetic world brings its corpus."""

    kind: str = "bm25"
    k: int = 5
    corpus: str = ""
    index: str = ""
    cached_train: str = ""
    cached_test: str = ""
    encoder: str = ""
    embed_batch_size: int = 64


@dataclass(frozen=True)
class GenerationConfig:
    """backend "local": jaxmethods' `generate` over the run's model; "client": the LLM client
    (`llm`, an OpenAI-compatible endpoint) for the base model's pipeline and RGP sampling (the
    trained policy is always evaluated locally)."""

    backend: str = "local"
    llm: LLMConfig = field(default_factory=LLMConfig)
    prompt_length: int = 512
    max_new_tokens: int = 32
    batch_size: int = 32


@dataclass(frozen=True)
class DPOConfig:
    """DPO on the RGP pairs. reference: "auto" (= "lora_base" with LoRA adapters, else
    "model": a frozen copy of the initial weights); cache_reference: reference log-probs
    computed once before training (then the reference is never run in the step); nll_weight:
    adds the chosen responses' token NLL (TRL's `rpo_alpha`; 0 = plain DPO); eval_pairs: train
    pairs on which loss, margin and preference accuracy are measured before and after DPO (0 =
    off: the first and last logged steps' batch metrics are reported instead)."""

    beta: float = 0.1
    label_smoothing: float = non_negative(0.0)
    loss_type: str = "sigmoid"
    reference: str = "auto"
    cache_reference: bool = False
    nll_weight: float = non_negative(0.0)
    eval_pairs: int = non_negative(256)
    epochs: float = 3.0
    batch_size: int = 8
    max_length: int = 512


@dataclass(frozen=True)
class SelfSelectConfig:
    method: str = "selfselect"
    name: str = "selfselect"
    seed: int = 0
    mesh: dict = field(default_factory=lambda: {"data": -1, "fsdp": 1, "tensor": 1})
    model: BackboneConfig = field(default_factory=BackboneConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-6, warmup_ratio=0.1))
    loop: LoopConfig = field(default_factory=LoopConfig)
    data: DataConfig = field(default_factory=DataConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    rgp: RGPConfig = field(default_factory=RGPConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    paraphrase_llm: LLMConfig = field(default_factory=LLMConfig)


def from_config_dict(config: Any) -> SelfSelectConfig:
    cfg = to_dataclass(SelfSelectConfig, config)
    check_choice(cfg.data.source, SOURCES, "config.data.source")
    check_choice(cfg.retrieval.kind, RETRIEVERS, "config.retrieval.kind")
    check_choice(cfg.generation.backend, BACKENDS, "config.generation.backend")
    check_choice(cfg.dpo.reference, ("auto", "model", "lora_base"), "config.dpo.reference")
    if cfg.dpo.reference == "lora_base" and cfg.model.lora.rank == 0:
        raise ConfigError(
            "config.dpo.reference: 'lora_base' needs LoRA (config.model.lora.rank > 0)"
        )
    if cfg.rgp.temperature <= 0:
        raise ConfigError(
            f"config.rgp.temperature: must be > 0 to sample, got {cfg.rgp.temperature}"
        )
    if cfg.dpo.beta <= 0:
        raise ConfigError(f"config.dpo.beta: must be > 0, got {cfg.dpo.beta}")
    if cfg.data.source == "synthetic" and not cfg.model.is_tiny:
        raise ConfigError(
            "config.data.source: 'synthetic' pre-trains a tiny model (model.source='tiny')"
        )
    if cfg.data.source == "synthetic" and cfg.retrieval.kind != "bm25":
        raise ConfigError("config.retrieval.kind: the synthetic world is searched with BM25")
    if cfg.data.source != "synthetic":
        r = cfg.retrieval
        if r.kind == "cached" and not (r.cached_train and r.cached_test):
            raise ConfigError(
                "config.retrieval.cached_train / cached_test: required for kind 'cached'"
            )
        if r.kind in ("bm25", "dense") and not (r.corpus or r.index):
            raise ConfigError(f"config.retrieval.corpus: required for kind {r.kind!r} (or .index)")
        if r.kind == "dense" and not r.encoder:
            raise ConfigError("config.retrieval.encoder: required for kind 'dense'")
        if cfg.model.is_tiny:
            raise ConfigError(
                "config.model.source: NQ / TriviaQA need a pretrained LLM, not 'tiny'"
            )
    if cfg.generation.backend == "client" and not cfg.generation.llm.model:
        raise ConfigError("config.generation.llm.model: required for backend 'client'")
    if cfg.rgp.paraphrase and not cfg.paraphrase_llm.model:
        raise ConfigError("config.paraphrase_llm.model: required when config.rgp.paraphrase is on")
    return cfg


def dpo_reference(cfg: SelfSelectConfig) -> str:
    """The DPO reference in use: "cached", "lora_base" or "model"."""
    if cfg.dpo.cache_reference:
        return "cached"
    if cfg.dpo.reference == "auto":
        return "lora_base" if cfg.model.lora.rank > 0 else "model"
    return cfg.dpo.reference
