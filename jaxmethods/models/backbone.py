"""The decoder backbone of a method run: a random tiny decoder (demos, CI) or an HF checkpoint.

Methods convert their user-facing model config into one `BackboneConfig` and call
`build_backbone`, so the tiny and pretrained paths (dtype defaults, remat spelling, token ids)
are the same everywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import jax
from flax import nnx

from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.decoder_config import REMAT_POLICIES, DecoderConfig
from jaxmethods.models.lora import LoRAParam, apply_lora


@dataclass(frozen=True)
class TinyDecoderSize:
    """Shape of the random `DecoderConfig.tiny` decoder of source "tiny". Its vocabulary is the
    tokenizer's (`len(tokenizer)`); `vocab_size` is the size the tiny BPE tokenizer is trained to."""

    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 16


def tiny_decoder_size(cfg: TinyDecoderSize) -> dict[str, int]:
    """The `TinyDecoderSize` fields of `cfg` (any subclass) as keyword arguments."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(TinyDecoderSize)}


@dataclass(frozen=True)
class LoRAConfig:
    """LoRA adapters on the backbone's projections; `rank` 0 = none (full fine-tuning).
    `targets` is a regex `re.search`ed against module paths (PEFT's `target_modules`)."""

    rank: int = 0
    alpha: float = 16.0
    dropout: float = 0.0
    targets: str = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


@dataclass(frozen=True)
class BackboneConfig(TinyDecoderSize):
    """The LLM of every method that has one.

    source: "tiny" (a random decoder sized by the `TinyDecoderSize` fields, with a BPE tokenizer
      trained on the run's corpus), or a hub id (`Qwen/Qwen2.5-1.5B`), or a local folder of HF
      safetensors; loaded by `jaxmethods.hf.load_pretrained`, torch-free.
    tokenizer: hub id or folder of the tokenizer when it differs from `source` ("" = source's).
    dtype: compute dtype; "" = float32 for "tiny", `load_pretrained`'s default (float32 on CPU,
      bfloat16 on accelerators) otherwise. param_dtype: storage dtype (float32 = fp32 masters).
    remat: "none", "full" or a checkpoint policy (`REMAT_POLICIES`).
    scan_layers: `lax.scan` over the layers (one compiled layer).
    attention_impl: "xla", "cudnn" or "einsum" (`DecoderConfig.attention_impl`).
    max_position_embeddings: of the tiny decoder (a checkpoint keeps its own).
    logits_chunk_size: positions per chunk of the LM-head log-softmax (0 = unchunked).
    check_finite: refuse checkpoints with NaN/Inf weights (names the tensor).
    lora: adapters (`LoRAConfig`); with rank > 0 only they are trained.
    """

    source: str = "tiny"
    tokenizer: str = ""
    dtype: str = ""
    param_dtype: str = "float32"
    remat: str = "none"
    scan_layers: bool = False
    attention_impl: str = "xla"
    max_position_embeddings: int = 512
    logits_chunk_size: int = 0
    check_finite: bool = True
    lora: LoRAConfig = field(default_factory=LoRAConfig)

    def __post_init__(self):
        if not self.source:
            raise ValueError("backbone.source: give 'tiny', a hub id or a local folder")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"backbone.remat: {self.remat!r} is not one of {REMAT_POLICIES}")
        if self.lora.rank < 0:
            raise ValueError(f"backbone.lora.rank: must be >= 0, got {self.lora.rank}")

    @property
    def is_tiny(self) -> bool:
        return self.source == "tiny"

    @property
    def tokenizer_path(self) -> str:
        return self.tokenizer or self.source

    @property
    def decoder_remat(self) -> bool | str:
        """`remat` as `DecoderConfig` stores it ("none" -> False)."""
        return False if self.remat == "none" else self.remat


def build_backbone(
    cfg: BackboneConfig,
    tokenizer: Any,
    *,
    mesh: jax.sharding.Mesh | None = None,
    seed: int = 0,
    **overrides: Any,
) -> DecoderLM:
    """Builds the `DecoderLM` that `cfg` describes, with LoRA adapters when `cfg.lora.rank` > 0.

    Args:
      cfg: the backbone description.
      tokenizer: the run's tokenizer; "tiny" takes its vocabulary size and bos/eos/pad ids.
      mesh: a checkpoint's weights are placed (and sharded) on it; a tiny model is built unplaced.
      seed: init seed of the tiny decoder (and `seed + 1` of the LoRA factors).
      **overrides: further `DecoderConfig` fields for either source.
    """
    overrides = {"attention_impl": cfg.attention_impl, **overrides}
    if not cfg.is_tiny:
        from jaxmethods.hf import load_pretrained

        model = load_pretrained(
            cfg.source,
            cfg.dtype or None,
            param_dtype=cfg.param_dtype,
            mesh=mesh,
            scan_layers=cfg.scan_layers,
            remat=cfg.decoder_remat,
            check_finite=cfg.check_finite,
            **overrides,
        )
    else:
        size = tiny_decoder_size(cfg)
        del size["vocab_size"]  # the decoder's vocabulary is the tokenizer's
        dcfg = DecoderConfig.tiny(
            vocab_size=len(tokenizer),
            **size,
            dtype=cfg.dtype or "float32",
            param_dtype=cfg.param_dtype,
            scan_layers=cfg.scan_layers,
            remat=cfg.decoder_remat,
            max_position_embeddings=cfg.max_position_embeddings,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **overrides,
        )
        model = DecoderLM(dcfg, rngs=nnx.Rngs(seed))
    lora = cfg.lora
    if lora.rank > 0:
        apply_lora(
            model, rank=lora.rank, alpha=lora.alpha, dropout=lora.dropout,
            target_modules=lora.targets, rngs=nnx.Rngs(seed + 1),
        )  # fmt: skip
    return model


def trainable_filter(cfg: BackboneConfig) -> type[nnx.Variable]:
    """The Variable type trained for `cfg`: the LoRA factors when it has adapters, else every
    `nnx.Param` (full fine-tuning)."""
    return LoRAParam if cfg.lora.rank > 0 else nnx.Param


def split_trainable(model: nnx.Module, cfg: BackboneConfig) -> tuple[nnx.GraphDef, Any, Any]:
    """`(graphdef, trainable, rest)`: the trainable subset by Variable type, the rest frozen."""
    return nnx.split(model, trainable_filter(cfg), ...)
