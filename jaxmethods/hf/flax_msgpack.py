"""Hugging Face Flax checkpoints (`flax_model.msgpack`) of FlaxLlama / FlaxMistral / FlaxGemma.

transformers <= 4.57 saved the linen param tree with `flax.serialization.msgpack_serialize`:
  model/embed_tokens/embedding [V, H], model/layers/<i>/self_attn/q_proj/kernel [H, N*D],
  model/layers/<i>/input_layernorm/weight [H], model/norm/weight, lm_head/kernel [H, V].
Linen Dense kernels are already [in, out], so only norm names change (`weight` -> our `scale`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from flax.serialization import msgpack_restore, msgpack_serialize

from jaxmethods.hf.key_map import FLAX_KEY_MAP, KeyMap

FLAX_FILE = "flax_model.msgpack"


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out


def read_flax_msgpack(
    path: str, *, ignore_keys: Sequence[str] = ()
) -> dict[str, tuple[str, np.ndarray]]:
    """{our parameter path: (checkpoint key, array)} of an HF Flax msgpack file.

    Raises a ValueError naming the key and file for a tensor no rule maps.
    """
    with open(path, "rb") as f:
        try:
            tree = msgpack_restore(f.read())
        except Exception as e:  # msgpack raises several unrelated exception types
            raise ValueError(f"{path}: not a Flax msgpack checkpoint ({e})") from e
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: expected a dict of params, got {type(tree).__name__}")
    if set(tree) == {"params"}:
        tree = tree["params"]
    if "model" not in tree and "embed_tokens" in tree:  # a base *Model checkpoint
        tree = {"model": tree}
    key_map = KeyMap(FLAX_KEY_MAP)
    out, unknown = {}, []
    for key, value in _flatten(tree).items():
        if any(re.search(p, key) for p in ignore_keys):
            continue
        mapped = key_map.to_param(key)
        if mapped is None:
            unknown.append(key)
            continue
        out[mapped[0]] = (key, np.asarray(value))
    if unknown:
        raise ValueError(
            f"{path}: {len(unknown)} unexpected tensor(s) with no decoder parameter: {unknown[:10]}"
        )
    return out


def write_flax_msgpack(params: dict[str, np.ndarray], path: str) -> None:
    """Writes {our per-layer parameter path: array} in the HF Flax layout (inverse of reading)."""
    key_map = KeyMap(FLAX_KEY_MAP)
    tree: dict[str, Any] = {}
    for param_path, value in params.items():
        key, _ = key_map.to_checkpoint(param_path)
        node = tree
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = np.asarray(value)
    with open(path, "wb") as f:
        f.write(msgpack_serialize(tree))
