"""CLIP score / CLIP image score / DINO similarity on the committed tiny fixtures, against NumPy
computed from the transformers outputs stored with them (100 * cos, Pigeon's convention;
torchmetrics' clamp at 0 on request)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from jaxmethods.hf.vision_loading import load_vision_model
from jaxmethods.models.vision import ClipScorer, DinoScorer, cosine_score

VISION_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "data", "hf", "vision")


def _ref(name: str) -> dict[str, np.ndarray]:
    with np.load(os.path.join(VISION_DIR, name, "reference.npz")) as f:
        return {k: f[k] for k in f.files}


def _cos100(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return 100 * (a * b).sum(-1)


def test_clip_score_and_clip_image_score():
    ref = _ref("clip")
    clip = ClipScorer(load_vision_model(os.path.join(VISION_DIR, "clip"), "float32"))
    images, texts = ref["pixel_values"], (ref["input_ids"], ref["attention_mask"])
    # CLIP score: 100 * cos of the transformers features, and the same through HF's logits
    # (logits_per_image[i, i] = exp(logit_scale) * cos)
    got = np.asarray(clip.clip_score(images, texts))
    np.testing.assert_allclose(got, _cos100(ref["image_embeds"], ref["text_embeds"]), atol=1e-3)
    scale = np.exp(np.asarray(clip.model.logit_scale[...]))
    np.testing.assert_allclose(got, 100 * np.diag(ref["logits_per_image"]) / scale, atol=1e-3)
    # CLIP image score, with the middle image against itself
    got = np.asarray(clip.clip_image_score(images, images[::-1]))
    want = _cos100(ref["image_embeds"], ref["image_embeds"][::-1])
    np.testing.assert_allclose(got, want, atol=1e-3)
    assert abs(got[1] - 100.0) < 1e-3
    with pytest.raises(ValueError, match="no tokenizer"):
        clip.text_features(["a photo"])


def test_dino_similarity_is_100_cos_of_pooler_output_on_a_mesh():
    """Loaded sharded (Megatron rules over fsdp x tensor on 4 fake CPU devices), batch split
    over the data axes."""
    from jaxmethods.train.mesh import make_mesh

    ref = _ref("dinov2")
    mesh = make_mesh({"data": 1, "fsdp": 2, "tensor": 2})
    model = load_vision_model(os.path.join(VISION_DIR, "dinov2"), "float32", mesh=mesh)
    query = model.layers[0].attention.query.kernel[...]
    assert tuple(query.sharding.spec) == ("fsdp", "tensor")  # column-parallel [in, out]
    scorer = DinoScorer(model, mesh=mesh)
    a, b = ref["pixel_values"][:2], ref["pixel_values"][1:]
    got = np.asarray(scorer.dino_similarity(a, b))
    pooled = ref["pooler_output"]
    np.testing.assert_allclose(got, _cos100(pooled[:2], pooled[1:]), atol=1e-3)
    np.testing.assert_allclose(np.asarray(scorer.features(a)), pooled[:2], atol=1e-4)


def test_cosine_score_conventions():
    a = np.array([[1.0, 2.0, 2.0], [0.0, 3.0, 0.0]], np.float32)
    b = np.array([[2.0, 4.0, 4.0], [0.0, -1.0, 0.0]], np.float32)
    np.testing.assert_allclose(np.asarray(cosine_score(a, b)), [100.0, -100.0], atol=1e-4)
    np.testing.assert_allclose(np.asarray(cosine_score(a, b, clamp_at_zero=True)), [100.0, 0.0],
                               atol=1e-4)  # fmt: skip
