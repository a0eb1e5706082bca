"""Pre-LN transformer blocks shared by the CLIP towers and DINOv2.

Block (Dosovitskiy et al. 2021; DINOv2 adds per-channel layer scales g1, g2, Touvron et al. 2021):
  h = h + g1 * Attn(LN1(h));  h = h + g2 * MLP(LN2(h))      (g = 1 for CLIP)
Parameter paths: norm1, attention/{query,key,value,out}, layer_scale1, norm2,
mlp/{fc1,fc2} (or mlp/{weights_in,weights_out} for SwiGLU), layer_scale2.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.models.linear import Dense
from jaxmethods.models.mlp import ACTIVATION_FNS
from jaxmethods.models.vision.config import CLIPTextConfig, ViTConfig

BlockConfig = ViTConfig | CLIPTextConfig

VISION_ACTIVATION_FNS = {
    **ACTIVATION_FNS,
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "relu": jax.nn.relu,
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
}


def layer_norm(config: BlockConfig, rngs: nnx.Rngs) -> nnx.LayerNorm:
    """LayerNorm over hidden_size with two-pass float32 statistics (like torch.nn.LayerNorm)."""
    return nnx.LayerNorm(
        config.hidden_size,
        epsilon=config.layer_norm_eps,
        dtype=config.compute_dtype,
        param_dtype=config.weight_dtype,
        use_fast_variance=False,
        rngs=rngs,
    )


class SelfAttention(nnx.Module):
    """Multi-head self-attention: x [B, T, H], mask [B, 1, T, T] bool or None -> [B, T, H]."""

    def __init__(self, config: BlockConfig, *, rngs: nnx.Rngs):
        h = config.hidden_size
        kw = dict(**config.init_kwargs, rngs=rngs)
        qkv_bias = getattr(config, "qkv_bias", True)
        self.query, self.key, self.value = (Dense(h, h, use_bias=qkv_bias, **kw) for _ in range(3))
        self.out = Dense(h, h, use_bias=True, **kw)
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        self.impl = config.attention_impl

    def __call__(self, x: jnp.ndarray, mask: jnp.ndarray | None = None) -> jnp.ndarray:
        b, t, _ = x.shape
        split = lambda y: y.reshape(b, t, self.num_heads, self.head_dim)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        out = jax.nn.dot_product_attention(
            q, k, v, mask=mask, scale=self.head_dim**-0.5, implementation=self.impl
        )
        return self.out(out.reshape(b, t, self.num_heads * self.head_dim))


class MLP(nnx.Module):
    """fc2(act(fc1(x))), or SwiGLU weights_out(silu(x1) * x2) with [x1, x2] = weights_in(x)."""

    def __init__(self, config: BlockConfig, *, rngs: nnx.Rngs):
        kw = dict(use_bias=True, **config.init_kwargs, rngs=rngs)
        h = config.hidden_size
        self.swiglu = bool(getattr(config, "use_swiglu_ffn", False))
        if self.swiglu:
            f = config.swiglu_width
            self.weights_in = Dense(h, 2 * f, **kw)
            self.weights_out = Dense(f, h, **kw)
        else:
            self.fc1 = Dense(h, config.intermediate_size, **kw)
            self.fc2 = Dense(config.intermediate_size, h, **kw)
        self.act_name = config.hidden_act

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.swiglu:
            x1, x2 = jnp.split(self.weights_in(x), 2, axis=-1)
            return self.weights_out(jax.nn.silu(x1) * x2)
        return self.fc2(VISION_ACTIVATION_FNS[self.act_name](self.fc1(x)))


class Block(nnx.Module):
    """One pre-LN block: [B, T, H] (+ mask [B, 1, T, T]) -> [B, T, H]."""

    def __init__(self, config: BlockConfig, *, layer_scale: bool, rngs: nnx.Rngs):
        self.norm1 = layer_norm(config, rngs)
        self.attention = SelfAttention(config, rngs=rngs)
        self.norm2 = layer_norm(config, rngs)
        self.mlp = MLP(config, rngs=rngs)
        if layer_scale:
            value = getattr(config, "layerscale_value", 1.0)
            full = lambda: nnx.Param(jnp.full((config.hidden_size,), value, config.weight_dtype))
            self.layer_scale1, self.layer_scale2 = full(), full()
        else:
            self.layer_scale1 = self.layer_scale2 = nnx.data(None)

    def __call__(self, h: jnp.ndarray, mask: jnp.ndarray | None = None) -> jnp.ndarray:
        attn = self.attention(self.norm1(h), mask)
        if self.layer_scale1 is not None:
            attn = attn * self.layer_scale1[...].astype(attn.dtype)
        h = h + attn
        ff = self.mlp(self.norm2(h))
        if self.layer_scale2 is not None:
            ff = ff * self.layer_scale2[...].astype(ff.dtype)
        return h + ff
