"""Grouped-query self-attention with RoPE, padding/causal/sliding-window masks and a KV cache.

softmax(q k^T / sqrt(Dh) + mask) v per head; K/V heads are shared by groups of num_heads /
num_kv_heads query heads (GQA, Ainslie et al., 2023).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.models.decoder_config import DecoderConfig
from jaxmethods.models.linear import Dense
from jaxmethods.models.rope import apply_rope


def attention_mask(
    key_valid: jnp.ndarray, query_slots: jnp.ndarray, window: jnp.ndarray | int | None
) -> jnp.ndarray:
    """Boolean mask [B, 1, T, S]: key slot s is visible to query t.

    Args:
      key_valid: [B, S] bool, slots holding real tokens (padding mask).
      query_slots: [T] int32, the slot index of each query (causality is by slot index).
      window: None for full causal attention, else only slots with t - s < window
        (HF's sliding window, `kv_idx > q_idx - window`). May be a traced int32 scalar.
    """
    key_slots = jnp.arange(key_valid.shape[1], dtype=jnp.int32)
    visible = key_slots[None, :] <= query_slots[:, None]
    if window is not None:
        visible = visible & (query_slots[:, None] - key_slots[None, :] < window)
    return (visible[None, :, :] & key_valid[:, None, :])[:, None, :, :]


def einsum_attention(q, k, v, mask, scale: float) -> jnp.ndarray:
    """Plain-jnp GQA attention: q [B,T,N,D], k/v [B,S,K,D], mask [B,1,T,S] -> [B,T,N,D].

    Scores and softmax in float32; fully masked rows (left-pad queries) give a uniform average
    instead of NaN, like `jax.nn.dot_product_attention`.
    """
    b, t, n, d = q.shape
    kv_heads = k.shape[2]
    qg = q.reshape(b, t, kv_heads, n // kv_heads, d)
    scores = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32) * scale
    neg = jnp.finfo(jnp.float32).min
    scores = jnp.where(mask[:, :, None, :, :], scores, neg)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", probs, v)
    return out.reshape(b, t, n, d)


class Attention(nnx.Module):
    """Self-attention block: x [B, T, H] -> [B, T, H] (+ updated cache slices)."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        kw = dict(**config.init_kwargs, rngs=rngs)
        h, n, kv, d = config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim
        self.q_proj = Dense(h, n * d, use_bias=config.attention_bias, **kw)
        self.k_proj = Dense(h, kv * d, use_bias=config.attention_bias, **kw)
        self.v_proj = Dense(h, kv * d, use_bias=config.attention_bias, **kw)
        self.o_proj = Dense(n * d, h, use_bias=config.attention_out_bias, **kw)
        self.num_heads, self.num_kv_heads, self.head_dim = n, kv, d
        self.impl = config.attention_impl

    def __call__(
        self,
        x: jnp.ndarray,
        cos: jnp.ndarray,
        sin: jnp.ndarray,
        mask: jnp.ndarray,
        *,
        cache_kv: tuple[jnp.ndarray, jnp.ndarray] | None = None,
        cache_index: jnp.ndarray | None = None,
        dropout_key: jax.Array | None = None,
    ) -> tuple[jnp.ndarray, tuple[jnp.ndarray, jnp.ndarray] | None]:
        """Args:
          x: [B, T, H]; cos/sin: [B, T, Dh] float32 RoPE tables; mask: [B, 1, T, S] bool.
          cache_kv: this layer's (k, v) buffers [B, S, Hkv, Dh], or None (then S == T).
          cache_index: int32 scalar slot where the T new keys are written.
        Returns:
          (out [B, T, H], updated (k, v) buffers or None).
        """
        b, t, _ = x.shape
        keys = [None] * 4 if dropout_key is None else list(jax.random.split(dropout_key, 4))
        q = self.q_proj(x, dropout_key=keys[0]).reshape(b, t, self.num_heads, self.head_dim)
        k = self.k_proj(x, dropout_key=keys[1]).reshape(b, t, self.num_kv_heads, self.head_dim)
        v = self.v_proj(x, dropout_key=keys[2]).reshape(b, t, self.num_kv_heads, self.head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)

        new_cache = None
        if cache_kv is not None:
            k_buf, v_buf = cache_kv
            zero = jnp.zeros((), jnp.int32)
            start = (zero, cache_index, zero, zero)
            k_buf = jax.lax.dynamic_update_slice(k_buf, k.astype(k_buf.dtype), start)
            v_buf = jax.lax.dynamic_update_slice(v_buf, v.astype(v_buf.dtype), start)
            new_cache = (k_buf, v_buf)
            k, v = k_buf.astype(q.dtype), v_buf.astype(q.dtype)

        scale = self.head_dim**-0.5
        if self.impl == "einsum":
            out = einsum_attention(q, k, v, mask, scale)
        else:
            out = jax.nn.dot_product_attention(
                q, k, v, mask=mask, scale=scale, implementation=self.impl
            )
        out = out.reshape(b, t, self.num_heads * self.head_dim)
        return self.o_proj(out, dropout_key=keys[3]), new_cache
