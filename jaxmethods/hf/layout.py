"""Between our (possibly layer-stacked) parameter state and per-layer parameter paths.

Checkpoints are per layer ("model/layers/3/self_attn/q_proj/kernel"); with `scan_layers=True`
our state holds one leaf "model/layers/self_attn/q_proj/kernel" of shape [L, ...].
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from jaxmethods.models.decoder_config import DecoderConfig
from jaxmethods.models.lora import LoRAParam, lora_delta

LAYERS = "model/layers/"


def path_string(path: tuple) -> str:
    """A flat-state key tuple (or a tree path ending in `.value`) -> "a/b/c"."""
    parts = []
    for k in path:
        k = getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))
        parts.append(str(k))
    if parts and parts[-1] == "value":
        parts.pop()
    return "/".join(parts)


def per_layer_paths(path: str, config: DecoderConfig) -> list[str] | None:
    """The L per-layer paths a stacked leaf holds, or None for a leaf that is not stacked."""
    if not (config.scan_layers and path.startswith(LAYERS)):
        return None
    rest = path[len(LAYERS) :]
    return [f"{LAYERS}{i}/{rest}" for i in range(config.num_layers)]


def export_params(model: nnx.Module) -> dict[str, jax.Array]:
    """Per-layer parameter arrays of `model`, with LoRA merged into its kernels.

    Returns {path: array} over every `nnx.Param` except the LoRA factors themselves; a kernel
    with LoRA factors is returned as kernel + (alpha / r) A B (the weight an HF model needs).
    """
    config: DecoderConfig = model.config
    flat = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    out: dict[str, jax.Array] = {}
    for key, var in flat.items():
        if isinstance(var, LoRAParam):
            continue
        path = "/".join(str(k) for k in key)
        value = var[...]
        if path.endswith("/kernel"):
            parent = key[:-1]
            if (*parent, "lora_a") in flat:
                module = _module_at(model, parent)
                value = value + lora_delta(module).astype(value.dtype)
        layers = per_layer_paths(path, config)
        if layers is None:
            out[path] = value
        else:
            for i, p in enumerate(layers):
                out[p] = value[i]
    return out


def _module_at(model: nnx.Module, path: tuple) -> nnx.Module:
    node = model
    for k in path:
        node = node[k] if isinstance(k, int) else getattr(node, k)
    return node


def to_numpy(x: jax.Array) -> np.ndarray:
    """Gathers a (possibly sharded) array to host NumPy."""
    return np.asarray(jax.device_get(x))
