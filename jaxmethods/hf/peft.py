"""PEFT LoRA adapters out and in (`adapter_config.json` + `adapter_model.safetensors`), torch-free.

    save_peft_adapter(ml, "out/predictor", adapter="predictor",
                      base_model_name_or_path="meta-llama/Meta-Llama-3-8B-Instruct")
    # torch: PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), "out/predictor")
    load_peft_adapter("out/predictor", ml, adapter="predictor")

Keys and layouts are PEFT's (`peft.get_peft_model_state_dict`, adapter name removed):
`base_model.model.<HF module>.lora_A.weight` [r, in] (our A [in, r] transposed),
`base_model.model.<HF module>.lora_B.weight` [out, r] (our B [r, out] transposed), and for a
trained head (`modules_to_save=["lm_head"]`) `base_model.model.lm_head.weight` [V, H]. HF module
names come from the checkpoint key map (`jaxmethods.hf.key_map`). The source is a
`MultiLoRA` (one named adapter) or a `DecoderLM` with `apply_lora` factors.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors.numpy import save_file

from jaxmethods.hf.key_map import TORCH_KEY_MAPS, KeyMap
from jaxmethods.hf.layout import per_layer_paths, to_numpy
from jaxmethods.hf.safetensors_io import open_safetensors
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.decoder_config import dtype_name
from jaxmethods.models.lora import LoRAParam, lora_modules
from jaxmethods.models.multi_lora import MultiLoRA

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PREFIX = "base_model.model."
HEAD_PATH = "lm_head/kernel"
_FACTOR = {"lora_a": "lora_A", "lora_b": "lora_B"}


def _flat(state: nnx.State) -> dict[str, jax.Array]:
    return {"/".join(map(str, k)): v[...] for k, v in nnx.to_flat_state(state)}


def _source_state(source: MultiLoRA | DecoderLM, adapter: str | None) -> tuple[dict, dict]:
    """(trainable pytree in `MultiLoRA.trainable` form, {r, lora_alpha, lora_dropout})."""
    if isinstance(source, MultiLoRA):
        if adapter is None:
            raise ValueError(f"save_peft_adapter: name the adapter, one of {source.names}")
        spec = source.spec(adapter)
        fields = {"r": spec.rank, "lora_alpha": spec.alpha, "lora_dropout": spec.dropout}
        return source.trainable(adapter), fields
    if not isinstance(source, DecoderLM):
        raise TypeError(f"save_peft_adapter: expected MultiLoRA or DecoderLM, got {type(source)}")
    modules = lora_modules(source)
    if not modules:
        raise ValueError("save_peft_adapter: the DecoderLM has no LoRA factors (apply_lora)")
    hyper = {(m.lora_a.shape[-1], m.lora_scale, m.lora_dropout) for _, m in modules}
    if len(hyper) != 1:
        raise ValueError(f"save_peft_adapter: LoRA modules differ in (r, scale, dropout): {hyper}")
    ((rank, scale, dropout),) = hyper
    fields = {"r": int(rank), "lora_alpha": scale * rank, "lora_dropout": dropout}
    return {"lora": nnx.state(source, LoRAParam)}, fields


def _per_layer(flat: dict[str, jax.Array], config: Any) -> dict[str, jax.Array]:
    out = {}
    for path, value in flat.items():
        layers = per_layer_paths(path, config)
        if layers is None:
            out[path] = value
        else:
            out.update({p: value[i] for i, p in enumerate(layers)})
    return out


def _module_key(key_map: KeyMap, path: str) -> str:
    """ "model/layers/0/self_attn/q_proj/lora_a" -> "model.layers.0.self_attn.q_proj"."""
    module = path.rsplit("/", 1)[0]
    key, _ = key_map.to_checkpoint(module + "/kernel")
    return key.removesuffix(".weight")


def _target_modules(modules: list[str], config: Any) -> list[str] | str:
    """PEFT `target_modules`: the module names when every layer's module of each name is adapted
    (PEFT matches names as key suffixes), else a regex full-matching exactly the adapted keys."""
    names = sorted({m.rsplit(".", 1)[-1] for m in modules})
    per_layer = all(m.startswith("model.layers.") for m in modules)
    if per_layer and len(set(modules)) == config.num_layers * len(names):
        return names
    return "^(" + "|".join(re.escape(m) for m in sorted(modules)) + ")$"


def peft_state_dict(
    source: MultiLoRA | DecoderLM, adapter: str | None = None, *, dtype: Any = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """`({PEFT key: array}, adapter_config fields)` of one adapter (see the module docstring)."""
    params, fields = _source_state(source, adapter)
    config = source.config
    key_map = KeyMap(TORCH_KEY_MAPS[config.family])
    flat = _per_layer(_flat(params["lora"]), config)
    tensors: dict[str, np.ndarray] = {}
    modules = []
    for path, value in flat.items():
        factor = path.rsplit("/", 1)[-1]
        module = _module_key(key_map, path)
        modules.append(module)
        tensors[f"{PREFIX}{module}.{_FACTOR[factor]}.weight"] = to_numpy(value).T
    if "head" in params:
        (head,) = _flat(params["head"]).values()
        key, _ = key_map.to_checkpoint(HEAD_PATH)
        tensors[PREFIX + key] = to_numpy(head).T
    if dtype is not None:
        np_dtype = np.dtype(jnp.dtype(dtype_name(dtype)))
        tensors = {k: v.astype(np_dtype) for k, v in tensors.items()}
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    fields = {
        **fields,
        "target_modules": _target_modules(sorted(set(modules)), config),
        "modules_to_save": ["lm_head"] if "head" in params else None,
    }
    return tensors, fields


def save_peft_adapter(
    source: MultiLoRA | DecoderLM,
    path: str | os.PathLike,
    *,
    adapter: str | None = None,
    base_model_name_or_path: str | None = None,
    dtype: Any = None,
) -> list[str]:
    """Writes one LoRA adapter as a PEFT folder that `PeftModel.from_pretrained` loads.

    Args:
      source: a `MultiLoRA` (then `adapter` names the adapter) or a DecoderLM with LoRA factors.
      path: output folder (created).
      base_model_name_or_path: recorded in adapter_config.json (hub id or folder of the base).
      dtype: tensor dtype on disk (default: as stored, float32 masters).
    Returns:
      The file names written.
    """
    tensors, fields = peft_state_dict(source, adapter, dtype=dtype)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model_name_or_path,
        "r": fields["r"],
        "lora_alpha": fields["lora_alpha"],
        "lora_dropout": fields["lora_dropout"],
        "target_modules": fields["target_modules"],
        "modules_to_save": fields["modules_to_save"],
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "use_rslora": False,
        "use_dora": False,
        "layers_to_transform": None,
        "layers_pattern": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": None,
    }
    os.makedirs(path, exist_ok=True)
    # transformers / PEFT require the "format" metadata of torch-written safetensors
    save_file(tensors, os.path.join(path, WEIGHTS_FILE), {"format": "pt"})
    with open(os.path.join(path, CONFIG_FILE), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    return [WEIGHTS_FILE, CONFIG_FILE]


def _read(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    cfg_path, weights = os.path.join(path, CONFIG_FILE), os.path.join(path, WEIGHTS_FILE)
    for p in (cfg_path, weights):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"load_peft_adapter: {p} does not exist")
    with open(cfg_path) as f:
        config = json.load(f)
    handle = open_safetensors(weights)
    keys = handle.keys()
    return config, {k: handle.get_tensor(k) for k in keys}


def _check_config(config: dict, want: dict, path: str) -> None:
    if config.get("peft_type", "LORA") != "LORA":
        raise ValueError(f"{path}/{CONFIG_FILE}: peft_type {config.get('peft_type')!r} is not LORA")
    for flag in ("use_dora", "use_rslora", "fan_in_fan_out"):
        if config.get(flag):
            raise ValueError(f"{path}/{CONFIG_FILE}: {flag}=true is not supported")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ValueError(f"{path}/{CONFIG_FILE}: rank_pattern / alpha_pattern are not supported")
    for field in ("r", "lora_alpha"):
        if not np.isclose(float(config.get(field, np.nan)), float(want[field])):
            raise ValueError(
                f"{path}/{CONFIG_FILE}: {field}={config.get(field)} but the target adapter has "
                f"{field}={want[field]}"
            )


def load_peft_adapter(
    path: str | os.PathLike, target: MultiLoRA | DecoderLM, *, adapter: str | None = None
) -> dict[str, Any]:
    """Reads a PEFT LoRA folder into adapter `adapter` of a `MultiLoRA` (or into the LoRA
    factors of a DecoderLM built with `apply_lora`), in place.

    The target must have the same r, lora_alpha, adapted modules and (for `modules_to_save`)
    a trainable head; a missing, extra or mis-shaped tensor is an error naming its key.
    Returns the adapter_config.json contents.
    """
    path = os.fspath(path)
    config, tensors = _read(path)
    params, fields = _source_state(target, adapter)  # the target's structure and shapes
    _check_config(config, fields, path)
    model_cfg = target.config
    key_map = KeyMap(TORCH_KEY_MAPS[model_cfg.family])
    tensors = {k.removeprefix(PREFIX): v for k, v in tensors.items()}

    def lookup(key: str, shape: tuple) -> np.ndarray:
        if key not in tensors:
            raise ValueError(f"{path}/{WEIGHTS_FILE}: missing tensor {PREFIX}{key}")
        value = tensors.pop(key).T
        if value.shape != tuple(shape):
            raise ValueError(
                f"{path}/{WEIGHTS_FILE}: {PREFIX}{key} has shape {value.shape[::-1]}, "
                f"expected {tuple(shape)[::-1]}"
            )
        return value

    def read_leaf(state_path: str, leaf: jax.Array) -> jax.Array:
        layers = per_layer_paths(state_path, model_cfg)
        if state_path == HEAD_PATH:
            key, _ = key_map.to_checkpoint(HEAD_PATH)
            return jnp.asarray(lookup(key, leaf.shape), leaf.dtype)
        factor = state_path.rsplit("/", 1)[-1]
        keys = [
            f"{_module_key(key_map, p)}.{_FACTOR[factor]}.weight" for p in (layers or [state_path])
        ]
        shape = leaf.shape[1:] if layers else leaf.shape
        values = [lookup(k, shape) for k in keys]
        return jnp.asarray(np.stack(values) if layers else values[0], leaf.dtype)

    def read_state(state: nnx.State) -> nnx.State:
        return nnx.from_flat_state(
            {
                k: v.replace(read_leaf("/".join(map(str, k)), v[...]))
                for k, v in nnx.to_flat_state(state)
            }
        )

    loaded = {name: read_state(state) for name, state in params.items()}
    if tensors:
        raise ValueError(
            f"{path}/{WEIGHTS_FILE}: tensors the target has no place for: "
            f"{sorted(PREFIX + k for k in tensors)[:5]}"
            + (
                " (the target adapter does not train lm_head)"
                if "lm_head.weight" in tensors
                else ""
            )
        )
    if isinstance(target, MultiLoRA):
        target.insert(adapter, loaded)
    else:
        nnx.update(target, loaded["lora"])
    return config
