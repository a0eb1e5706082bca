"""The train state: a plain pytree of arrays, donated to and returned by every step."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """`step` int32 scalar; `params` the trainable pytree; `opt_state` its optimizer state;
    `rng` a raw uint32 PRNG key folded with the step inside the step function."""

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array

    @classmethod
    def create(cls, params: Any, tx: optax.GradientTransformation, seed: int = 0) -> TrainState:
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            rng=jax.random.PRNGKey(seed),
        )
