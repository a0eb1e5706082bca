"""`load_encoder`: an HF BERT / RoBERTa / XLM-R / DistilBERT / DPR checkpoint -> `EncoderModel`.

Called by `jaxmethods.hf.load_pretrained` when `config.json` names an encoder `model_type`. Same
strict accounting and placement as the decoders (shared `_map_checkpoint` / `_fill_state`):
unknown, missing or mis-shaped tensors are errors naming key and file; the tensors in
`encoder_keys.KNOWN_UNUSED` (MLM heads, position-id buffers) are skipped and counted in one log
line; with a mesh each parameter is read straight into its `NamedSharding`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from flax import nnx
from jax.sharding import Mesh

from jaxmethods.hf.config import infer_head
from jaxmethods.hf.encoder_config import encoder_config_from_hf
from jaxmethods.hf.encoder_keys import BASE_PREFIXES, KNOWN_UNUSED, encoder_rules
from jaxmethods.hf.key_map import KeyMap
from jaxmethods.hf.safetensors_io import SafetensorsCheckpoint, safetensors_files
from jaxmethods.models.encoder import EncoderModel
from jaxmethods.models.encoder_sharding import ENCODER_SHARDING_RULES

log = logging.getLogger(__name__)

ENCODER_HEADS = ("encoder", "sequence_classification")


def load_encoder(
    folder: str,
    hf: dict[str, Any],
    *,
    dtype: str,
    param_dtype: str | None = None,
    mesh: Mesh | None = None,
    rules: Sequence[tuple[str, Any]] | None = None,
    head: str | None = None,
    num_labels: int | None = None,
    fresh_params: Sequence[str] = (),
    ignore_checkpoint_keys: Sequence[str] = (),
    seed: int = 0,
    check_finite: bool = False,
    **config_overrides: Any,
) -> EncoderModel:
    """The encoder in `folder` (config dict `hf` already read); see `load_pretrained` for the
    arguments. The base encoder (head "encoder") gets a pooler exactly when the checkpoint has
    `pooler.dense.*`; head "sequence_classification" always has pooler + classifier."""
    # Imported here: pretrained imports this module lazily (it dispatches to it).
    from jaxmethods.hf.pretrained import _checkpoint_key, _fill_state, _map_checkpoint, _num_labels

    config_path = os.path.join(folder, "config.json")
    head = infer_head(hf, head, default="encoder", heads=ENCODER_HEADS, source=config_path)
    cfg = encoder_config_from_hf(
        hf, source=config_path, dtype=dtype, param_dtype=param_dtype or dtype, **config_overrides
    )
    model_type = hf["model_type"]
    key_map = KeyMap(encoder_rules(cfg.family, None if head == "encoder" else head))
    if not any(f.endswith(".safetensors") for f in os.listdir(folder)):
        safetensors_files(folder)  # raises FileNotFoundError naming the folder
    with SafetensorsCheckpoint(folder) as ckpt:
        sources, skipped = _map_checkpoint(
            ckpt, key_map, model_type, ignore_checkpoint_keys,
            prefixes=BASE_PREFIXES[model_type], known_unused=KNOWN_UNUSED,
        )  # fmt: skip
        if skipped:
            log.info(
                "%s: skipped %d known unused tensor(s) (MLM heads / buffers), e.g. %s",
                folder, len(skipped), skipped[0],
            )  # fmt: skip
        if head == "encoder":
            pooler, labels = "pooler/kernel" in sources, None
        else:
            pooler, labels = True, _num_labels(hf, num_labels)
        build = lambda: EncoderModel(cfg, pooler=pooler, num_labels=labels, rngs=nnx.Rngs(seed))
        graphdef, abstract_state = nnx.split(nnx.eval_shape(build))
        shardings = None
        if mesh is not None:
            from jaxmethods.train.sharding import param_shardings

            shardings = param_shardings(
                abstract_state, mesh, ENCODER_SHARDING_RULES if rules is None else rules
            )
        prefix = BASE_PREFIXES[model_type][0]

        def describe(path: str) -> str:
            key = _checkpoint_key(key_map, path)
            return (
                f"{key!r} (or {prefix + key!r}; parameter {path}) in "
                f"{folder}/{{{', '.join(ckpt.files)}}}"
            )

        state = _fill_state(
            abstract_state, sources, shardings, cfg, fresh_params, seed, describe, check_finite
        )
    return nnx.merge(graphdef, state)
