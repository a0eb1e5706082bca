"""Gated MLP: down( act(gate(x)) * up(x) ) — SwiGLU (silu, Llama/Qwen2/Mistral), GeGLU (Gemma)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.models.decoder_config import DecoderConfig
from jaxmethods.models.linear import Dense

ACTIVATION_FNS = {
    "silu": jax.nn.silu,
    # HF "gelu_pytorch_tanh" / "gelu_new" / "gelu_tanh" are the tanh approximation.
    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
}


class GatedMLP(nnx.Module):
    """x [B, T, H] -> [B, T, H] through intermediate size F with a gated activation."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        kw = dict(use_bias=config.mlp_bias, **config.init_kwargs, rngs=rngs)
        self.gate_proj = Dense(config.hidden_size, config.intermediate_size, **kw)
        self.up_proj = Dense(config.hidden_size, config.intermediate_size, **kw)
        self.down_proj = Dense(config.intermediate_size, config.hidden_size, **kw)
        self.act_name = config.hidden_act

    def __call__(self, x: jnp.ndarray, *, dropout_key: jax.Array | None = None) -> jnp.ndarray:
        keys = [None] * 3 if dropout_key is None else list(jax.random.split(dropout_key, 3))
        act = ACTIVATION_FNS[self.act_name]
        hidden = act(self.gate_proj(x, dropout_key=keys[0])) * self.up_proj(x, dropout_key=keys[1])
        return self.down_proj(hidden, dropout_key=keys[2])
