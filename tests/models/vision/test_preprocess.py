"""CLIP / DINOv2 image preprocessing against transformers' PIL-backed `CLIPImageProcessorPil`
(no torch needed): resize shortest edge (bicubic, antialiased), center crop, normalise."""

from __future__ import annotations

import numpy as np
import pytest

from jaxmethods.models.vision.preprocess import (
    IMAGENET_MEAN,
    ImagePreprocessor,
    image_preprocessor_from_dict,
)


def _image(shape, seed):
    """A smooth uint8 image (ramps + a blob): rounding, not aliasing, dominates the gap."""
    rng = np.random.RandomState(seed)
    h, w, _ = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    chans = [np.sin(3 * xx + c) * np.cos(2 * yy - c) for c in range(3)]
    img = np.stack(chans, -1) + 0.3 * rng.rand(1, 1, 3)
    img = 255 * (img - img.min()) / (img.max() - img.min())
    return img.round().astype(np.uint8)


@pytest.mark.parametrize("shape", [(37, 53, 3), (20, 20, 3)])
def test_matches_transformers_pil_processor(shape):
    pytest.importorskip("PIL")  # transformers' PIL backend (Pillow comes with matplotlib)
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    img = _image(shape, seed=shape[0])
    hf = CLIPImageProcessorPil(size={"shortest_edge": 24}, crop_size={"height": 24, "width": 24})
    want = np.asarray(hf(img, return_tensors="np")["pixel_values"][0]).transpose(1, 2, 0)
    got = np.asarray(ImagePreprocessor(shortest_edge=24, crop_size=(24, 24))(img)[0])
    assert got.shape == want.shape == (24, 24, 3)
    # PIL rounds its resized uint8 image: one grey level is 1 / 255 / std ~ 0.015 here
    gap = np.abs(got - want)
    assert gap.max() < 0.03 and gap.mean() < 0.008, (gap.max(), gap.mean())


def test_resize_shape_follows_hf_shortest_edge_rule():
    from transformers.image_transforms import get_resize_output_image_size

    pre = ImagePreprocessor(shortest_edge=224)
    for h, w in ((480, 640), (640, 480), (300, 301), (224, 1000)):
        img = np.zeros((h, w, 3), np.uint8)
        want = get_resize_output_image_size(img, size=224, default_to_square=False,
                                            input_data_format="channels_last")  # fmt: skip
        assert pre.resize_shape(h, w) == tuple(want)


def test_dinov2_processor_config():
    cfg = {"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224},
           "image_mean": list(IMAGENET_MEAN), "image_std": [0.229, 0.224, 0.225],
           "resample": 3, "do_center_crop": True}  # fmt: skip
    pre = image_preprocessor_from_dict(cfg)
    assert (pre.shortest_edge, pre.crop_size, pre.mean) == (256, (224, 224), IMAGENET_MEAN)
    with pytest.raises(ValueError, match="resample 5"):
        image_preprocessor_from_dict(dict(cfg, resample=5), source="p.json")
