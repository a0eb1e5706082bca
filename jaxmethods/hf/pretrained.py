"""`load_pretrained`: a Hugging Face decoder or encoder checkpoint -> our NNX model, torch-free.

Encoders (`model_type` bert, roberta, xlm-roberta, distilbert, dpr) are dispatched to
`jaxmethods.hf.encoder_loading`, which shares the key accounting and placement below.

Flow (tunix-style): parse config.json -> build the model abstractly (`nnx.eval_shape`) -> derive
one NamedSharding per leaf from the regex rules -> map every checkpoint key to a parameter path
(strict: unknown, missing or mis-shaped tensors are errors naming key and file) -> read each
tensor from the memory-mapped file straight into its sharding (`jax.make_array_from_callback`
reads only the slice each device holds) -> `nnx.merge`.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from jaxmethods.hf.config import decoder_config_from_hf, infer_head, read_config_json
from jaxmethods.hf.encoder_config import ENCODER_MODEL_TYPES
from jaxmethods.hf.flax_msgpack import FLAX_FILE, read_flax_msgpack
from jaxmethods.hf.key_map import FLAX_KEY_MAP, TORCH_KEY_MAPS, KeyMap, is_ignored
from jaxmethods.hf.layout import path_string, per_layer_paths
from jaxmethods.hf.safetensors_io import SafetensorsCheckpoint
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.decoder_config import dtype_name
from jaxmethods.models.encoder import EncoderModel
from jaxmethods.models.heads import SequenceClassifier
from jaxmethods.models.linear import normal_init
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES

HEADS = ("causal_lm", "sequence_classification")
# A dtype as a name ("bfloat16"), a JAX/NumPy scalar type (jnp.bfloat16) or a np.dtype.
DTypeLike = Any
HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]


def looks_like_local_path(path_or_id: str) -> bool:
    """True for a string that cannot be a hub id ("namespace/name" or "name") but reads as a path:
    it starts with "/", "." or "~", holds a backslash or more than one "/", or ends with "/"."""
    s = os.fspath(path_or_id)
    return (
        s.startswith(("/", ".", "~"))
        or "\\" in s
        or (os.altsep is not None and os.altsep in s)
        or s.count("/") > 1
        or s.endswith("/")
    )


def resolve_model_path(path_or_id: str | os.PathLike, revision: str | None = None) -> str:
    """A local folder as is; otherwise a hub id fetched with `huggingface_hub.snapshot_download`
    (config, safetensors and tokenizer files; `flax_model.msgpack` only when there are no
    safetensors). A missing local path (see `looks_like_local_path`) is a FileNotFoundError, not
    a hub lookup."""
    is_path_object = isinstance(path_or_id, os.PathLike)
    path_or_id = os.fspath(path_or_id)
    local = os.path.expanduser(path_or_id)
    if os.path.isdir(local):
        return local
    if os.path.exists(local):
        raise ValueError(f"{path_or_id!r} is a file; pass the model folder that holds config.json")
    if is_path_object or looks_like_local_path(path_or_id):
        raise FileNotFoundError(
            f"model folder {path_or_id!r} does not exist (absolute: {os.path.abspath(local)!r}); "
            "a hub id looks like 'namespace/name'"
        )
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(path_or_id, revision=revision, allow_patterns=HUB_PATTERNS)
    except Exception as e:  # hub errors have many types (not found, offline, invalid id, ...)
        raise OSError(
            f"{path_or_id!r} is not a local folder ({os.path.abspath(path_or_id)!r} does not "
            f"exist) and could not be fetched from the Hugging Face hub: {e}"
        ) from e
    if not any(f.endswith(".safetensors") for f in os.listdir(folder)):
        folder = snapshot_download(
            path_or_id, revision=revision, allow_patterns=[*HUB_PATTERNS, FLAX_FILE]
        )
    return folder


def default_compute_dtype() -> str:
    """float32 on CPU, bfloat16 on accelerators."""
    return "float32" if jax.default_backend() == "cpu" else "bfloat16"


def _num_labels(hf: dict[str, Any], num_labels: int | None) -> int:
    if num_labels is not None:
        return num_labels
    if hf.get("id2label"):
        return len(hf["id2label"])
    return int(hf.get("num_labels", 2))  # transformers' default


class _ArraySource:
    """An in-memory tensor with the LazyTensor interface (msgpack checkpoints; `file` is the
    msgpack file's path)."""

    def __init__(self, array: np.ndarray, key: str, file: str):
        self.array, self.key, self.shape = array, key, tuple(array.shape)
        self.file = self.path = file

    def read(self, index=None) -> np.ndarray:
        return self.array if index is None else self.array[tuple(index)]


def load_pretrained(
    path_or_id: str | os.PathLike,
    dtype: DTypeLike | None = None,
    *,
    param_dtype: DTypeLike | None = None,
    mesh: Mesh | None = None,
    rules: Sequence[tuple[str, Any]] | None = None,
    head: str | None = None,
    num_labels: int | None = None,
    revision: str | None = None,
    fresh_params: Sequence[str] = (),
    ignore_checkpoint_keys: Sequence[str] = (),
    seed: int = 0,
    check_finite: bool = False,
    **config_overrides: Any,
) -> DecoderLM | SequenceClassifier | EncoderModel:
    """Loads an HF Llama/Qwen2/Mistral/Gemma checkpoint (safetensors or Flax msgpack), or a
    BERT/RoBERTa/XLM-R/DistilBERT/DPR encoder (safetensors; see `load_encoder`).

    Args:
      path_or_id: a local model folder (str or path object) or a hub id.
      dtype: compute dtype (default float32 on CPU, bfloat16 on accelerators); a name
        ("bfloat16"), a JAX/NumPy dtype or type (`jnp.bfloat16`).
      param_dtype: storage dtype of the weights (default: `dtype`; "float32" for fp32 masters).
      mesh: place each parameter with its NamedSharding on this mesh (None = default device).
      rules: sharding rules (default `DECODER_SHARDING_RULES`).
      head: "causal_lm" (DecoderLM) or "sequence_classification" (SequenceClassifier); default
        from the config's `architectures`. Encoders: "encoder" or "sequence_classification".
      num_labels: score outputs of a classification head (default from the config).
      revision: hub revision.
      fresh_params: regexes over parameter paths that may be absent from the checkpoint and keep
        a fresh init (e.g. ("score/",) to start a reward model from a causal LM).
      ignore_checkpoint_keys: regexes over checkpoint keys to skip (e.g. ("lm_head",) then).
      seed: init seed of `fresh_params` (norms at identity, biases zero, matrices normal).
      check_finite: refuse a checkpoint tensor holding NaN or Inf (the error names the tensor
        and its file); each tensor is checked as it is read, before the cast to `param_dtype`.
      **config_overrides: DecoderConfig (EncoderConfig) fields (scan_layers, attention_impl, ...).
    Returns:
      The model, weights placed (and sharded when `mesh` is given).
    """
    folder = resolve_model_path(path_or_id, revision)
    hf = read_config_json(folder)
    if hf.get("model_type") in ENCODER_MODEL_TYPES:
        from jaxmethods.hf.encoder_loading import load_encoder

        return load_encoder(
            folder, hf, dtype=_dtype_arg(dtype, "dtype", folder) or default_compute_dtype(),
            param_dtype=_dtype_arg(param_dtype, "param_dtype", folder), mesh=mesh, rules=rules,
            head=head, num_labels=num_labels, fresh_params=fresh_params,
            ignore_checkpoint_keys=ignore_checkpoint_keys, seed=seed, check_finite=check_finite,
            **config_overrides,
        )  # fmt: skip
    head = infer_head(hf, head, default="causal_lm", heads=HEADS)
    config_path = os.path.join(folder, "config.json")
    dtype = _dtype_arg(dtype, "dtype", folder) or default_compute_dtype()
    param_dtype = _dtype_arg(param_dtype, "param_dtype", folder) or dtype
    cfg = decoder_config_from_hf(
        hf, source=config_path, dtype=dtype, param_dtype=param_dtype, **config_overrides
    )
    if head == "causal_lm":
        build = lambda: DecoderLM(cfg, rngs=nnx.Rngs(seed))
    else:
        labels = _num_labels(hf, num_labels)
        build = lambda: SequenceClassifier(cfg, labels, rngs=nnx.Rngs(seed))
    graphdef, abstract_state = nnx.split(nnx.eval_shape(build))
    shardings = None
    if mesh is not None:
        from jaxmethods.train.sharding import param_shardings

        shardings = param_shardings(
            abstract_state, mesh, DECODER_SHARDING_RULES if rules is None else rules
        )

    if os.path.isfile(os.path.join(folder, FLAX_FILE)) and not any(
        f.endswith(".safetensors") for f in os.listdir(folder)
    ):
        msgpack_path = os.path.join(folder, FLAX_FILE)
        flat = read_flax_msgpack(msgpack_path, ignore_keys=ignore_checkpoint_keys)
        sources = {p: _ArraySource(a, k, msgpack_path) for p, (k, a) in flat.items()}
        flax_map = KeyMap(FLAX_KEY_MAP)

        def describe(path: str) -> str:
            return f"{_checkpoint_key(flax_map, path)!r} (parameter {path}) in {msgpack_path}"

        state = _fill_state(
            abstract_state, sources, shardings, cfg, fresh_params, seed, describe, check_finite
        )
    else:
        with SafetensorsCheckpoint(folder) as ckpt:
            torch_map = KeyMap(TORCH_KEY_MAPS[cfg.family])
            sources, _ = _map_checkpoint(ckpt, torch_map, cfg.family, ignore_checkpoint_keys)

            def describe(path: str) -> str:
                key = _checkpoint_key(torch_map, path)
                return f"{key!r} (parameter {path}) in {folder}/{{{', '.join(ckpt.files)}}}"

            state = _fill_state(
                abstract_state, sources, shardings, cfg, fresh_params, seed, describe, check_finite
            )
    return nnx.merge(graphdef, state)


def _fresh_value(path: str, leaf, cfg, seed: int) -> jax.Array:
    """Init of a parameter the checkpoint lacks: norms at identity, biases 0, matrices N(0, std)."""
    if path.endswith("/scale"):
        return (jnp.zeros if cfg.norm_plus_one else jnp.ones)(leaf.shape, leaf.dtype)
    if path.endswith("/bias"):
        return jnp.zeros(leaf.shape, leaf.dtype)
    key = jax.random.fold_in(jax.random.key(seed), zlib.crc32(path.encode()))
    return normal_init(key, cfg.initializer_range, shape=tuple(leaf.shape), dtype=leaf.dtype)


def _checkpoint_key(key_map: KeyMap, path: str) -> str:
    try:
        return key_map.to_checkpoint(path)[0]
    except KeyError:
        return path


def _map_checkpoint(
    ckpt: SafetensorsCheckpoint,
    key_map: KeyMap,
    family: str,
    ignore: Sequence[str],
    *,
    prefixes: Sequence[str] = (),
    known_unused: Sequence[str] = (),
) -> tuple[dict[str, Any], list[str]]:
    """({parameter path: LazyTensor}, skipped keys).

    Each key loses the first of `prefixes` it starts with (e.g. "bert.") before the lookup; keys
    matching the caller's `ignore` regexes, the decoders' derived buffers or `known_unused`
    (matched after the prefix is stripped) are skipped and returned. Unknown keys, and two keys
    that map to one parameter, raise, naming key and file.
    """
    sources, unknown, skipped, origin = {}, [], [], {}
    for key in ckpt.tensor_names():
        if is_ignored(key) or any(re.search(p, key) for p in ignore):
            continue
        bare = next((key[len(p) :] for p in prefixes if key.startswith(p)), key)
        if any(re.search(p, bare) for p in known_unused):
            skipped.append(key)
            continue
        mapped = key_map.to_param(bare)
        if mapped is None:
            unknown.append(f"{key!r} in {ckpt.file_of(key)}")
            continue
        path, transpose = mapped
        if path in sources:
            raise ValueError(
                f"checkpoint in {ckpt.folder!r}: tensors {origin[path]!r} and {key!r} both map "
                f"to parameter {path}"
            )
        origin[path] = key
        sources[path] = ckpt.tensor(key, transpose)
    if unknown:
        raise ValueError(
            f"checkpoint in {ckpt.folder!r} has {len(unknown)} unexpected tensor(s) with no "
            f"{family} parameter: {', '.join(unknown[:10])}"
        )
    return sources, skipped


def _dtype_arg(value: Any, name: str, source: str) -> str | None:
    """A dtype argument as its canonical name (None stays None), or a ValueError naming it."""
    if value is None or value == "":
        return None
    try:
        return dtype_name(value)
    except TypeError:
        raise ValueError(
            f"load_pretrained({source!r}): {name}={value!r} is not a dtype "
            '(pass a name such as "bfloat16", or jnp.bfloat16 / np.float32)'
        ) from None


def _read_checked(src, index, check_finite: bool) -> np.ndarray:
    """`src.read(index)`, refusing NaN/Inf values (naming the tensor and file) when asked."""
    arr = np.asarray(src.read(index))
    if check_finite and arr.dtype.kind not in "biu":  # floats, incl. ml_dtypes' bfloat16
        finite = np.isfinite(arr)
        if not finite.all():
            where = "" if index is None else " (in the slice read for one device)"
            raise ValueError(
                f"tensor {src.key!r} in {src.path} has {arr.size - np.count_nonzero(finite)} "
                f"non-finite value(s) (NaN/Inf){where}: the checkpoint is corrupt "
                "(check_finite=False loads it anyway)"
            )
    return arr


def _fill_state(
    abstract_state, sources, shardings, cfg, fresh_params, seed, describe_missing,
    check_finite=False,
):  # fmt: skip
    """Replaces every abstract leaf by its checkpoint tensor (cast, stacked, sharded).

    `describe_missing(path)` names the checkpoint key and file(s) a missing parameter needs;
    `check_finite` refuses NaN/Inf tensors as they are read.
    """
    leaves = {}
    jax.tree_util.tree_map_with_path(
        lambda p, x: leaves.setdefault(path_string(p), x), abstract_state
    )
    sharding_of = {}
    if shardings is not None:
        jax.tree_util.tree_map_with_path(
            lambda p, s: sharding_of.setdefault(path_string(p), s), shardings
        )

    tied_dup = sources.pop("lm_head/kernel", None) if cfg.tie_word_embeddings else None
    if tied_dup is not None and "model/embed_tokens/embedding" in sources:
        embed = sources["model/embed_tokens/embedding"].read()
        if not np.array_equal(tied_dup.read(), embed.T):
            raise ValueError(
                f"{tied_dup.file}: config says tie_word_embeddings=true but {tied_dup.key!r} "
                "differs from the embedding table"
            )

    plan, missing, bad_shape, fresh = {}, [], [], []
    for path, leaf in leaves.items():
        names = per_layer_paths(path, cfg) or [path]
        found = [sources.get(n) for n in names]
        absent = [n for n, s in zip(names, found) if s is None]
        if absent:
            if any(re.search(p, path) for p in fresh_params):
                fresh.append(path)
                continue
            missing.extend(absent)
            continue
        stacked = per_layer_paths(path, cfg) is not None
        want = tuple(leaf.shape[1:]) if stacked else tuple(leaf.shape)
        for src in found:
            if tuple(src.shape) != want:
                bad_shape.append(
                    f"{src.key!r} in {src.file}: shape {src.shape}, model expects {want}"
                )
        plan[path] = found
    used = {n for path in plan for n in (per_layer_paths(path, cfg) or [path])}
    unexpected = [f"{s.key!r} in {s.file}" for p, s in sources.items() if p not in used]
    problems = []
    if missing:
        named = ", ".join(describe_missing(p) for p in missing[:10])
        problems.append(f"missing tensor(s) {named} ({len(missing)} in all)")
    if unexpected:
        problems.append(f"unexpected tensor(s) {unexpected[:10]} ({len(unexpected)} in all)")
    if bad_shape:
        problems.append("shape mismatch: " + "; ".join(bad_shape[:10]))
    if problems:
        raise ValueError(
            f"checkpoint does not match the {cfg.family} model: " + " | ".join(problems)
        )

    fresh = set(fresh)

    def place(path, leaf):
        path = path_string(path)
        sharding = sharding_of.get(path)
        if path in fresh:
            value = _fresh_value(path, leaf, cfg, seed)
            return value if sharding is None else jax.device_put(value, sharding)
        srcs = plan[path]
        stacked = per_layer_paths(path, cfg) is not None

        def read(index=None):
            if stacked:
                index = index or (slice(None),)
                rows = srcs[index[0]]
                arr = np.stack(
                    [_read_checked(s, tuple(index[1:]) or None, check_finite) for s in rows]
                )
            else:
                arr = _read_checked(srcs[0], index, check_finite)
            return np.asarray(arr).astype(leaf.dtype)

        if sharding is None:
            return jax.device_put(read())
        return jax.make_array_from_callback(tuple(leaf.shape), sharding, read)

    return jax.tree_util.tree_map_with_path(place, abstract_state)
