"""Typed IGD configuration (the CLI ConfigDict is converted here; errors name the field)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jaxmethods.models.backbone import BackboneConfig, TinyDecoderSize, tiny_decoder_size
from jaxmethods.train.config import ConfigError, check_choice, to_dataclass

DATA_SOURCES = ("synthetic", "csv", "raw")
MODEL_SOURCES = ("tiny", "pretrained")
WEIGHTINGS = ("igd", "pos", "none")


@dataclass(frozen=True)
class DataConfig:
    """Where examples come from.

    source:
      "synthetic": `jaxmethods.data.synthetic_catalog` raw records, run through the Amazon 2018
        pipeline in memory (demo / CI);
      "csv": the authors' ready-made CSVs (`train_file`, `valid_file`, `test_file`) plus
        `item_frequency_file` (JSON title -> freq) or `info_file` (frequencies then come from
        the train CSV);
      "raw": `raw_dir/{category}_5.json[.gz]` + `meta_{category}.json[.gz]`, processed into
        `<workdir>/data/` first.
    """

    source: str = "synthetic"
    category: str = "Video_Games"
    train_file: str = ""
    valid_file: str = ""
    test_file: str = ""
    info_file: str = ""
    item_frequency_file: str = ""
    raw_dir: str = ""
    total_frequency: float = 0.0  # the paper's hard-coded F (checked); 0 = sum of frequencies
    cutoff_len: int = 512
    min_items: int = 10000  # raw: move the window back until the 5-core has this many items
    history_len: int = 10
    max_train: int = -1  # subsample (the authors' `sample`); -1 = all
    max_valid: int = -1
    max_test: int = -1
    seed: int = 0
    # synthetic catalog
    num_franchises: int = 8
    items_per_franchise: int = 12
    num_users: int = 400
    events_per_user: tuple[int, ...] = (6, 14)
    loyalty: float = 0.85
    zipf_a: float = 1.1


@dataclass(frozen=True)
class ModelConfig(TinyDecoderSize):
    """source "pretrained": HF safetensors at `path` (hub id or folder) with its tokenizer;
    "tiny": a random `DecoderConfig.tiny` decoder sized by the `TinyDecoderSize` fields and a
    BPE tokenizer trained on the corpus."""

    source: str = "tiny"
    path: str = "Qwen/Qwen2.5-1.5B"
    dtype: str = ""  # compute dtype; "" = float32 on CPU, bfloat16 on accelerators
    param_dtype: str = "float32"  # fp32 master weights
    scan_layers: bool = False
    remat: bool = False
    lora_rank: int = 0  # 0 = full fine-tuning (the 1.5B default); 32 for 7B/8B/13B
    lora_alpha: float = 64.0
    lora_dropout: float = 0.05
    lora_targets: str = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"

    def backbone(self, max_position_embeddings: int = 512) -> BackboneConfig:
        """The backbone; `max_position_embeddings` sizes the tiny decoder."""
        return BackboneConfig(
            source="hf" if self.source == "pretrained" else "tiny",
            path=self.path,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            scan_layers=self.scan_layers,
            remat=self.remat,
            max_position_embeddings=max_position_embeddings,
            **tiny_decoder_size(self),
        )


@dataclass(frozen=True)
class TuningConfig:
    """IGD-Tuning and its baselines on one loss interface.

    weighting "igd": w = beta where IG == 0 else 1 (beta = 1 is BIGRec/D3 SFT);
    "pos": position decay to beta; "none": plain CE. cft_alpha > 0 adds the CFT counterfactual
    term (with "pos" weights that is the paper's CFT baseline). One model is trained per entry
    of `betas`.
    """

    weighting: str = "igd"
    betas: tuple[float, ...] = (0.1,)
    cft_alpha: float = 0.0
    lr: float = 1e-4
    warmup_steps: int = 20
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # HF Trainer default
    epochs: int = 3
    micro_batch_size: int = 16
    grad_accum_steps: int = 8
    eval_batch_size: int = 16
    patience: int = 1  # early stopping on the weighted validation loss
    logprob_chunk: int = 256  # vocabulary chunking of the log-softmax (positions per chunk)


@dataclass(frozen=True)
class DecodeConfig:
    alphas: tuple[float, ...] = (0.0, 0.2)
    num_beams: int = 10
    num_return_sequences: int = 10
    max_new_tokens: int = 72
    length_penalty: float = 0.0  # 0: D3-style, 1: BIGRec-style
    batch_size: int = 16
    ks: tuple[int, ...] = (1, 3, 5, 10, 20)


@dataclass(frozen=True)
class IGDConfig:
    method: str = "igd"
    name: str = "igd"
    seed: int = 0
    mesh: dict = field(default_factory=lambda: {"data": -1, "fsdp": 1, "tensor": 1})
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    log_every: int = 10
    keep_checkpoints: int = 4
    progress: bool = True


def from_config_dict(config: Any) -> IGDConfig:
    cfg = to_dataclass(IGDConfig, config)
    check_choice(cfg.data.source, DATA_SOURCES, "config.data.source")
    check_choice(cfg.model.source, MODEL_SOURCES, "config.model.source")
    check_choice(cfg.tuning.weighting, WEIGHTINGS, "config.tuning.weighting")
    if not cfg.tuning.betas:
        raise ConfigError("config.tuning.betas: give at least one beta")
    if cfg.decode.num_return_sequences > cfg.decode.num_beams:
        raise ConfigError("config.decode.num_return_sequences: must be <= config.decode.num_beams")
    if cfg.data.source == "csv":
        for name in ("train_file", "valid_file", "test_file"):
            if not getattr(cfg.data, name):
                raise ConfigError(f"config.data.{name}: required when config.data.source='csv'")
        if not (cfg.data.item_frequency_file or cfg.data.info_file):
            raise ConfigError(
                "config.data.item_frequency_file: give it (or config.data.info_file) for 'csv'"
            )
    if cfg.data.source == "raw" and not cfg.data.raw_dir:
        raise ConfigError("config.data.raw_dir: required when config.data.source='raw'")
    if cfg.tuning.micro_batch_size < 1 or cfg.tuning.grad_accum_steps < 1:
        raise ConfigError("config.tuning.micro_batch_size / grad_accum_steps: must be >= 1")
    return cfg
