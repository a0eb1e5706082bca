"""Vision checkpoint loading: config parsing against `transformers.AutoConfig`, strict key
accounting, and the clear "weights missing" path that lets callers skip CLIP / DINO metrics."""

from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jaxmethods.hf.vision_config import (
    VISION_HF_DEFAULTS,
    clip_config_from_hf,
    vit_config_from_hf,
)
from jaxmethods.hf.vision_loading import (
    VisionWeightsMissing,
    load_vision_model,
    try_load_vision_model,
)

pytestmark = pytest.mark.hf_parity

VISION_DIR = os.path.join(os.path.dirname(__file__), "..", "data", "hf", "vision")


def test_defaults_match_autoconfig():
    """An absent field means what transformers' config classes default it to."""
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig, Dinov2Config

    for model_type, cls in (("clip_text_model", CLIPTextConfig),
                            ("clip_vision_model", CLIPVisionConfig), ("clip", CLIPConfig),
                            ("dinov2", Dinov2Config)):  # fmt: skip
        hf = cls()
        for key, value in VISION_HF_DEFAULTS[model_type].items():
            assert getattr(hf, key) == value, (model_type, key)


@pytest.mark.parametrize("name", ("clip", "dinov2", "dinov2_swiglu"))
def test_configs_match_autoconfig_on_fixtures(name):
    from transformers import AutoConfig

    folder = os.path.join(VISION_DIR, name)
    hf = AutoConfig.from_pretrained(folder)
    with open(os.path.join(folder, "config.json")) as f:
        raw = json.load(f)
    if name == "clip":
        ours = clip_config_from_hf(raw)
        t, v = hf.text_config, hf.vision_config
        assert (ours.text.vocab_size, ours.text.hidden_size, ours.text.num_layers,
                ours.text.eos_token_id, ours.text.max_position_embeddings) == (
                t.vocab_size, t.hidden_size, t.num_hidden_layers, t.eos_token_id,
                t.max_position_embeddings)  # fmt: skip
        assert (ours.vision.image_size, ours.vision.patch_size, ours.vision.intermediate_size,
                ours.projection_dim) == (v.image_size, v.patch_size, v.intermediate_size,
                hf.projection_dim)  # fmt: skip
    else:
        ours = vit_config_from_hf(raw, family="dinov2")
        assert ours.intermediate_size == int(hf.hidden_size * hf.mlp_ratio)
        assert (ours.layerscale_value, ours.use_swiglu_ffn, ours.layer_norm_eps) == (
            hf.layerscale_value, hf.use_swiglu_ffn, hf.layer_norm_eps)  # fmt: skip


def test_old_openai_config_dict_fields_take_precedence():
    raw = {"model_type": "clip", "text_config": {"hidden_size": 64},
           "text_config_dict": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                "num_attention_heads": 4},
           "vision_config_dict": {"hidden_size": 32, "intermediate_size": 64,
                                  "num_hidden_layers": 1, "num_attention_heads": 4,
                                  "image_size": 32, "patch_size": 8}}  # fmt: skip
    cfg = clip_config_from_hf(raw)
    assert cfg.text.hidden_size == 32 and cfg.vision.patch_size == 8 and cfg.projection_dim == 512


def test_missing_weights_name_the_path(tmp_path, caplog):
    missing = str(tmp_path / "no-clip-here")
    with pytest.raises(VisionWeightsMissing, match="no-clip-here"):
        load_vision_model(missing)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text('{"model_type": "clip"}')
    with pytest.raises(VisionWeightsMissing, match=r"config.json and \*.safetensors"):
        load_vision_model(str(tmp_path / "empty"))
    with caplog.at_level(logging.WARNING):
        assert try_load_vision_model(missing, "CLIP score") is None
        assert try_load_vision_model(None, "DINO similarity") is None
    assert "CLIP score skipped" in caplog.text and "no-clip-here" in caplog.text
    assert "DINO similarity skipped" in caplog.text


def test_unknown_and_missing_tensors_are_errors(tmp_path):
    src = os.path.join(VISION_DIR, "dinov2")
    folder = tmp_path / "model"
    shutil.copytree(src, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    extra = dict(tensors, **{"encoder.layer.0.surprise.weight": np.zeros(3, np.float32)})
    save_file(extra, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="surprise"):
        load_vision_model(str(folder), "float32")
    del tensors["encoder.layer.1.layer_scale2.lambda1"]
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=r"encoder\.layer\.1\.layer_scale2\.lambda1"):
        load_vision_model(str(folder), "float32")
