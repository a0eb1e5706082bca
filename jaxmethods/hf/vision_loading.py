"""`load_vision_model`: an HF CLIP (`CLIPModel`, openai or laion in HF format) or DINOv2 checkpoint
-> `CLIPModel` / `ViT`, torch-free.

Same strict accounting and placement as the decoders and encoders (shared `_map_checkpoint` /
`_fill_state`): unknown, missing or mis-shaped tensors are errors naming key and file; the
buffers in `vision_keys.KNOWN_UNUSED` are skipped and counted; with a mesh each parameter is read
straight into its `NamedSharding` (`VISION_SHARDING_RULES`).

Missing weights raise `VisionWeightsMissing` (a FileNotFoundError) naming the path, so callers can
skip the CLIP / DINO metrics with one line (`try_load_vision_model`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from flax import nnx
from jax.sharding import Mesh

from jaxmethods.hf.config import read_config_json
from jaxmethods.hf.key_map import KeyMap
from jaxmethods.hf.safetensors_io import SafetensorsCheckpoint
from jaxmethods.hf.vision_config import VISION_MODEL_TYPES, clip_config_from_hf, vit_config_from_hf
from jaxmethods.hf.vision_keys import KNOWN_UNUSED, VISION_PREFIXES, VISION_RULES
from jaxmethods.models.vision.clip import CLIPModel
from jaxmethods.models.vision.sharding import VISION_SHARDING_RULES
from jaxmethods.models.vision.vit import ViT

log = logging.getLogger(__name__)


class VisionWeightsMissing(FileNotFoundError):
    """The CLIP / DINOv2 weights are not at the given path (nor fetchable from the hub)."""


def _resolve(path_or_id: str | os.PathLike, revision: str | None) -> str:
    from jaxmethods.hf.pretrained import resolve_model_path

    try:
        folder = resolve_model_path(path_or_id, revision)
    except (OSError, ValueError) as e:
        raise VisionWeightsMissing(
            f"vision weights not found at {os.fspath(path_or_id)!r}: {e}"
        ) from e
    if not os.path.isfile(os.path.join(folder, "config.json")) or not any(
        f.endswith(".safetensors") for f in os.listdir(folder)
    ):
        raise VisionWeightsMissing(
            f"vision weights not found at {os.fspath(path_or_id)!r} (resolved to {folder!r}): "
            "the folder needs config.json and *.safetensors"
        )
    return folder


def load_vision_model(
    path_or_id: str | os.PathLike,
    dtype: Any = None,
    *,
    param_dtype: Any = None,
    mesh: Mesh | None = None,
    rules: Sequence[tuple[str, Any]] | None = None,
    revision: str | None = None,
    ignore_checkpoint_keys: Sequence[str] = (),
    check_finite: bool = False,
    **config_overrides: Any,
) -> CLIPModel | ViT:
    """Loads `model_type` "clip" as a `CLIPModel` and "dinov2" as a `ViT`.

    Args:
      path_or_id: a local folder (config.json + safetensors) or a hub id.
      dtype, param_dtype: compute / storage dtypes (default float32 on CPU, bf16 elsewhere).
      mesh, rules: place each parameter with its NamedSharding (default VISION_SHARDING_RULES).
      ignore_checkpoint_keys: regexes over checkpoint keys to skip (e.g. a classifier head).
      check_finite: refuse tensors holding NaN/Inf.
      **config_overrides: ViTConfig / CLIPTextConfig fields (e.g. attention_impl).
    Raises:
      VisionWeightsMissing: no weights at `path_or_id` (the message names it).
    """
    from jaxmethods.hf.pretrained import (
        _checkpoint_key,
        _dtype_arg,
        _fill_state,
        _map_checkpoint,
        default_compute_dtype,
    )

    folder = _resolve(path_or_id, revision)
    hf = read_config_json(folder)
    config_path = os.path.join(folder, "config.json")
    model_type = hf.get("model_type")
    if model_type not in VISION_MODEL_TYPES:
        raise ValueError(
            f"{config_path}: model_type {model_type!r} is not a vision model {VISION_MODEL_TYPES}"
        )
    dtype = _dtype_arg(dtype, "dtype", folder) or default_compute_dtype()
    param_dtype = _dtype_arg(param_dtype, "param_dtype", folder) or dtype
    overrides = dict(dtype=dtype, param_dtype=param_dtype, **config_overrides)
    if model_type == "clip":
        cfg = clip_config_from_hf(hf, source=config_path, **overrides)
        build = lambda: CLIPModel(cfg, rngs=nnx.Rngs(0))
    else:
        cfg = vit_config_from_hf(hf, family="dinov2", source=config_path, **overrides)
        build = lambda: ViT(cfg, rngs=nnx.Rngs(0))
    key_map = KeyMap(VISION_RULES[model_type]())
    graphdef, abstract_state = nnx.split(nnx.eval_shape(build))
    shardings = None
    if mesh is not None:
        from jaxmethods.train.sharding import param_shardings

        shardings = param_shardings(
            abstract_state, mesh, VISION_SHARDING_RULES if rules is None else rules
        )
    with SafetensorsCheckpoint(folder) as ckpt:
        sources, skipped = _map_checkpoint(
            ckpt, key_map, model_type, ignore_checkpoint_keys,
            prefixes=VISION_PREFIXES[model_type], known_unused=KNOWN_UNUSED,
        )  # fmt: skip
        if skipped:
            log.info("%s: skipped %d unused buffer(s), e.g. %s", folder, len(skipped), skipped[0])

        def describe(path: str) -> str:
            key = _checkpoint_key(key_map, path)
            return f"{key!r} (parameter {path}) in {folder}/{{{', '.join(ckpt.files)}}}"

        state = _fill_state(abstract_state, sources, shardings, cfg, (), 0, describe, check_finite)
    return nnx.merge(graphdef, state)


def try_load_vision_model(
    path_or_id: str | os.PathLike | None, what: str, **kwargs: Any
) -> CLIPModel | ViT | None:
    """`load_vision_model`, or None with one log line naming the path when the weights are
    missing (`what` names the metrics that are then skipped, e.g. "CLIP score")."""
    if not path_or_id:
        log.warning("%s skipped: no weights path given", what)
        return None
    try:
        return load_vision_model(path_or_id, **kwargs)
    except VisionWeightsMissing as e:
        log.warning("%s skipped: %s", what, e)
        return None
