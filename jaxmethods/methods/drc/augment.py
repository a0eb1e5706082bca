"""Semantic-preserving augmentations of reference images for DRC's stage 2 [reconstruction].

DRC's stage 2 augments the reference so that its style changes while its semantics stay, which
pushes the model to take the style from the history (the paper names colour jitter, grayscale,
crops "and similar"; the exact list is unknown). Each op is applied per image with its own
probability and random parameters, in this order:
  channel permutation (a palette swap), inversion, colour jitter (brightness, contrast,
  saturation), grayscale, a texture overlay (horizontal or vertical bands of random period and
  strength: a cheap stand-in for the optional style transfer), a small random translation
  (a crop that keeps the content; `max_shift` pixels, edge-padded; 0 = off).
Images are float32 [N, H, W, 3] in [-1, 1]; the output has the same shape and range. NumPy on
the host (the run augments once and VQ-encodes the copies, so no per-step cost).
"""

from __future__ import annotations

import dataclasses

import numpy as np

_GRAY = np.asarray([0.299, 0.587, 0.114], np.float32)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (p_*) and strengths of the ops of the module docstring."""

    p_permute: float = 0.5
    p_invert: float = 0.2
    p_jitter: float = 0.8
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.5
    p_grayscale: float = 0.2
    p_texture: float = 0.5
    texture_strength: tuple[float, float] = (0.4, 0.8)
    texture_period: tuple[int, int] = (4, 12)
    max_shift: int = 0

    def __post_init__(self):
        for f in ("p_permute", "p_invert", "p_jitter", "p_grayscale", "p_texture"):
            if not 0.0 <= getattr(self, f) <= 1.0:
                raise ValueError(f"AugmentConfig.{f}: {getattr(self, f)} is not in [0, 1]")


def augment(images: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """[N, H, W, 3] in [-1, 1] -> augmented copy [N, H, W, 3] in [-1, 1]."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"augment: images must be [N, H, W, 3], got {images.shape}")
    n, h, w, _ = images.shape
    x = (images + 1.0) / 2.0  # [0, 1]

    def pick(p):
        return rng.random(n) < p

    on = pick(cfg.p_permute)
    perms = np.stack([rng.permutation(3) for _ in range(n)])
    x = np.where(on[:, None, None, None], np.take_along_axis(x, perms[:, None, None, :], -1), x)
    x = np.where(pick(cfg.p_invert)[:, None, None, None], 1.0 - x, x)

    on = pick(cfg.p_jitter)[:, None, None, None]
    b = 1.0 + rng.uniform(-cfg.brightness, cfg.brightness, (n, 1, 1, 1))
    c = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast, (n, 1, 1, 1))
    s = 1.0 + rng.uniform(-cfg.saturation, cfg.saturation, (n, 1, 1, 1))
    y = x * b
    mean = y.mean(axis=(1, 2, 3), keepdims=True)
    y = (y - mean) * c + mean
    gray = (y @ _GRAY)[..., None]
    y = (y - gray) * s + gray
    x = np.where(on, y, x)

    gray = np.repeat((x @ _GRAY)[..., None], 3, -1)
    x = np.where(pick(cfg.p_grayscale)[:, None, None, None], gray, x)

    on = pick(cfg.p_texture)
    lo, hi = cfg.texture_period
    period = rng.integers(lo, hi + 1, n)
    strength = rng.uniform(*cfg.texture_strength, n)
    vertical = rng.random(n) < 0.5
    for i in np.flatnonzero(on):
        pos = np.arange(w if vertical[i] else h)
        band = np.where(pos % period[i] >= period[i] // 2, strength[i], 1.0)
        x[i] *= band[None, :, None] if vertical[i] else band[:, None, None]

    if cfg.max_shift > 0:
        k = cfg.max_shift
        pad = np.pad(x, ((0, 0), (k, k), (k, k), (0, 0)), mode="edge")
        dy, dx = rng.integers(0, 2 * k + 1, n), rng.integers(0, 2 * k + 1, n)
        x = np.stack([pad[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    return np.clip(x * 2.0 - 1.0, -1.0, 1.0).astype(np.float32)
