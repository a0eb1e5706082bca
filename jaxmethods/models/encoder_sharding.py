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

from jaxmethods.models.sharding_rules import layered_rules, megatron_layer_rules

_LAYER_RULES = megatron_layer_rules(
    r"(query|key|value|intermediate)", r"output", r"_norm/(scale|bias)"
)

_TOP_RULES: tuple[tuple[str, P], ...] = (
    (r"word_embeddings/embedding", P("tensor", "fsdp")),
    (r"(position|token_type)_embeddings/embedding", P(None, "fsdp")),
    (r"embeddings/layer_norm/(scale|bias)", P(None)),
    (r"pooler/kernel", P("fsdp", None)),
    (r"classifier/kernel", P("fsdp", None)),
    (r"(pooler|classifier)/bias", P(None)),
)


ENCODER_SHARDING_RULES: list[tuple[str, P]] = layered_rules(_LAYER_RULES, _TOP_RULES)
