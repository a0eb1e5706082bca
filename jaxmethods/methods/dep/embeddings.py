"""Per-user review embeddings: the extractor (shared `TextEncoder`) and the readers.

The authors' `embedding.py` encodes, per test-split user, the profile texts sorted by timestamp
(ascending) followed by the test target text, with bge-m3 (CLS of the last hidden state,
L2-normalised, 1024-d), and saves `[len(profile) + 1, 1024]` to `embeddings/<cat>/<user>.emb`
(`torch.save`). Only the review text is embedded.

Ours writes `<folder>/<category>/<user_id>.safetensors` (tensor `embeddings`, float32). Texts of
all users go through one `TextEncoder.embed` call: length-bucketed, jitted once per bucket and
sharded over the encoder's mesh. `EmbeddingStore` reads ours, or the authors' `.emb` files with
`torch.load(..., weights_only=True)` (the `torch` extra), and checks the dimension.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxmethods.methods.dep.data import Sample

TENSOR = "embeddings"


def user_texts(sample: Sample) -> list[str]:
    """Profile texts in timestamp order (stable), then the sample's target text."""
    profile = sorted(sample.profile, key=lambda r: r["timestamp"])
    return [r["text"] for r in profile] + [sample.target["text"]]


def embedding_path(folder: str, sample: Sample, suffix: str = ".safetensors") -> str:
    return os.path.join(folder, sample.category, f"{sample.user_id}{suffix}")


def extract_embeddings(
    encoder: Any, samples: Sequence[Sample], folder: str, *, batch_size: int = 512
) -> list[str]:
    """Embeds every sample's `user_texts` with `encoder.embed` and writes one safetensors file
    per user; returns the paths. `encoder` is a `TextEncoder` (CLS + L2 norm for bge-m3)."""
    from safetensors.numpy import save_file

    texts, spans = [], []
    for s in samples:
        t = user_texts(s)
        spans.append((len(texts), len(texts) + len(t)))
        texts.extend(t)
    vecs = np.asarray(encoder.embed(texts, batch_size=batch_size), np.float32)
    paths = []
    for s, (a, b) in zip(samples, spans, strict=True):
        path = embedding_path(folder, s)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        save_file({TENSOR: np.ascontiguousarray(vecs[a:b])}, tmp)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def read_embedding_file(path: str, dim: int | None = None) -> np.ndarray:
    """[N, D] float32 from a `.safetensors` (ours) or `.emb` (the authors', needs torch) file;
    ValueError naming the file and both shapes when D != `dim`."""
    if path.endswith(".emb"):
        try:
            import torch
        except ImportError:
            raise ImportError(
                f"{path}: reading the authors' .emb files needs torch "
                "(pip install 'jaxmethods[torch]'), or re-extract with extract_embeddings"
            ) from None
        emb = torch.load(path, map_location="cpu", weights_only=True).float().numpy()
    else:
        from safetensors.numpy import load_file

        tensors = load_file(path)
        if TENSOR not in tensors:
            raise ValueError(f"{path}: no tensor {TENSOR!r} (has {sorted(tensors)})")
        emb = tensors[TENSOR].astype(np.float32)
    if emb.ndim != 2:
        raise ValueError(f"{path}: expected [rows, dim] embeddings, got shape {emb.shape}")
    if dim is not None and emb.shape[1] != dim:
        raise ValueError(
            f"{path}: embeddings of shape {tuple(emb.shape)} have dimension {emb.shape[1]}, "
            f"the encoder's is {dim} (expected shape ({emb.shape[0]}, {dim}))"
        )
    return emb


class EmbeddingStore:
    """`store(sample) -> [rows, dim]` from `<folder>/<category>/<user_id>.safetensors`, else
    `.emb`; cached per user. `dim` is the encoder's size (1024 for bge-m3)."""

    def __init__(self, folder: str, dim: int | None = None):
        self.folder, self.dim = folder, dim
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, sample: Sample) -> np.ndarray:
        if sample.key not in self._cache:
            path = embedding_path(self.folder, sample)
            if not os.path.exists(path):
                alt = embedding_path(self.folder, sample, ".emb")
                if not os.path.exists(alt):
                    raise FileNotFoundError(f"{path} (or .emb): no embeddings for {sample.key}")
                path = alt
            self._cache[sample.key] = read_embedding_file(path, self.dim)
        return self._cache[sample.key]
