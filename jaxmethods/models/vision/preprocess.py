"""CLIP / DINOv2 image preprocessing in NumPy + JAX (no torchvision, no PIL at run time).

Follows HF's `CLIPImageProcessor` / `BitImageProcessor` (and open_clip's transform, which is the
same chain): resize so the shorter side is `shortest_edge` (the longer one int(size * long /
short)), bicubic with antialiasing (Keys a = -0.5 with the kernel widened by the downscale factor,
PIL's filter, via `jax.image.resize`); center crop (top = (h - crop_h) // 2); scale by 1/255;
normalise with the checkpoint's mean / std. Output is channels-last float32 [B, crop_h, crop_w, 3].

Differences from PIL: PIL resizes uint8 images and rounds the result to uint8; we keep float32.
The gap is at most half a grey level before normalisation (tests/models/vision/test_preprocess.py
measures it against `CLIPImageProcessorPil`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# PIL resample codes in preprocessor_config.json -> jax.image.resize methods
_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


@dataclasses.dataclass(frozen=True)
class ImagePreprocessor:
    """resize (shortest edge) -> center crop -> rescale -> normalise.

    Attributes:
      shortest_edge: target of the shorter side (None = no resize).
      crop_size: (height, width) of the center crop (None = no crop).
      mean, std: per-channel normalisation after rescaling.
      rescale_factor: multiplies the pixel values (1/255 for uint8 input).
      resample: "bicubic", "bilinear" or "nearest".
    """

    shortest_edge: int | None = 224
    crop_size: tuple[int, int] | None = (224, 224)
    mean: tuple[float, ...] = OPENAI_CLIP_MEAN
    std: tuple[float, ...] = OPENAI_CLIP_STD
    rescale_factor: float = 1 / 255
    resample: str = "bicubic"

    def resize_shape(self, height: int, width: int) -> tuple[int, int]:
        """(new_h, new_w) for HF's `get_resize_output_image_size(default_to_square=False)`."""
        if self.shortest_edge is None:
            return height, width
        short, long = (height, width) if height <= width else (width, height)
        new_long = int(self.shortest_edge * long / short)
        if height <= width:
            return self.shortest_edge, new_long
        return new_long, self.shortest_edge

    def one(self, image: np.ndarray) -> jnp.ndarray:
        """One image [H, W, 3] (uint8 or float in 0..255) -> float32 [crop_h, crop_w, 3]."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
            raise ValueError(f"ImagePreprocessor: expected an [H, W, 3] image, got {image.shape}")
        if image.shape[-1] == 1:
            image = np.repeat(image, 3, axis=-1)
        image = image[..., :3]  # RGBA -> RGB (HF's do_convert_rgb drops alpha)
        h, w = image.shape[:2]
        x = jnp.asarray(image, jnp.float32)
        new_h, new_w = self.resize_shape(h, w)
        if (new_h, new_w) != (h, w):
            x = jax.image.resize(x, (new_h, new_w, 3), method=self.resample, antialias=True)
        if self.crop_size is not None:
            ch, cw = self.crop_size
            if ch > new_h or cw > new_w:
                raise ValueError(
                    f"ImagePreprocessor: crop {self.crop_size} is larger than the resized image "
                    f"{(new_h, new_w)}"
                )
            top, left = (new_h - ch) // 2, (new_w - cw) // 2
            x = x[top : top + ch, left : left + cw]
        x = x * self.rescale_factor
        return (x - jnp.asarray(self.mean)) / jnp.asarray(self.std)

    def __call__(self, images: np.ndarray | Sequence[np.ndarray]) -> jnp.ndarray:
        """Images [B, H, W, 3] or a list of [H_i, W_i, 3] -> float32 [B, crop_h, crop_w, 3]."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = images[None]
        return jnp.stack([self.one(im) for im in images])


def image_preprocessor_from_dict(cfg: dict[str, Any], *, source: str = "") -> ImagePreprocessor:
    """From a `preprocessor_config.json` dict (CLIPImageProcessor / BitImageProcessor fields)."""
    size = cfg.get("size", {"shortest_edge": 224})
    if isinstance(size, int):
        size = {"shortest_edge": size}
    crop = cfg.get("crop_size", {"height": 224, "width": 224})
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    if "shortest_edge" not in size:
        raise ValueError(f"{source}: size {size} is not supported (only shortest_edge)")
    resample = int(cfg.get("resample", 3))
    if resample not in _RESAMPLE:
        raise ValueError(f"{source}: resample {resample} is not one of {sorted(_RESAMPLE)}")
    return ImagePreprocessor(
        shortest_edge=int(size["shortest_edge"]) if cfg.get("do_resize", True) else None,
        crop_size=(int(crop["height"]), int(crop["width"]))
        if cfg.get("do_center_crop", True)
        else None,
        mean=tuple(cfg.get("image_mean", OPENAI_CLIP_MEAN)) if cfg.get("do_normalize", True)
        else (0.0, 0.0, 0.0),
        std=tuple(cfg.get("image_std", OPENAI_CLIP_STD)) if cfg.get("do_normalize", True)
        else (1.0, 1.0, 1.0),
        rescale_factor=float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True)
        else 1.0,
        resample=_RESAMPLE[resample],
    )  # fmt: skip


def load_image_preprocessor(folder: str | os.PathLike) -> ImagePreprocessor:
    """The `preprocessor_config.json` of a model folder; a clear error when it is missing."""
    path = os.path.join(os.fspath(folder), "preprocessor_config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no preprocessor_config.json in {os.fspath(folder)!r}: pass an ImagePreprocessor "
            "(e.g. ImagePreprocessor() for OpenAI CLIP's 224 px, mean/std)"
        )
    with open(path) as f:
        return image_preprocessor_from_dict(json.load(f), source=path)
