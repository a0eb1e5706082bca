"""Our CLIP / DINOv2 ports vs PyTorch transformers (fp32, 1e-4) on committed tiny fixtures
(tests/data/hf/vision, built by make_vision_fixtures.py), including the bicubic position
interpolation at a non-pretraining image size, plus a live comparison against freshly built
transformers models when torch is installed."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest
from flax import nnx
from hf_testing import TOL
from make_vision_fixtures import reference_inputs

from jaxmethods.hf.vision_loading import load_vision_model
from jaxmethods.models.vision import CLIPModel, ViT
from jaxmethods.models.vision.resize import torch_bicubic_matrix

pytestmark = pytest.mark.hf_parity

VISION_DIR = os.path.join(os.path.dirname(__file__), "..", "data", "hf", "vision")


def vision_reference(name: str) -> dict[str, np.ndarray]:
    """The stored outputs plus the inputs, regenerated (seeded NumPy) rather than stored."""
    with np.load(os.path.join(VISION_DIR, name, "reference.npz")) as f:
        ref = {k: f[k] for k in f.files}
    images, other = reference_inputs()
    if "pixel_values" in ref:
        np.testing.assert_array_equal(ref["pixel_values"], images)
    return dict(ref, pixel_values=images, other_pixel_values=other)


def dino_outputs(model: ViT, ref: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Both image sizes in one jitted program (one compilation per fixture)."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, images, other):
        m = nnx.merge(graphdef, state)
        hidden, pooled = m(images)
        return dict(
            last_hidden_state=hidden, pooler_output=pooled, other_last_hidden_state=m(other)[0]
        )

    out = run(state, ref["pixel_values"], ref["other_pixel_values"])
    return {k: np.asarray(v) for k, v in out.items()}


def clip_outputs(
    model: CLIPModel, ref: dict[str, np.ndarray], other: bool = True
) -> dict[str, np.ndarray]:
    """Every CLIP output in one jitted program; `other` adds the 48x40 interpolated run."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, images, ids, mask, other_images):
        m = nnx.merge(graphdef, state)
        v_hidden, v_pooled = m.vision_model(images)
        t_hidden, t_pooled = m.text_model(ids, mask)
        out = dict(
            vision_last_hidden_state=v_hidden, vision_pooler_output=v_pooled,
            text_last_hidden_state=t_hidden, text_pooler_output=t_pooled,
            image_embeds=m.image_features(images), text_embeds=m.text_features(ids, mask),
            logits_per_image=m(images, ids, mask),
        )  # fmt: skip
        if other_images is not None:
            out["other_vision_pooler_output"] = m.vision_model.pooled(
                other_images, interpolate_pos_encoding=True
            )
        return out

    ids = np.asarray(ref["input_ids"], np.int32)
    extra = ref["other_pixel_values"] if other else None
    out = run(state, ref["pixel_values"], ids, ref["attention_mask"], extra)
    return {k: np.asarray(v) for k, v in out.items()}


def _compare(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    for key, value in ours.items():
        assert value.shape == ref[key].shape, key
        np.testing.assert_allclose(value, ref[key], **TOL, err_msg=key)


@pytest.mark.parametrize("name", ["dinov2", pytest.param("dinov2_swiglu", marks=pytest.mark.slow)])
def test_dinov2_matches_transformers_fixture(name):
    ref = vision_reference(name)
    model = load_vision_model(os.path.join(VISION_DIR, name), "float32")
    assert isinstance(model, ViT) and model.config.use_swiglu_ffn == (name == "dinov2_swiglu")
    assert ref["other_last_hidden_state"].shape[1] == 1 + 6 * 5  # 48x40 in 8-px patches
    _compare(dino_outputs(model, ref), ref)


@pytest.mark.parametrize("other", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_clip_matches_transformers_fixture(other):
    """`other`: also the 48x40 input with interpolated positions (the DINOv2 test covers the
    same resizing code in the fast suite)."""
    ref = vision_reference("clip")
    model = load_vision_model(os.path.join(VISION_DIR, "clip"), "float32")
    assert isinstance(model, CLIPModel)
    assert model.config.projection_dim == 24 and model.config.text.eos_token_id == 63
    _compare(clip_outputs(model, ref, other), ref)
    with pytest.raises(ValueError, match=r"48\*40.*interpolate_pos_encoding=True"):
        model.vision_model(np.zeros((1, 48, 40, 3), np.float32))  # HF refuses it too


def test_bicubic_matrix_is_identity_at_equal_size_and_reproduces_constants():
    np.testing.assert_allclose(torch_bicubic_matrix(4, 4), np.eye(4), atol=1e-12)
    for n_in, n_out in ((4, 6), (4, 3), (37, 16)):
        # Keys' kernel weights sum to one at every tap position (border clamping keeps it)
        np.testing.assert_allclose(torch_bicubic_matrix(n_in, n_out).sum(1), 1.0, atol=1e-12)


@pytest.mark.parametrize("name", ("clip", "dinov2"))
def test_live_parity_with_fresh_transformers_model(name, tmp_path):
    torch = pytest.importorskip("torch")
    from make_vision_fixtures import build_hf_vision, hf_vision_outputs

    hf_model = build_hf_vision(name, seed=7)
    hf_model.save_pretrained(tmp_path, safe_serialization=True)
    images, other = reference_inputs()
    ref = dict(hf_vision_outputs(name, hf_model), pixel_values=images, other_pixel_values=other)
    model = load_vision_model(str(tmp_path), "float32")
    _compare((clip_outputs if name == "clip" else dino_outputs)(model, ref), ref)
    # the bicubic resampling matrix against torch's own interpolate, down and up
    for n_in, n_out in ((4, 6), (6, 4), (37, 16)):
        x = torch.randn(1, 1, n_in, 3, dtype=torch.float64)
        want = torch.nn.functional.interpolate(x, size=(n_out, 3), mode="bicubic")
        got = torch_bicubic_matrix(n_in, n_out) @ x[0, 0].numpy()
        np.testing.assert_allclose(got, want[0, 0].numpy(), atol=1e-10)
