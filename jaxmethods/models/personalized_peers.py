"""MRM's personalized peers over frozen response embeddings x ∈ R^D (arXiv 2601.18731 baselines).

Every model returns the Bradley–Terry *margin* m = r_u(chosen) - r_u(rejected) of a user's pairs;
the loss is -log σ(m). With x̃ = scale · x (MRM's 0.01 input scale, LoRe's logits / 100):

- per-user heads:   r_u(x) = w_u · x̃, one free vector per user (`linear_head_margin`).
- LoRe (Bose et al. 2025, `LowRankReward`): r_u(x) = x̃ᵀ V softmax(θ_u), V ∈ R^{D×K} a shared
  low-rank basis, the user weights on the simplex.
- PAL-A (Chen et al. 2024, `IdealPointReward`): f(x) = A x̃ + b a shared projector, K prototypes
  P ∈ R^{K×D} in the (scaled) input space, user ideal point a_u = f(softmax(θ_u) P) and
  r_u(x) = -‖f(x) - a_u‖ (PAL's `dist` learner) or -‖f(x) - a_u‖². With the squared distance
  and a linear f, r_u(x) = Σ_k softmax(θ_u)_k r_k(x) + c_u with r_k(x) = -‖f(x) - f(p_k)‖²: the
  user's mixture of prototype rewards up to a per-user constant c_u, which cancels in m.
- VPL (Poddar et al. 2024, `VariationalPreferenceReward`): q(z | S_u) = N(μ, diag σ²) from the
  mean over the user's support pairs of e(x_c, x_r) (an MLP on the concatenation), and a reward
  r(x, z) = MLP([x̃, z]); trained on the ELBO  E_q[log σ(m)] - β KL(q ‖ N(0, I)).

The per-user parameters of LoRe and PAL (θ_u, one row per seen user) are `UserWeights`
variables, so `nnx.split(model, UserWeights, ...)` separates them from the shared parameters;
unseen users fit a fresh θ with the shared parameters frozen. Parameters are drawn on the host
from `numpy.random.default_rng(seed)` (no device compile per initialiser).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


class UserWeights(nnx.Param):
    """A per-user parameter table [U, K] (softmax logits of the user's mixture)."""


def linear_head_margin(w: jax.Array, x_c: jax.Array, x_r: jax.Array, scale: float) -> jax.Array:
    """Per-user head: m = w · scale (x_c - x_r). w [D], x_c / x_r [..., P, D] -> [..., P]."""
    return (x_c.astype(jnp.float32) - x_r.astype(jnp.float32)) @ w * scale


def gaussian_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """KL(N(μ, diag e^{log σ²}) ‖ N(0, I)) = ½ Σ (σ² + μ² - 1 - log σ²), summed over the last axis."""
    return 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1)


def _normal(rng: np.random.Generator, shape: tuple[int, ...], std: float = 1.0) -> jax.Array:
    return jnp.asarray(rng.standard_normal(shape, np.float32) * np.float32(std))


class Dense(nnx.Module):
    """y = x W + b with W ~ N(0, 1/fan_in) (LeCun normal) and b = 0, drawn with NumPy."""

    def __init__(self, fan_in: int, fan_out: int, rng: np.random.Generator):
        self.kernel = nnx.Param(_normal(rng, (fan_in, fan_out), fan_in**-0.5))
        self.bias = nnx.Param(jnp.zeros((fan_out,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.kernel[...] + self.bias[...]


class LowRankReward(nnx.Module):
    """LoRe. Args: dim D, rank K, num_users (rows of the seen users' logit table), scale, seed.

    Initialisation as the authors' `LoRe`: V ~ N(0, 1), θ ~ U(0, 1).
    """

    def __init__(self, dim: int, rank: int, num_users: int, *, scale: float, seed: int):
        rng = np.random.default_rng(seed)
        self.scale = scale
        self.basis = nnx.Param(_normal(rng, (dim, rank)))
        self.user_logits = UserWeights(
            jnp.asarray(rng.uniform(size=(num_users, rank)).astype(np.float32))
        )

    def margin(self, x_c: jax.Array, x_r: jax.Array, logits: jax.Array) -> jax.Array:
        """x_c, x_r [P, D]; logits [K] -> m [P] = scale (x_c - x_r) V softmax(logits)."""
        d = (x_c.astype(jnp.float32) - x_r.astype(jnp.float32)) * self.scale
        return d @ (self.basis[...] @ jax.nn.softmax(logits))


class IdealPointReward(nnx.Module):
    """PAL-A with the `f(Pw)` user learner.

    Args: dim D, pref_dim (output of the projector f), num_prototypes K, num_users, scale,
    distance ("squared" or "euclidean"), seed.
    Initialisation: prototypes ~ N(0, 1/D) (expected norm 1, PAL's `is_expectation_norm_init`),
    θ ~ N(0, 1) (PAL's `init_weight`), the projector a LeCun-normal `Dense`.
    """

    def __init__(
        self,
        dim: int,
        pref_dim: int,
        num_prototypes: int,
        num_users: int,
        *,
        scale: float,
        distance: str = "euclidean",
        seed: int,
    ):
        if distance not in ("squared", "euclidean"):
            raise ValueError(f"IdealPointReward: distance {distance!r} is not squared/euclidean")
        rng = np.random.default_rng(seed)
        self.scale, self.distance = scale, distance
        self.projector = Dense(dim, pref_dim, rng)
        self.prototypes = nnx.Param(_normal(rng, (num_prototypes, dim), dim**-0.5))
        self.user_logits = UserWeights(_normal(rng, (num_users, num_prototypes)))

    def ideal_point(self, logits: jax.Array) -> jax.Array:
        """a_u = f(softmax(θ) P): [K] -> [pref_dim]."""
        return self.projector(jax.nn.softmax(logits) @ self.prototypes[...])

    def reward(self, x: jax.Array, logits: jax.Array) -> jax.Array:
        """r_u(x) = -dist(f(scale x), a_u): x [..., D] -> [...]."""
        diff = self.projector(x.astype(jnp.float32) * self.scale) - self.ideal_point(logits)
        sq = jnp.sum(diff**2, axis=-1)
        return -sq if self.distance == "squared" else -jnp.sqrt(sq + 1e-12)

    def margin(self, x_c: jax.Array, x_r: jax.Array, logits: jax.Array) -> jax.Array:
        """x_c, x_r [P, D]; logits [K] -> m [P]."""
        return self.reward(x_c, logits) - self.reward(x_r, logits)


def _mlp(sizes: tuple[int, ...], rng: np.random.Generator) -> nnx.List:
    return nnx.List([Dense(a, b, rng) for a, b in itertools.pairwise(sizes)])


def _apply_mlp(layers: nnx.List, h: jax.Array) -> jax.Array:
    for i, layer in enumerate(layers):
        h = layer(h)
        if i < len(layers) - 1:
            h = jax.nn.leaky_relu(h, 0.2)
    return h


class VariationalPreferenceReward(nnx.Module):
    """VPL. Args: dim D, hidden_dim, latent_dim, scale, seed.

    Pair encoder e(x_c, x_r) = MLP([x̃_c, x̃_r]) (2D -> H -> H -> L, LeakyReLU 0.2), mean-pooled over
    the support pairs, then linear heads to μ and log σ² (authors' `PairEncoder` and
    `SequenceEncoder`, mean pooling in place of their self-attention pooling); reward
    r(x, z) = MLP([x̃, z]) (D + L -> H -> H -> 1, the authors' `Decoder`).
    """

    def __init__(self, dim: int, hidden_dim: int, latent_dim: int, *, scale: float, seed: int):
        rng = np.random.default_rng(seed)
        self.scale = scale
        self.pair_encoder = _mlp((2 * dim, hidden_dim, hidden_dim, latent_dim), rng)
        self.mean_layer = Dense(latent_dim, latent_dim, rng)
        self.log_var_layer = Dense(latent_dim, latent_dim, rng)
        self.decoder = _mlp((dim + latent_dim, hidden_dim, hidden_dim, 1), rng)

    def posterior(
        self, x_c: jax.Array, x_r: jax.Array, mask: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """(μ, log σ²) [L] of q(z | support): x_c, x_r [P, D], mask [P] bool."""
        pairs = jnp.concatenate([x_c, x_r], axis=-1).astype(jnp.float32) * self.scale
        e = _apply_mlp(self.pair_encoder, pairs)  # [P, L]
        w = mask.astype(jnp.float32)[:, None]
        pooled = jnp.sum(e * w, axis=0) / jnp.maximum(jnp.sum(w), 1.0)
        return self.mean_layer(pooled), self.log_var_layer(pooled)

    def reward(self, x: jax.Array, z: jax.Array) -> jax.Array:
        """r(x, z): x [..., D], z [L] -> [...]."""
        x = x.astype(jnp.float32) * self.scale
        zb = jnp.broadcast_to(z, (*x.shape[:-1], z.shape[-1]))
        return _apply_mlp(self.decoder, jnp.concatenate([x, zb], axis=-1))[..., 0]

    def margin(self, x_c: jax.Array, x_r: jax.Array, z: jax.Array) -> jax.Array:
        """x_c, x_r [P, D]; z [L] -> m [P]."""
        return self.reward(x_c, z) - self.reward(x_r, z)
