"""Regex sharding rules for `ViT` / `CLIPModel` parameters over `fsdp` and `tensor`.

Megatron-style like the decoder and encoder rules (`jaxmethods.models.sharding_rules`):
query/key/value/fc1/weights_in column-parallel, out/fc2/weights_out row-parallel; norms and layer
scales replicated; the token table split like the decoders'. Everything else (patch kernel,
position tables, projections) falls back to FSDP when large, replicated when small.
"""

from __future__ import annotations

from jax.sharding import PartitionSpec as P

from jaxmethods.models.sharding_rules import layered_rules, megatron_layer_rules

_LAYER_RULES = (
    *megatron_layer_rules(
        r"(attention/(query|key|value)|mlp/(fc1|weights_in))",
        r"(attention/out|mlp/(fc2|weights_out))",
        r"norm\d/(scale|bias)",
    ),
    (r"layer_scale\d", P(None)),
)

_TOP_RULES: tuple[tuple[str, P], ...] = (
    (r"token_embedding/embedding", P("tensor", "fsdp")),
    (r"(final_norm|pre_norm)/(scale|bias)", P(None)),
)

VISION_SHARDING_RULES: list[tuple[str, P]] = layered_rules(_LAYER_RULES, _TOP_RULES)
