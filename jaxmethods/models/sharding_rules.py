"""Regex sharding rules for decoder parameters over the `fsdp` and `tensor` mesh axes.

Ordered `(regex, PartitionSpec)` pairs in the format of `jaxmethods.train.sharding` (first
`re.search` over the "/"-joined parameter path wins; axes absent from the mesh or not dividing a
dimension are dropped there). Megatron-style tensor parallelism: column-parallel q/k/v/gate/up
(output dim over `tensor`), row-parallel o/down (input dim over `tensor`); the other dim of every
matrix is FSDP-sharded. Stacked (`scan_layers`) leaves get a leading unsharded [L] axis.
"""

from __future__ import annotations

from jax.sharding import PartitionSpec as P

_COLUMN = r"(q_proj|k_proj|v_proj|gate_proj|up_proj)"
_ROW = r"(o_proj|down_proj)"

# Rules for one layer's leaves, written for the per-layer (unstacked) shapes.
_LAYER_RULES: tuple[tuple[str, P], ...] = (
    (rf"{_COLUMN}/kernel", P("fsdp", "tensor")),
    (rf"{_COLUMN}/bias", P("tensor")),
    (rf"{_COLUMN}/lora_a", P("fsdp", None)),
    (rf"{_COLUMN}/lora_b", P(None, "tensor")),
    (rf"{_ROW}/kernel", P("tensor", "fsdp")),
    (rf"{_ROW}/bias", P(None)),
    (rf"{_ROW}/lora_a", P("tensor", None)),
    (rf"{_ROW}/lora_b", P(None, "fsdp")),
    (r"layernorm/scale", P(None)),
)

_TOP_RULES: tuple[tuple[str, P], ...] = (
    (r"embed_tokens/embedding", P("tensor", "fsdp")),
    (r"lm_head/kernel", P("fsdp", "tensor")),
    (r"lm_head/lora_a", P("fsdp", None)),
    (r"lm_head/lora_b", P(None, "tensor")),
    (r"score/kernel", P("fsdp", None)),
    (r"score/bias", P(None)),
    (r"model/norm/scale", P(None)),
)


def _stack(spec: P) -> P:
    return P(None, *spec)


DECODER_SHARDING_RULES: list[tuple[str, P]] = [
    *((rf"layers/\d+/.*{pattern}", spec) for pattern, spec in _LAYER_RULES),
    *((rf"layers/.*{pattern}", _stack(spec)) for pattern, spec in _LAYER_RULES),
    *_TOP_RULES,
]
