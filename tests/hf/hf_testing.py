"""Shared helpers for the HF interop tests: fixture paths, reference batches, jitted forwards."""

from __future__ import annotations

import os

import jax
import numpy as np
from flax import nnx

FIXTURE_DIR = os.path.join(os.path.dirname(__file__), "..", "data", "hf")
CAUSAL_FIXTURES = ("llama", "llama3", "qwen2", "qwen2_sliding", "mistral", "gemma")
TOL = dict(atol=1e-4, rtol=1e-4)


def fixture_path(name: str) -> str:
    return os.path.join(FIXTURE_DIR, name)


def reference(name: str) -> dict[str, np.ndarray]:
    with np.load(os.path.join(fixture_path(name), "reference.npz")) as f:
        return {k: f[k] for k in f.files}


def forward(model, input_ids, attention_mask) -> np.ndarray:
    """Eager forward: the op-by-op compile cache is shared by all the same-shaped tiny models, which
    is cheaper here than one whole-model jit per fixture."""
    return np.asarray(model(np.asarray(input_ids, np.int32), np.asarray(attention_mask)))


def jit_forward(model, input_ids, attention_mask) -> np.ndarray:
    """One jitted forward through split/merge (the pattern train steps use)."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, ids, mask):
        return nnx.merge(graphdef, state)(ids, mask)

    return np.asarray(run(state, np.asarray(input_ids, np.int32), np.asarray(attention_mask)))


def valid(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Rows of [B, T, ...] at real-token positions (left-pad query rows are meaningless)."""
    return array[np.asarray(mask).astype(bool)]
