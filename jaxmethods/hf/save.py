"""`save_pretrained`: our model -> an HF folder (`config.json` + safetensors) that transformers
and vLLM load. LoRA factors are merged into their kernels on export; the model is not modified.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxmethods.hf.config import SEQ_CLS_ARCH, hf_config_from_decoder
from jaxmethods.hf.key_map import TORCH_KEY_MAPS, KeyMap
from jaxmethods.hf.layout import export_params, to_numpy
from jaxmethods.hf.safetensors_io import write_safetensors
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.decoder_config import dtype_name
from jaxmethods.models.heads import SequenceClassifier


def save_pretrained(
    model: DecoderLM | SequenceClassifier,
    path: str | os.PathLike,
    *,
    dtype: Any = None,
    max_shard_bytes: int | None = 5 * 1024**3,
    tokenizer=None,
) -> list[str]:
    """Writes `model` as a Hugging Face checkpoint folder.

    Args:
      model: a DecoderLM (-> `*ForCausalLM`) or SequenceClassifier (-> `*ForSequenceClassification`).
      path: output folder (created).
      dtype: tensor dtype on disk (default: the config's param_dtype): a name ("bfloat16"), a
        JAX/NumPy dtype or type (`jnp.bfloat16`); written to config.json as its name.
      max_shard_bytes: split into `model-0000k-of-0000n.safetensors` + index above this size.
      tokenizer: optionally an HF tokenizer to save alongside.
    Returns:
      The file names written.
    """
    cfg = model.config
    try:
        dtype = dtype_name(cfg.param_dtype if dtype is None else dtype)
    except TypeError:
        raise ValueError(
            f"save_pretrained({os.fspath(path)!r}): dtype={dtype!r} is not a dtype"
        ) from None
    if isinstance(model, SequenceClassifier):
        hf_cfg = hf_config_from_decoder(
            cfg, architecture=SEQ_CLS_ARCH[cfg.family], num_labels=model.num_labels
        )
    elif isinstance(model, DecoderLM):
        hf_cfg = hf_config_from_decoder(cfg)
    else:
        raise TypeError(
            f"save_pretrained: expected DecoderLM or SequenceClassifier, got {type(model)}"
        )
    hf_cfg["dtype"] = dtype

    key_map = KeyMap(TORCH_KEY_MAPS[cfg.family])
    np_dtype = np.dtype(jnp.dtype(dtype))  # bfloat16 is ml_dtypes' NumPy type
    tensors: dict[str, np.ndarray] = {}
    for param_path, value in export_params(model).items():
        key, transpose = key_map.to_checkpoint(param_path)
        array = to_numpy(value).astype(np_dtype)
        tensors[key] = np.ascontiguousarray(array.T) if transpose else array
    os.makedirs(path, exist_ok=True)
    files = write_safetensors(tensors, path, max_shard_bytes=max_shard_bytes)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(hf_cfg, f, indent=2, sort_keys=True)
    files.append("config.json")
    if tokenizer is not None:
        files.extend(os.path.basename(p) for p in tokenizer.save_pretrained(path))
    return files
