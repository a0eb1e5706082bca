"""`TextEncoder`: texts -> sentence embeddings [N, D] with an HF encoder (bge-m3, Contriever, DPR).

    enc = TextEncoder.from_pretrained("BAAI/bge-m3", dtype=jnp.bfloat16, mesh=mesh)
    vecs = enc.embed(passages, batch_size=64)     # np.ndarray [N, enc.dim] float32, input order

`embed` tokenizes once, sorts texts by length, and pads each batch to a length bucket (powers of
two from 16 up to `max_length`) and to a fixed batch size, so one program is compiled per bucket
and reused (`trace_count` counts traces). With a mesh the batch is split over its data axes
(`jaxmethods.train.mesh.data_sharding`); batches are dispatched asynchronously and read back once.

Known defaults (`KNOWN_DEFAULTS`, matched on the hub id / folder name, then the model type):
  BAAI/bge-m3           CLS pooling, L2-normalised, max_length 8192 (dense retrieval vector)
  facebook/contriever*  mean pooling, not normalised, 512
  DPR (model_type dpr)  CLS hidden state (DPR's pooler_output with projection_dim 0), 512
Otherwise a sentence-transformers `1_Pooling/config.json` / `modules.json` in the folder decides
(CLS / mean / last token, Normalize module), else CLS without normalisation.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from jaxmethods.models.pooling import POOLINGS, l2_normalize, pool

log = logging.getLogger(__name__)

MIN_BUCKET = 16


@dataclass(frozen=True)
class EmbedDefaults:
    pooling: str
    normalize: bool
    max_length: int | None = None


# Name fragment (lower case) -> defaults, first match wins.
KNOWN_DEFAULTS: tuple[tuple[str, EmbedDefaults], ...] = (
    ("bge-m3", EmbedDefaults("cls", True, 8192)),
    ("contriever", EmbedDefaults("mean", False, 512)),
    ("dpr-", EmbedDefaults("cls", False, 512)),
)
_MODEL_TYPE_DEFAULTS = {"dpr": EmbedDefaults("cls", False, 512)}


def length_buckets(max_length: int, min_bucket: int = MIN_BUCKET) -> tuple[int, ...]:
    """Powers of two from `min_bucket` below `max_length`, then `max_length` itself."""
    buckets, b = [], min_bucket
    while b < max_length:
        buckets.append(b)
        b *= 2
    return (*buckets, max_length)


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    for b in buckets:
        if length <= b:
            return b
    raise ValueError(f"sequence of {length} tokens exceeds the largest bucket {buckets[-1]}")


def run_bucketed(
    fn: Callable[[jax.Array, jax.Array], jax.Array],
    token_ids: Sequence[Sequence[int]],
    *,
    batch_size: int,
    buckets: Sequence[int],
    pad_id: int,
    sharding: Any = None,
) -> np.ndarray:
    """`fn(ids [B, L] int32, mask [B, L] int32) -> [B, ...]` over length-sorted, bucket-padded
    batches of `token_ids`; rows come back in the input order as one NumPy array [N, ...].

    Every batch has exactly `batch_size` rows (short batches are padded with empty rows) so each
    bucket compiles once; `sharding` (e.g. a data-axis NamedSharding) places the batch.
    """
    n = len(token_ids)
    order = sorted(range(n), key=lambda i: -len(token_ids[i]))
    outs = []
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size]
        width = bucket_for(max(1, *(len(token_ids[i]) for i in rows)), buckets)
        ids = np.full((batch_size, width), pad_id, np.int32)
        mask = np.zeros((batch_size, width), np.int32)
        for r, i in enumerate(rows):
            ids[r, : len(token_ids[i])] = token_ids[i]
            mask[r, : len(token_ids[i])] = 1
        if sharding is not None:
            ids, mask = jax.device_put(ids, sharding), jax.device_put(mask, sharding)
        outs.append((rows, fn(ids, mask)))  # dispatched asynchronously; read back below
    if not outs:
        return np.zeros((0,), np.float32)
    first = np.asarray(outs[0][1])
    result = np.zeros((n, *first.shape[1:]), first.dtype)
    for rows, value in outs:
        result[rows] = np.asarray(value)[: len(rows)]
    return result


class TextEncoder:
    """Model + tokenizer + pooling: `embed(texts, batch_size) -> [N, dim]` float32.

    Args:
      model: an `EncoderModel` (or any module with `model(ids, mask) -> [B, T, H]`).
      tokenizer: its HF tokenizer.
      pooling: "cls", "mean" or "last" (see `jaxmethods.models.pooling`), or "pooler" for the
        BERT pooler output (tanh(W h_cls + b)).
      normalize: L2-normalise the embeddings.
      max_length: truncation length in tokens (special tokens included).
      mesh: shard each batch over the mesh's data axes (the model is placed by the loader).
      query_prefix / passage_prefix: prepended by `embed_queries` / `embed_passages`
        (e.g. E5's "query: "; bge-m3 needs none).
    """

    def __init__(
        self,
        model: nnx.Module,
        tokenizer: Any,
        *,
        pooling: str = "cls",
        normalize: bool = False,
        max_length: int = 512,
        mesh: Mesh | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
    ):
        if pooling not in (*POOLINGS, "pooler"):
            raise ValueError(
                f"TextEncoder: pooling {pooling!r} is not one of {POOLINGS} or 'pooler'"
            )
        if pooling == "pooler" and getattr(model, "pooler", None) is None:
            raise ValueError("TextEncoder: pooling='pooler' but the model has no pooler weights")
        limit = getattr(getattr(model, "config", None), "max_tokens", None)
        if limit is not None and max_length > limit:
            raise ValueError(
                f"TextEncoder: max_length={max_length} exceeds the model's {limit} positions"
            )
        self.model, self.tokenizer, self.mesh = model, tokenizer, mesh
        self.pooling, self.normalize, self.max_length = pooling, normalize, int(max_length)
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix
        self.buckets = length_buckets(self.max_length)
        self.trace_count = 0  # number of traces (= compilations) of the batch forward
        self._graphdef, self._state = nnx.split(model)
        self._forward = jax.jit(self._embed_batch)
        self._dim: int | None = None

    def _embed_batch(self, state, ids, mask):
        self.trace_count += 1  # Python side effect: runs once per trace, never per call
        model = nnx.merge(self._graphdef, state)
        hidden = model(ids, mask)
        if self.pooling == "pooler":
            out = model.pooled_from_hidden(hidden).astype(jnp.float32)
            return l2_normalize(out) if self.normalize else out
        return pool(hidden, mask, self.pooling, normalize=self.normalize)

    @property
    def dim(self) -> int:
        """Embedding size D."""
        if self._dim is None:
            config = getattr(self.model, "config", None)
            self._dim = int(config.hidden_size)
        return self._dim

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text (special tokens added, truncated at `max_length`)."""
        if isinstance(texts, str):
            raise TypeError("TextEncoder: pass a sequence of texts, not a single string")
        if not texts:
            return []
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, padding=False
        )
        return enc["input_ids"]

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embeddings [N, dim] float32 of `texts`, in input order."""
        if batch_size <= 0:
            raise ValueError(f"TextEncoder.embed: batch_size must be positive, got {batch_size}")
        sharding, multiple = None, 1
        if self.mesh is not None:
            from jaxmethods.train.mesh import batch_size_multiple, data_sharding

            multiple = batch_size_multiple(self.mesh)
            batch_size = -(-batch_size // multiple) * multiple
            sharding = data_sharding(self.mesh)
        ids = self.tokenize(texts)
        if not ids:
            return np.zeros((0, self.dim), np.float32)
        fn = functools.partial(self._forward, self._state)
        rows = batch_rows(len(ids), batch_size, 1 if self.mesh is None else multiple)
        return run_bucketed(
            fn, ids, batch_size=rows, buckets=self.buckets, pad_id=self.tokenizer.pad_token_id,
            sharding=sharding,
        )  # fmt: skip

    def embed_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self.embed([self.query_prefix + t for t in texts], batch_size)

    def embed_passages(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self.embed([self.passage_prefix + t for t in texts], batch_size)

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | os.PathLike,
        *,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        dtype: Any = None,
        mesh: Mesh | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
        revision: str | None = None,
        **load_kwargs: Any,
    ) -> TextEncoder:
        """Loads the encoder (`jaxmethods.hf.load_pretrained`) and its tokenizer; pooling,
        normalize and max_length default to the model's known settings (module docstring)."""
        from jaxmethods.hf import load_pretrained, load_tokenizer, resolve_model_path

        folder = resolve_model_path(path_or_id, revision)
        model = load_pretrained(folder, dtype, mesh=mesh, head="encoder", **load_kwargs)
        tokenizer = load_tokenizer(folder)
        defaults = embed_defaults(os.fspath(path_or_id), folder)
        limit = model.config.max_tokens
        tok_limit = getattr(tokenizer, "model_max_length", None)
        if max_length is None:
            max_length = defaults.max_length or limit
            if tok_limit is not None and tok_limit < max_length:
                max_length = int(tok_limit)
            max_length = min(max_length, limit)
        log.info(
            "TextEncoder %s: pooling=%s normalize=%s max_length=%d",
            path_or_id,
            pooling or defaults.pooling,
            defaults.normalize if normalize is None else normalize,
            max_length,
        )
        return cls(
            model, tokenizer, pooling=pooling or defaults.pooling,
            normalize=defaults.normalize if normalize is None else normalize,
            max_length=max_length, mesh=mesh, query_prefix=query_prefix,
            passage_prefix=passage_prefix,
        )  # fmt: skip


def batch_rows(n: int, batch_size: int, multiple: int = 1) -> int:
    """Rows per padded batch: `batch_size`, or for fewer texts the next power of two >= n (a
    bounded set of shapes), rounded up to a multiple of the mesh's batch axes."""
    rows = batch_size if n >= batch_size else min(batch_size, 1 << max(n - 1, 0).bit_length())
    return -(-rows // multiple) * multiple


def embed_defaults(name: str, folder: str) -> EmbedDefaults:
    """Pooling / normalisation / length defaults for a model name and its local folder."""
    lowered = name.lower().rstrip("/")
    for fragment, defaults in KNOWN_DEFAULTS:
        if fragment in lowered:
            return defaults
    config_path = os.path.join(folder, "config.json")
    with open(config_path) as f:
        model_type = json.load(f).get("model_type")
    if model_type in _MODEL_TYPE_DEFAULTS:
        return _MODEL_TYPE_DEFAULTS[model_type]
    st = _sentence_transformers_defaults(folder)
    return st if st is not None else EmbedDefaults("cls", False, None)


def _sentence_transformers_defaults(folder: str) -> EmbedDefaults | None:
    path = os.path.join(folder, "1_Pooling", "config.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        cfg = json.load(f)
    if cfg.get("pooling_mode_cls_token"):
        kind = "cls"
    elif cfg.get("pooling_mode_mean_tokens"):
        kind = "mean"
    elif cfg.get("pooling_mode_lasttoken"):
        kind = "last"
    else:
        raise ValueError(f"{path}: pooling mode not supported (cls, mean or lasttoken)")
    normalize = False
    modules = os.path.join(folder, "modules.json")
    if os.path.isfile(modules):
        with open(modules) as f:
            normalize = any("Normalize" in m.get("type", "") for m in json.load(f))
    length = None
    st_cfg = os.path.join(folder, "sentence_bert_config.json")
    if os.path.isfile(st_cfg):
        with open(st_cfg) as f:
            length = json.load(f).get("max_seq_length")
    return EmbedDefaults(kind, normalize, length)
