"""CLIP score, CLIP image score and DINO similarity as jitted batch functions.

Conventions (Pigeon's `Evaluation/eval_utils.py`, which the DRC spec follows):
  clip_score(images, texts)   = 100 * cos(E_img(image), E_txt(text))      per pair [B]
  clip_image_score(a, b)      = 100 * cos(E_img(a), E_img(b))             per pair [B]
  dino_similarity(a, b)       = 100 * cos(cls(a), cls(b)), cls = DINOv2 `pooler_output`
                                (final LayerNorm of the CLS token)
E_img / E_txt are the projected CLIP features (`get_image_features` / `get_text_features`).
torchmetrics' `CLIPScore` additionally clamps at 0 (max(100 cos, 0)); Pigeon does not. Pass
`clamp_at_zero=True` for the torchmetrics number.

Each scorer splits its model once (`nnx.split`) and jits pure functions of (state, batch); with a
mesh the batch is split over the data axes (`jaxmethods.train.mesh.data_sharding`) and the
state keeps the shardings the loader gave it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from jaxmethods.models.pooling import l2_normalize
from jaxmethods.models.vision.clip import CLIPModel
from jaxmethods.models.vision.vit import ViT


@functools.partial(jax.jit, static_argnames=("scale", "clamp_at_zero"))
def cosine_score(
    a: jnp.ndarray, b: jnp.ndarray, *, scale: float = 100.0, clamp_at_zero: bool = False
) -> jnp.ndarray:
    """scale * cos(a_i, b_i) per row: a, b [B, D] (or broadcastable, e.g. b [D]) -> [B] float32."""
    s = scale * jnp.sum(l2_normalize(a) * l2_normalize(b), axis=-1)
    return jnp.maximum(s, 0.0) if clamp_at_zero else s


class _Scorer:
    def __init__(self, model: nnx.Module, mesh: Mesh | None):
        self.model, self.mesh = model, mesh
        self._graphdef, self._state = nnx.split(model)

    def _put(self, *arrays):
        if self.mesh is None:
            return arrays
        from jaxmethods.train.mesh import data_sharding

        sharding = data_sharding(self.mesh)
        return tuple(jax.device_put(a, sharding) for a in arrays)


class ClipScorer(_Scorer):
    """Jitted CLIP features and scores over a `CLIPModel`.

    Args:
      model: the loaded `CLIPModel`.
      tokenizer: optional HF CLIP tokenizer for `tokenize` / text inputs given as strings.
      mesh: split batches over the mesh's data axes (batch sizes must divide evenly).
    Images are preprocessed pixels [B, H, W, 3] (`jaxmethods.models.vision.preprocess`); texts
    are (input_ids [B, T], attention_mask [B, T]) or a list of strings when a tokenizer is set.
    """

    def __init__(self, model: CLIPModel, tokenizer: Any = None, *, mesh: Mesh | None = None):
        super().__init__(model, mesh)
        self.tokenizer = tokenizer
        g = self._graphdef
        self._image = jax.jit(lambda s, x: nnx.merge(g, s).image_features(x))
        self._text = jax.jit(lambda s, ids, m: nnx.merge(g, s).text_features(ids, m))

    def tokenize(self, texts: Sequence[str]) -> tuple[jnp.ndarray, jnp.ndarray]:
        """(input_ids, attention_mask) [B, max_position_embeddings] int32, padded to full length
        (one compiled shape) and truncated."""
        if self.tokenizer is None:
            raise ValueError("ClipScorer: no tokenizer was given; pass (input_ids, attention_mask)")
        n = self.model.config.text.max_position_embeddings
        enc = self.tokenizer(
            list(texts), padding="max_length", max_length=n, truncation=True, return_tensors="np"
        )
        return jnp.asarray(enc["input_ids"], jnp.int32), jnp.asarray(
            enc["attention_mask"], jnp.int32
        )

    def image_features(self, pixels: jnp.ndarray) -> jnp.ndarray:
        """Projected image features [B, E] (unnormalised)."""
        return self._image(self._state, *self._put(pixels))

    def text_features(self, texts) -> jnp.ndarray:
        """Projected text features [B, E] of (ids, mask) or a list of strings."""
        ids, mask = self.tokenize(texts) if _is_strings(texts) else texts
        return self._text(self._state, *self._put(jnp.asarray(ids, jnp.int32), jnp.asarray(mask)))

    def clip_score(self, pixels, texts, *, clamp_at_zero: bool = False) -> jnp.ndarray:
        """100 * cos(image_i, text_i) [B]."""
        return cosine_score(
            self.image_features(pixels), self.text_features(texts), clamp_at_zero=clamp_at_zero
        )

    def clip_image_score(self, pixels_a: jnp.ndarray, pixels_b: jnp.ndarray) -> jnp.ndarray:
        """100 * cos(image_a_i, image_b_i) [B]."""
        return cosine_score(self.image_features(pixels_a), self.image_features(pixels_b))


class DinoScorer(_Scorer):
    """Jitted DINOv2 CLS features and `dino_similarity` over a `ViT` (family "dinov2")."""

    def __init__(self, model: ViT, *, mesh: Mesh | None = None):
        if model.config.family != "dinov2":
            raise ValueError(
                f"DinoScorer: expected a DINOv2 ViT, got family {model.config.family!r}"
            )
        super().__init__(model, mesh)
        g = self._graphdef
        self._features = jax.jit(lambda s, x: nnx.merge(g, s).pooled(x))

    def features(self, pixels: jnp.ndarray) -> jnp.ndarray:
        """HF `pooler_output` [B, D] (final LayerNorm of the CLS token)."""
        return self._features(self._state, *self._put(pixels))

    def dino_similarity(self, pixels_a: jnp.ndarray, pixels_b: jnp.ndarray) -> jnp.ndarray:
        """100 * cos(cls_a_i, cls_b_i) [B] (Pigeon's DINO image score)."""
        return cosine_score(self.features(pixels_a), self.features(pixels_b))


def _is_strings(texts) -> bool:
    return isinstance(texts, (list, tuple)) and (not texts or isinstance(texts[0], str))
