"""Hugging Face interop without torch: config.json, safetensors / Flax msgpack in, safetensors out.

    from jaxmethods.hf import load_pretrained, load_tokenizer, save_pretrained

    model = load_pretrained("Qwen/Qwen2.5-0.5B-Instruct", dtype=jnp.bfloat16)  # or a local folder
    tok = load_tokenizer("Qwen/Qwen2.5-0.5B-Instruct", padding_side="left")
    save_pretrained(model, "out/")   # transformers-loadable, LoRA merged
    encoder = load_pretrained("BAAI/bge-m3")  # BERT/RoBERTa/XLM-R/DistilBERT/DPR -> EncoderModel

Dtypes are accepted as names ("bfloat16"), JAX/NumPy types (`jnp.bfloat16`) or `np.dtype`s.
"""

from __future__ import annotations

import os
from typing import Any

from jaxmethods.hf.config import decoder_config_from_hf, hf_config_from_decoder
from jaxmethods.hf.encoder_config import encoder_config_from_hf
from jaxmethods.hf.lpips_loading import LPIPSWeightsMissing, load_lpips, try_load_lpips
from jaxmethods.hf.peft import load_peft_adapter, save_peft_adapter
from jaxmethods.hf.pretrained import load_pretrained, looks_like_local_path, resolve_model_path
from jaxmethods.hf.save import save_pretrained
from jaxmethods.hf.tokenizer import load_tokenizer
from jaxmethods.hf.vision_loading import (
    VisionWeightsMissing,
    load_vision_model,
    try_load_vision_model,
)


def load_reward_model(path_or_id: str | os.PathLike, dtype: Any = None, **kwargs: Any):
    """`load_pretrained(..., head="sequence_classification")`: e.g. Skywork-Reward-Llama."""
    return load_pretrained(path_or_id, dtype, head="sequence_classification", **kwargs)


__all__ = [
    "LPIPSWeightsMissing",
    "VisionWeightsMissing",
    "decoder_config_from_hf",
    "encoder_config_from_hf",
    "hf_config_from_decoder",
    "load_lpips",
    "load_peft_adapter",
    "load_pretrained",
    "load_reward_model",
    "load_tokenizer",
    "load_vision_model",
    "looks_like_local_path",
    "resolve_model_path",
    "save_peft_adapter",
    "save_pretrained",
    "try_load_lpips",
    "try_load_vision_model",
]
