"""Sentence poolings of encoder hidden states, as pure functions.

    cls_pool(h)            h[:, 0]                       (BERT/DPR/bge-m3)
    mean_pool(h, mask)     sum_t m_t h_t / sum_t m_t     (Contriever, sentence-transformers)
    last_token_pool(h, m)  h at the last real token      (decoder embedders, e.g. E5-Mistral)
    l2_normalize(x)        x / max(||x||_2, eps)         (torch F.normalize)

Shapes: h [B, T, H], mask [B, T] (1 = real token) -> [B, H] float32.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxmethods.models.heads import gather_last, last_token_index

POOLINGS = ("cls", "mean", "last")


def cls_pool(hidden: jnp.ndarray, attention_mask: jnp.ndarray | None = None) -> jnp.ndarray:
    """The first position ([CLS] / <s>) [B, H]."""
    del attention_mask
    return hidden[:, 0].astype(jnp.float32)


def mean_pool(hidden: jnp.ndarray, attention_mask: jnp.ndarray | None) -> jnp.ndarray:
    """Mean over real tokens [B, H] (float32; an all-padding row gives zeros, not NaN)."""
    h = hidden.astype(jnp.float32)
    if attention_mask is None:
        return h.mean(axis=1)
    m = (attention_mask > 0).astype(jnp.float32)[..., None]
    return (h * m).sum(axis=1) / jnp.maximum(m.sum(axis=1), 1.0)


def last_token_pool(hidden: jnp.ndarray, attention_mask: jnp.ndarray | None) -> jnp.ndarray:
    """Hidden state at the rightmost real token [B, H] (left or right padding)."""
    index = last_token_index(hidden[..., 0], attention_mask)
    return gather_last(hidden, index).astype(jnp.float32)


def l2_normalize(x: jnp.ndarray, eps: float = 1e-12) -> jnp.ndarray:
    """x / max(||x||_2, eps) over the last axis (torch.nn.functional.normalize)."""
    x = x.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
    return x / jnp.maximum(norm, eps)


def pool(
    hidden: jnp.ndarray,
    attention_mask: jnp.ndarray | None,
    kind: str,
    *,
    normalize: bool = False,
) -> jnp.ndarray:
    """`kind` in POOLINGS, then optional L2 normalisation: [B, T, H] -> [B, H] float32."""
    fns = {"cls": cls_pool, "mean": mean_pool, "last": last_token_pool}
    if kind not in fns:
        raise ValueError(f"pooling {kind!r} is not one of {POOLINGS}")
    out = fns[kind](hidden, attention_mask)
    return l2_normalize(out) if normalize else out
