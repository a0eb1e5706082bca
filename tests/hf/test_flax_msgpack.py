"""HF Flax `flax_model.msgpack` checkpoints (FlaxLlama/FlaxMistral/FlaxGemma layout)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from flax.serialization import msgpack_serialize
from hf_testing import TOL, fixture_path, forward, reference, valid
from safetensors import safe_open

from jaxmethods.hf import load_pretrained
from jaxmethods.hf.flax_msgpack import read_flax_msgpack


def _hf_flax_tree(torch_tensors: dict[str, np.ndarray]) -> dict:
    """The linen param tree transformers' Flax port held, written out by hand from torch names:
    nn.Dense kernels are [in, out] (torch weight transposed), nn.Embed is `embedding`, RMSNorm
    keeps `weight`, layers are named "0", "1", ... under model/layers."""
    tree: dict = {}
    for key, value in torch_tensors.items():
        parts = key.split(".")
        if parts[-1] == "weight" and value.ndim == 2:
            if parts[-2] == "embed_tokens":
                parts[-1], value = "embedding", value
            else:
                parts[-1], value = "kernel", value.T
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = np.ascontiguousarray(value)
    return tree


@pytest.mark.parametrize("name", [pytest.param("llama", marks=pytest.mark.slow), "gemma"])
def test_msgpack_checkpoint_matches_transformers_logits(name, tmp_path):
    src = fixture_path(name)
    with safe_open(os.path.join(src, "model.safetensors"), framework="np") as f:
        tensors = {k: f.get_tensor(k) for k in sorted(f.keys())}
    shutil.copy(os.path.join(src, "config.json"), tmp_path / "config.json")
    with open(tmp_path / "flax_model.msgpack", "wb") as f:
        f.write(msgpack_serialize(_hf_flax_tree(tensors)))
    ref = reference(name)
    model = load_pretrained(str(tmp_path), dtype="float32")
    ours = forward(model, ref["input_ids"], ref["attention_mask"])
    mask = ref["attention_mask"]
    np.testing.assert_allclose(valid(ours, mask), valid(ref["outputs"], mask), **TOL)


def test_msgpack_base_model_tree_and_unknown_keys(tmp_path):
    tree = {
        "embed_tokens": {"embedding": np.zeros((4, 2), np.float32)},
        "norm": {"weight": np.ones(2, np.float32)},
    }
    path = tmp_path / "flax_model.msgpack"
    path.write_bytes(msgpack_serialize(tree))
    flat = read_flax_msgpack(str(path))
    assert set(flat) == {"model/embed_tokens/embedding", "model/norm/scale"}
    tree["rotary"] = {"sin": np.zeros(3, np.float32)}
    path.write_bytes(msgpack_serialize(tree))
    with pytest.raises(ValueError, match=r"flax_model\.msgpack.*unexpected.*model/rotary/sin"):
        read_flax_msgpack(str(path))
