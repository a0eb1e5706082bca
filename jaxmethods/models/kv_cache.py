"""Key/value cache for incremental decoding.

Layout: one fixed-size buffer of S slots per layer. Prompts are left padded, so every row writes
its next token into the same slot `index`; `mask` marks the slots that hold real tokens (left
padding and not-yet-written slots are False).
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class KVCache:
    """Attributes:
    k, v: [L, B, S, Hkv, Dh] cached (RoPE-rotated) keys and values.
    mask: [B, S] bool, True where a slot holds a real token.
    index: int32 scalar, the next slot to write (shared by the batch).
    """

    k: jax.Array
    v: jax.Array
    mask: jax.Array
    index: jax.Array

    @classmethod
    def zeros(
        cls, num_layers: int, batch_size: int, max_len: int, num_kv_heads: int, head_dim: int, dtype
    ) -> KVCache:
        shape = (num_layers, batch_size, max_len, num_kv_heads, head_dim)
        return cls(
            k=jnp.zeros(shape, dtype),
            v=jnp.zeros(shape, dtype),
            mask=jnp.zeros((batch_size, max_len), bool),
            index=jnp.zeros((), jnp.int32),
        )

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    @property
    def lengths(self) -> jax.Array:
        """[B] int32: real tokens cached per row (the next token's RoPE position)."""
        return jnp.sum(self.mask, axis=-1, dtype=jnp.int32)

    def take(self, batch_indices: jax.Array) -> KVCache:
        """Gathers rows of the batch (beam search reorders beams with it): [B'] int -> B' rows."""
        return self.replace(
            k=jnp.take(self.k, batch_indices, axis=1),
            v=jnp.take(self.v, batch_indices, axis=1),
            mask=jnp.take(self.mask, batch_indices, axis=0),
        )
