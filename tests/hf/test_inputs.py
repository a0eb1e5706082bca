"""HF inputs: dtypes in every accepted spelling through load -> save -> load, missing local
paths, truncated safetensors files and NaN weights (`check_finite`)."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from flax import nnx
from hf_testing import fixture_path
from safetensors import safe_open
from safetensors.numpy import save_file

from jaxmethods.hf import load_pretrained, load_tokenizer, resolve_model_path, save_pretrained
from jaxmethods.hf.config import decoder_config_from_hf, read_config_json

# Every spelling of float32 / bfloat16 a user passes.
FLOAT32 = ["float32", jnp.float32, np.float32, np.dtype("float32"), jnp.dtype("float32")]
BFLOAT16 = ["bfloat16", jnp.bfloat16, ml_dtypes.bfloat16, jnp.dtype("bfloat16"), "torch.bfloat16"]


def _weights(model) -> dict[str, np.ndarray]:
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {"/".join(map(str, k)): np.asarray(v[...]).astype(np.float32) for k, v in flat}


@pytest.mark.parametrize("dtype", FLOAT32 + BFLOAT16, ids=repr)
def test_dtype_spellings_round_trip_load_save_load(dtype, tmp_path):
    """load(dtype) -> save() -> load(dtype): config.json holds the dtype's name, tensors keep it,
    and the reloaded weights equal the first load (issue: `_ScalarMeta` not JSON serializable)."""
    name = jnp.dtype(str(dtype).removeprefix("torch.") if isinstance(dtype, str) else dtype).name
    first = load_pretrained(fixture_path("llama"), dtype=dtype)
    assert first.config.dtype == name and first.config.param_dtype == name
    save_pretrained(first, tmp_path)  # a pathlib.Path is fine too
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["dtype"] == name
    with safe_open(str(tmp_path / "model.safetensors"), framework="np") as f:
        assert f.get_tensor("lm_head.weight").dtype == np.dtype(jnp.dtype(name))
    second = load_pretrained(tmp_path, dtype=dtype, param_dtype=dtype)
    assert second.config == first.config
    a, b = _weights(first), _weights(second)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_save_dtype_spellings_and_bad_dtype(tmp_path):
    model = load_pretrained(fixture_path("qwen2"), dtype=np.float32)
    for i, dtype in enumerate([jnp.bfloat16, np.dtype("float16"), "float32"]):
        save_pretrained(model, tmp_path / str(i), dtype=dtype)
        cfg = read_config_json(str(tmp_path / str(i)))
        assert cfg["dtype"] == jnp.dtype(dtype).name
        # The checkpoint's dtype becomes the default of both dtypes on the next load.
        parsed = decoder_config_from_hf(cfg)
        assert parsed.dtype == parsed.param_dtype == jnp.dtype(dtype).name
    with pytest.raises(ValueError, match=r"dtype='bf16' is not a dtype"):
        save_pretrained(model, tmp_path / "bad", dtype="bf16")
    with pytest.raises(ValueError, match=r"qwen2'\): param_dtype='fp8' is not a dtype"):
        load_pretrained(fixture_path("qwen2"), dtype="float32", param_dtype="fp8")


def test_decoder_config_stores_dtype_names(tmp_path):
    """A model built from `DecoderConfig(dtype=jnp.bfloat16, ...)` saves (its config is JSON)."""
    from jaxmethods.models import DecoderConfig, DecoderLM

    cfg = DecoderConfig.tiny(
        vocab_size=64, dtype=jnp.bfloat16, param_dtype=np.float32, logits_dtype=np.dtype("float32")
    )
    assert (cfg.dtype, cfg.param_dtype, cfg.logits_dtype) == ("bfloat16", "float32", "float32")
    assert cfg == DecoderConfig.tiny(vocab_size=64, dtype="bfloat16") and hash(cfg)
    json.dumps(dataclasses.asdict(cfg))
    model = DecoderLM(cfg, rngs=nnx.Rngs(0))
    save_pretrained(model, tmp_path)
    back = load_pretrained(tmp_path, dtype=jnp.bfloat16, param_dtype=jnp.float32)
    assert back.config.dtype == "bfloat16" and back.config.param_dtype == "float32"
    for k, v in _weights(model).items():
        np.testing.assert_array_equal(v, _weights(back)[k], err_msg=k)
    with pytest.raises(ValueError, match=r"DecoderConfig.param_dtype: 'bf16' is not a dtype"):
        DecoderConfig.tiny(param_dtype="bf16")


@pytest.mark.parametrize(
    "path", ["./no/such/model", "/no/such/model", "no/such/model", "~/no_such_model", "models\\x"]
)
def test_missing_local_path_is_not_a_hub_id(path, monkeypatch):
    import huggingface_hub

    def no_hub(*args, **kwargs):
        raise AssertionError("a path-like argument must not reach the hub")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_hub)
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        load_pretrained(path)
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        resolve_model_path(pathlib.Path("no_such_folder"))  # a Path object is always local
    with pytest.raises(FileNotFoundError, match=r"tokenizer folder .* does not exist"):
        load_tokenizer(path)


def test_home_relative_folder_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copytree(fixture_path("llama"), tmp_path / "models" / "llama")
    assert resolve_model_path("~/models/llama") == str(tmp_path / "models" / "llama")


def test_hub_ids_still_go_to_the_hub(monkeypatch):
    import huggingface_hub

    seen = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None):
        seen.append(repo_id)
        return fixture_path("llama")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    for hub_id in ("meta-llama/Llama-3.2-1B", "gpt2"):
        assert resolve_model_path(hub_id) == fixture_path("llama")
    assert seen == ["meta-llama/Llama-3.2-1B", "gpt2"]


def test_failed_hub_lookup_also_says_the_local_path_is_missing(monkeypatch):
    import huggingface_hub

    def offline(repo_id, revision=None, allow_patterns=None):
        raise ConnectionError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(OSError, match=r"'runs/model' is not a local folder .* hub: offline"):
        load_pretrained("runs/model")  # one "/": a hub id or a folder, so both are reported


@pytest.mark.parametrize("keep", [4, 100, 0.5, -10], ids=["4B", "100B", "half", "last10B"])
def test_truncated_safetensors_names_its_path(keep, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(fixture_path("llama"), folder)
    path = folder / "model.safetensors"
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path.write_bytes(data[:n])
    with pytest.raises(ValueError, match=rf"{path}: not a readable safetensors file \({n} bytes"):
        load_pretrained(folder, dtype="float32")


def _with_nan(tmp_path, key: str, dtype=np.float32) -> pathlib.Path:
    folder = tmp_path / "nan"
    shutil.copytree(fixture_path("llama"), folder)
    path = os.path.join(folder, "model.safetensors")
    with safe_open(path, framework="np") as f:
        tensors = {k: f.get_tensor(k).astype(dtype) for k in sorted(f.keys())}
    tensors[key] = tensors[key].copy()
    tensors[key].flat[[3, 7]] = [np.nan, np.inf]
    save_file(tensors, path, {"format": "pt"})
    return folder


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16], ids=["fp32", "bf16"])
def test_check_finite_names_the_tensor_and_file(dtype, tmp_path):
    key = "model.layers.1.self_attn.k_proj.weight"
    folder = _with_nan(tmp_path, key, dtype)
    model = load_pretrained(folder, dtype="float32")  # off by default: loads silently
    assert not np.isfinite(np.asarray(model.model.layers[1].self_attn.k_proj.kernel[...])).all()
    with pytest.raises(ValueError, match=rf"tensor '{key}' in {folder}/model\.safetensors has 2 "):
        load_pretrained(folder, dtype="float32", check_finite=True)
    # A stacked (scan_layers) parameter reads every layer's tensor: still named.
    with pytest.raises(ValueError, match=rf"'{key}'.*non-finite"):
        load_pretrained(folder, dtype="float32", check_finite=True, scan_layers=True)


def test_check_finite_passes_a_clean_checkpoint():
    a = load_pretrained(fixture_path("gemma"), dtype="float32", check_finite=True)
    b = load_pretrained(fixture_path("gemma"), dtype="float32")
    for k, v in _weights(a).items():
        np.testing.assert_array_equal(v, _weights(b)[k], err_msg=k)


def test_check_finite_on_a_mesh_reads_each_device_slice(tmp_path):
    """Sharded loading reads per-device slices; the slice holding the NaN names the tensor."""
    import jax

    from jaxmethods.train.mesh import make_mesh

    if len(jax.devices()) < 4:
        pytest.skip("needs 4 (fake) devices")
    mesh = make_mesh({"fsdp": 2, "tensor": 2}, devices=jax.devices()[:4])
    key = "model.layers.0.mlp.down_proj.weight"
    folder = _with_nan(tmp_path, key)
    with pytest.raises(ValueError, match=rf"'{key}'.*non-finite.*slice read for one device"):
        load_pretrained(folder, dtype="float32", mesh=mesh, check_finite=True)
    model = load_pretrained(_with_nan(tmp_path / "b", "lm_head.weight"), dtype="float32", mesh=mesh)
    assert len(model.lm_head.kernel[...].sharding.device_set) == 4
