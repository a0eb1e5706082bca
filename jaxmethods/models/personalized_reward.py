"""MRM's personalized reward model (arXiv 2601.18731; authors' `train.py`, `class MRM`).

    h = (scale · x) W_1 W_2 …          stacked bias-free linear layers, no nonlinearity
    φ(x) = h ∈ R^K                      K base rewards
    r_u(x) = softmax(θ_w) · φ(x)        θ_w ∈ R^K: meta-learned initialisation, adapted per user

`θ_w` is a `RewardWeights` variable, so the inner loop selects it by type:
`graphdef, theta, base = nnx.split(model, RewardWeights, ...)`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.models.linear import wide_matmul


class RewardWeights(nnx.Param):
    """The softmax logits θ_w over base rewards: MRM's inner-loop (per-user) parameters."""


def torch_linear_init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """PyTorch's default `nn.Linear` weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / jnp.sqrt(shape[0])
    return jax.random.uniform(key, shape, dtype, -bound, bound)


class PersonalizedReward(nnx.Module):
    """Args:
    in_dim: embedding size D (4096 for Llama-3.1-8B reward models).
    hidden_layers: output sizes of the stacked linear layers; the last is K (scripts: [2]).
    scale: input scale (0.01 in the authors' code).
    use_bias: bias in the linear layers (False in every released script).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_layers: Sequence[int] = (2,),
        *,
        scale: float = 0.01,
        use_bias: bool = False,
        rngs: nnx.Rngs,
    ):
        if not hidden_layers:
            raise ValueError("hidden_layers must name at least one layer (the last is K)")
        dims = (in_dim, *hidden_layers)
        self.scale = scale
        self.layers = nnx.List(
            [
                nnx.Linear(
                    a,
                    b,
                    use_bias=use_bias,
                    kernel_init=torch_linear_init,
                    bias_init=nnx.initializers.zeros_init(),
                    rngs=rngs,
                )
                for a, b in itertools.pairwise(dims)
            ]
        )
        self.theta_w = RewardWeights(jax.random.normal(rngs.params(), (dims[-1],)))

    @property
    def num_rewards(self) -> int:
        return self.theta_w.shape[0]

    def base_rewards(self, x: jax.Array) -> jax.Array:
        """φ(x): [..., D] -> [..., K]. The D-wide first layer goes through `wide_matmul` (the
        same product; its kernel gradient is a GEMM on XLA:CPU instead of a strided loop)."""
        first, *rest = self.layers
        h = wide_matmul(x.astype(jnp.float32) * self.scale, first.kernel[...])
        if first.bias is not None:
            h = h + first.bias[...]
        for layer in rest:
            h = layer(h)
        return h

    def weights(self) -> jax.Array:
        """softmax(θ_w): [K]."""
        return jax.nn.softmax(self.theta_w[...])

    def __call__(self, x: jax.Array) -> jax.Array:
        """r(x): [..., D] -> [...]."""
        return self.base_rewards(x) @ self.weights()
