"""Regex sharding rules for decoder parameters over the `fsdp` and `tensor` mesh axes.

Ordered `(regex, PartitionSpec)` pairs in the format of `jaxmethods.train.sharding` (first
`re.search` over the "/"-joined parameter path wins; axes absent from the mesh or not dividing a
dimension are dropped there). Megatron-style tensor parallelism: column-parallel q/k/v/gate/up
(output dim over `tensor`), row-parallel o/down (input dim over `tensor`); the other dim of every
matrix is FSDP-sharded. Stacked (`scan_layers`) leaves get a leading unsharded [L] axis.
"""

from __future__ import annotations

from jax.sharding import PartitionSpec as P


def megatron_layer_rules(column: str, row: str, norm: str) -> tuple[tuple[str, P], ...]:
    """One layer's rules (per-layer shapes): `column` Dense layers split their output dim over
    `tensor`, `row` layers their input dim; the other matrix dim over `fsdp`; LoRA factors follow
    their kernel; biases of row layers and the `norm` parameters stay replicated."""
    return (
        (rf"{column}/kernel", P("fsdp", "tensor")),
        (rf"{column}/bias", P("tensor")),
        (rf"{column}/lora_a", P("fsdp", None)),
        (rf"{column}/lora_b", P(None, "tensor")),
        (rf"{row}/kernel", P("tensor", "fsdp")),
        (rf"{row}/bias", P(None)),
        (rf"{row}/lora_a", P("tensor", None)),
        (rf"{row}/lora_b", P(None, "fsdp")),
        (norm, P(None)),
    )


def layered_rules(layer_rules, top_rules) -> list[tuple[str, P]]:
    """Rules for a model with `layers/<i>/...` (unstacked) or `layers/...` (stacked under
    `scan_layers`, with a leading unsharded [L] axis) plus the top-level `top_rules`."""
    return [
        *((rf"layers/\d+/.*{pattern}", spec) for pattern, spec in layer_rules),
        *((rf"layers/.*{pattern}", P(None, *spec)) for pattern, spec in layer_rules),
        *top_rules,
    ]


_LAYER_RULES = megatron_layer_rules(
    r"(q_proj|k_proj|v_proj|gate_proj|up_proj)", r"(o_proj|down_proj)", r"layernorm/scale"
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


DECODER_SHARDING_RULES: list[tuple[str, P]] = layered_rules(_LAYER_RULES, _TOP_RULES)
