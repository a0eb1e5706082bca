"""Hugging Face interop without torch: config.json, safetensors / Flax msgpack in, safetensors out.

model = jaxmethods.hf.load_pretrained("Qwen/Qwen2.5-0.5B-Instruct")   # or a local folder
tok = jaxmethods.hf.load_tokenizer("Qwen/Qwen2.5-0.5B-Instruct", padding_side="left")
jaxmethods.hf.save_pretrained(model, "out/")   # transformers-loadable, LoRA merged
"""

from jaxmethods.hf.config import decoder_config_from_hf, hf_config_from_decoder
from jaxmethods.hf.pretrained import load_pretrained, resolve_model_path
from jaxmethods.hf.save import save_pretrained
from jaxmethods.hf.tokenizer import load_tokenizer


def load_reward_model(path_or_id: str, dtype: str | None = None, **kwargs):
    """`load_pretrained(..., head="sequence_classification")`: e.g. Skywork-Reward-Llama."""
    return load_pretrained(path_or_id, dtype, head="sequence_classification", **kwargs)


__all__ = [
    "decoder_config_from_hf",
    "hf_config_from_decoder",
    "load_pretrained",
    "load_reward_model",
    "load_tokenizer",
    "resolve_model_path",
    "save_pretrained",
]
