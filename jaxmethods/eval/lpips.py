"""Jitted LPIPS (VGG) distances over batches of image pairs.

    from jaxmethods.hf.lpips_loading import try_load_lpips
    model, skipped = try_load_lpips(vgg="vgg16-397923af.pth", lin="vgg.pth")
    scorer = LPIPSScorer(model)                       # when model is not None
    d = scorer.distance_uint8(generated, history)     # [B]; uint8-valued [B, H, W, 3]

Inputs: `distance` takes images in [-1, 1] (lpips' convention); `distance_uint8` takes 0..255
values and maps them as Pigeon's `eval_utils.im2tensor_lpips` does, x / 127.5 - 1. Images are
channels-last [B, H, W, 3]; lower is more similar, identical images give 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from jaxmethods.models.vision.lpips import LPIPS
from jaxmethods.models.vision.scores import _Scorer


def to_lpips_range(images: np.ndarray | jnp.ndarray) -> jnp.ndarray:
    """0..255 values [..., H, W, C] -> float32 in [-1, 1] (x / 127.5 - 1)."""
    return jnp.asarray(images, jnp.float32) / 127.5 - 1.0


class LPIPSScorer(_Scorer):
    """Splits an `LPIPS` model once and jits (state, x0, x1) -> distances [B]; with a mesh the
    batch is split over the data axes (the batch size must divide evenly)."""

    def __init__(self, model: LPIPS, *, mesh: Mesh | None = None):
        super().__init__(model, mesh)
        g = self._graphdef
        # one compiled function per image shape: `distance` sums its output
        self._per_layer = jax.jit(lambda s, a, b: nnx.merge(g, s).per_layer(a, b))

    def distance(self, x0: jnp.ndarray, x1: jnp.ndarray) -> jnp.ndarray:
        """LPIPS [B] of images [B, H, W, 3] in [-1, 1]."""
        return self.per_layer(x0, x1).sum(axis=-1)

    def per_layer(self, x0: jnp.ndarray, x1: jnp.ndarray) -> jnp.ndarray:
        """The 5 per-tap terms [B, 5] (they sum to `distance`)."""
        return self._per_layer(self._state, *self._put(jnp.asarray(x0), jnp.asarray(x1)))

    def distance_uint8(self, a: np.ndarray, b: np.ndarray) -> jnp.ndarray:
        """LPIPS [B] of 0..255 images [B, H, W, 3] (Pigeon's x / 127.5 - 1 mapping)."""
        return self.distance(to_lpips_range(a), to_lpips_range(b))
