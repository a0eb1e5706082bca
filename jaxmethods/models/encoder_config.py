"""`EncoderConfig`: one post-LN bidirectional encoder for BERT, RoBERTa/XLM-R and DistilBERT.

The three families share the layer (self-attention -> add & LayerNorm -> GELU MLP -> add &
LayerNorm); they differ only in the embeddings and the classification head:

| family      | token types | positions                                   | head activation |
|-------------|-------------|---------------------------------------------|-----------------|
| bert        | yes         | 0..T-1                                      | tanh (pooler)   |
| roberta     | yes (1)     | pad+1.. over non-pad tokens (pads get pad)  | tanh            |
| xlm-roberta | as roberta  | as roberta                                  | tanh            |
| distilbert  | no          | 0..T-1                                      | relu            |

`family_traits(family)` holds these differences; everything else is a plain field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxmethods.models.decoder_config import ModelNumerics, dtype_name

ENCODER_FAMILIES = ("bert", "roberta", "xlm-roberta", "distilbert")
ENCODER_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_tanh", "relu")
ENCODER_ATTENTION_IMPLS = ("xla", "cudnn", "einsum")


@dataclasses.dataclass(frozen=True)
class FamilyTraits:
    """roberta_positions: positions count non-pad tokens from pad_token_id + 1 (HF
    `create_position_ids_from_input_ids`); head_activation: of the pooler / pre-classifier."""

    roberta_positions: bool
    head_activation: str


_TRAITS = {
    "bert": FamilyTraits(roberta_positions=False, head_activation="tanh"),
    "roberta": FamilyTraits(roberta_positions=True, head_activation="tanh"),
    "xlm-roberta": FamilyTraits(roberta_positions=True, head_activation="tanh"),
    "distilbert": FamilyTraits(roberta_positions=False, head_activation="relu"),
}


def family_traits(family: str) -> FamilyTraits:
    if family not in _TRAITS:
        raise ValueError(f"encoder family {family!r} is not one of {ENCODER_FAMILIES}")
    return _TRAITS[family]


@dataclasses.dataclass(frozen=True)
class EncoderConfig(ModelNumerics):
    """Architecture and numerics of a BERT-style encoder.

    Attributes:
      vocab_size, hidden_size, intermediate_size, num_layers, num_heads: shapes
        (head_dim = hidden_size / num_heads).
      family: one of ENCODER_FAMILIES (see the module table).
      max_position_embeddings: rows of the learned position table.
      type_vocab_size: rows of the token-type table (0 = none, DistilBERT).
      layer_norm_eps: LayerNorm epsilon (1e-12 for BERT/DistilBERT, 1e-5 for RoBERTa).
      hidden_act: MLP activation ("gelu" is exact erf GELU; "gelu_new" etc. the tanh form).
      pad_token_id: padding id (RoBERTa's position offset is pad_token_id + 1).
      hidden_dropout, attention_dropout: dropout rates, applied only when a dropout rng is given
        (inference never drops).
      dtype / param_dtype: compute and storage dtypes (names, JAX or NumPy dtypes).
      scan_layers: stack layer params on a leading [L] axis and run `lax.scan`.
      attention_impl: "xla" / "cudnn" (`jax.nn.dot_product_attention`) or "einsum".
      initializer_range: std of the normal init of fresh weights.
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    family: str = "bert"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    pad_token_id: int = 0
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    dtype: str = "float32"
    param_dtype: str = "float32"
    scan_layers: bool = False
    attention_impl: str = "xla"
    initializer_range: float = 0.02

    def __post_init__(self):
        def bad(field: str, why: str):
            raise ValueError(f"EncoderConfig.{field}: {why}")

        if self.family not in ENCODER_FAMILIES:
            bad("family", f"{self.family!r} is not one of {ENCODER_FAMILIES}")
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads"):
            if getattr(self, name) <= 0:
                bad(name, f"must be positive, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            bad("num_heads", f"{self.num_heads} does not divide hidden_size={self.hidden_size}")
        if self.hidden_act not in ENCODER_ACTIVATIONS:
            bad("hidden_act", f"{self.hidden_act!r} is not one of {ENCODER_ACTIVATIONS}")
        if self.attention_impl not in ENCODER_ATTENTION_IMPLS:
            bad(
                "attention_impl", f"{self.attention_impl!r} is not one of {ENCODER_ATTENTION_IMPLS}"
            )
        if self.type_vocab_size < 0:
            bad("type_vocab_size", f"must be >= 0, got {self.type_vocab_size}")
        for name in ("dtype", "param_dtype"):
            try:
                object.__setattr__(self, name, dtype_name(getattr(self, name)))
            except TypeError:
                bad(name, f"{getattr(self, name)!r} is not a dtype")

    # The strict loader (`jaxmethods.hf.pretrained._fill_state`) reads these decoder fields.
    tie_word_embeddings = False
    norm_plus_one = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def traits(self) -> FamilyTraits:
        return family_traits(self.family)

    @property
    def position_offset(self) -> int:
        """First position id of a real token (RoBERTa: pad_token_id + 1, else 0)."""
        return self.pad_token_id + 1 if self.traits.roberta_positions else 0

    @property
    def max_tokens(self) -> int:
        """The longest input the position table allows."""
        return self.max_position_embeddings - self.position_offset

    def replace(self, **changes: Any) -> EncoderConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def tiny(cls, family: str = "bert", vocab_size: int = 128, **overrides: Any) -> EncoderConfig:
        """A 2-layer, hidden-32 encoder of `family` for tests and CPU demos."""
        base: dict[str, Any] = dict(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_layers=2,
            num_heads=4,
            family=family,
            max_position_embeddings=128,
        )
        if family in ("roberta", "xlm-roberta"):
            base.update(pad_token_id=1, type_vocab_size=1, layer_norm_eps=1e-5)
        if family == "distilbert":
            base.update(type_vocab_size=0)
        base.update(overrides)
        return cls(**base)
