"""Flax NNX models: the decoder LM families, LoRA, heads, the shared backbone builder.

    from jaxmethods.models import DecoderConfig, DecoderLM, LoRAParam, apply_lora

    model = DecoderLM(DecoderConfig.tiny(vocab_size=128), rngs=nnx.Rngs(0))
    apply_lora(model, rank=8, alpha=16.0)
    graphdef, lora, rest = nnx.split(model, LoRAParam, ...)

Collaborative-filtering models live in `jaxmethods.models.cf`. Names are imported on first use.
"""

from jaxmethods._exports import lazy_exports

_EXPORTS = {
    "Attention": "attention",
    "BackboneConfig": "backbone",
    "LoRAConfig": "backbone",
    "build_backbone": "backbone",
    "causal_lm_sequence_logprobs": "causal_lm",
    "causal_lm_token_ce": "causal_lm",
    "Decoder": "decoder",
    "Encoder": "encoder",
    "EncoderModel": "encoder",
    "EncoderConfig": "encoder_config",
    "ENCODER_SHARDING_RULES": "encoder_sharding",
    "TextEncoder": "text_encoder",
    "cls_pool": "pooling",
    "l2_normalize": "pooling",
    "last_token_pool": "pooling",
    "mean_pool": "pooling",
    "DecoderLM": "decoder",
    "DecoderConfig": "decoder_config",
    "dtype_name": "decoder_config",
    "SequenceClassifier": "heads",
    "KVCache": "kv_cache",
    "Dense": "linear",
    "Embed": "linear",
    "LoRAParam": "lora",
    "apply_lora": "lora",
    "lora_base_state": "lora",
    "lora_delta": "lora",
    "lora_modules": "lora",
    "merge_lora": "lora",
    "remove_lora": "lora",
    "unmerge_lora": "lora",
    "AdapterBank": "multi_lora",
    "AdapterSpec": "multi_lora",
    "MultiLoRA": "multi_lora",
    "apply_multi_lora": "multi_lora",
    "GatedMLP": "mlp",
    "RMSNorm": "norms",
    "PersonalizedReward": "personalized_reward",
    "RewardWeights": "personalized_reward",
    "apply_rope": "rope",
    "DECODER_SHARDING_RULES": "sharding_rules",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
