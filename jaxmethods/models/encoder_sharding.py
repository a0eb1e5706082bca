"""Regex sharding rules for encoder parameters (`EncoderModel`) over `fsdp` and `tensor`.

Same format and conventions as `jaxmethods.models.sharding_rules` (first `re.search` wins;
axes absent from the mesh or not dividing a dimension are dropped): Megatron-style
column-parallel query/key/value/intermediate (output dim over `tensor`), row-parallel attention
output and MLP output (input dim over `tensor`), the other matrix dim over `fsdp`. LayerNorms,
biases of row-parallel layers, the position / token-type tables and the small heads stay
replicated or FSDP-only. Stacked (`scan_layers`) leaves get a leading unsharded [L] axis.
"""

from __future__ import annotations

from jax.sharding import PartitionSpec as P

_COLUMN = r"(query|key|value|intermediate)"
_ROW = r"output"

_LAYER_RULES: tuple[tuple[str, P], ...] = (
    (rf"{_COLUMN}/kernel", P("fsdp", "tensor")),
    (rf"{_COLUMN}/bias", P("tensor")),
    (rf"{_COLUMN}/lora_a", P("fsdp", None)),
    (rf"{_COLUMN}/lora_b", P(None, "tensor")),
    (rf"{_ROW}/kernel", P("tensor", "fsdp")),
    (rf"{_ROW}/bias", P(None)),
    (rf"{_ROW}/lora_a", P("tensor", None)),
    (rf"{_ROW}/lora_b", P(None, "fsdp")),
    (r"_norm/(scale|bias)", P(None)),
)

_TOP_RULES: tuple[tuple[str, P], ...] = (
    (r"word_embeddings/embedding", P("tensor", "fsdp")),
    (r"(position|token_type)_embeddings/embedding", P(None, "fsdp")),
    (r"embeddings/layer_norm/(scale|bias)", P(None)),
    (r"pooler/kernel", P("fsdp", None)),
    (r"classifier/kernel", P("fsdp", None)),
    (r"(pooler|classifier)/bias", P(None)),
)


def _stack(spec: P) -> P:
    return P(None, *spec)


ENCODER_SHARDING_RULES: list[tuple[str, P]] = [
    *((rf"layers/\d+/.*{pattern}", spec) for pattern, spec in _LAYER_RULES),
    *((rf"layers/.*{pattern}", _stack(spec)) for pattern, spec in _LAYER_RULES),
    *_TOP_RULES,
]
