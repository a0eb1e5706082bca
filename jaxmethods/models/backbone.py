"""The decoder backbone of a method run: a random tiny decoder (demos, CI) or an HF checkpoint.

Methods convert their user-facing model config into one `BackboneConfig` and call
`build_backbone`, so the tiny and pretrained paths (dtype defaults, remat spelling, token ids)
are the same everywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import jax
from flax import nnx

from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.decoder_config import REMAT_POLICIES, DecoderConfig

BACKBONE_SOURCES = ("tiny", "hf")


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
class BackboneConfig(TinyDecoderSize):
    """source: "tiny" (a random decoder sized by the `TinyDecoderSize` fields) or "hf" (the
    checkpoint at `path`, a local folder or hub id, via `jaxmethods.hf.load_pretrained`).
    dtype: compute dtype; "" = float32 for "tiny", `load_pretrained`'s default (float32 on CPU,
    bfloat16 on accelerators) for "hf". param_dtype: storage dtype (float32 = fp32 masters).
    remat: False/"none", True/"full" or a checkpoint policy name (`DecoderConfig.remat`).
    max_position_embeddings: of the tiny decoder (an HF checkpoint keeps its own)."""

    source: str = "tiny"
    path: str = ""
    dtype: str = ""
    param_dtype: str = "float32"
    scan_layers: bool = False
    remat: bool | str = False
    max_position_embeddings: int = 512

    def __post_init__(self):
        if self.source not in BACKBONE_SOURCES:
            raise ValueError(
                f"BackboneConfig.source: {self.source!r} is not one of {BACKBONE_SOURCES}"
            )
        if self.source == "hf" and not self.path:
            raise ValueError("BackboneConfig.path: required when source='hf'")
        if not isinstance(self.remat, bool) and self.remat not in REMAT_POLICIES:
            raise ValueError(
                f"BackboneConfig.remat: {self.remat!r} is not a bool or one of {REMAT_POLICIES}"
            )

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
    """Builds the `DecoderLM` that `cfg` describes.

    Args:
      cfg: the backbone description.
      tokenizer: the run's tokenizer; "tiny" takes its vocabulary size and bos/eos/pad ids.
      mesh: "hf" places (and shards) the loaded weights on it; a tiny model is built unplaced.
      seed: init seed of the tiny decoder.
      **overrides: further `DecoderConfig` fields (e.g. attention_impl) for either source.
    """
    if cfg.source == "hf":
        from jaxmethods.hf import load_pretrained

        return load_pretrained(
            cfg.path,
            cfg.dtype or None,
            param_dtype=cfg.param_dtype,
            mesh=mesh,
            scan_layers=cfg.scan_layers,
            remat=cfg.decoder_remat,
            **overrides,
        )
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
    return DecoderLM(dcfg, rngs=nnx.Rngs(seed))
