"""PERM's reward composition as pure, jittable functions of the `[B, R]` judge-score matrix
(`perm/utils.py::calculate_final_scores` and the length / standby reward functions of
`perm/grpo.py`; TRL sums the reward functions with weights 1.0):

    R_emp   harmonic  3 / Σ_d (5 / s_d)          (the paper's, `--calculate_score_mode harmonic`)
            mean      Σ_d w_d s_d/5 / Σ_d w_d     (weights optional; per-user rows for perm_mrm)
            geometric (Π_d s_d/5)^(1/3)
    R_len   −coef · max(0, L − limit)            (limit 768, coef 0.001)
    R_by    coef · (S_by / 100 − 1)              (coef 0.5, so R_by ∈ [−0.5, 0])
    R       R_emp + R_len + R_by

As in the authors' code, the harmonic and geometric means skip dimensions whose score is not
positive and give 0 when none is left; the weighted mean gives 0 when the weights sum to 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxmethods.train.config import non_negative

MODES = ("harmonic", "mean", "geometric")
MAX_SCORE = 5.0
EMPATHY_KINDS = ("resonation", "expression", "reception")  # the three 1-5 rubric perspectives
SCALE = {"resonation": 5.0, "expression": 5.0, "reception": 5.0, "standby": 100.0}


@dataclass(frozen=True)
class RewardConfig:
    """The `reward` section: `grpo_train.sh`'s `--calculate_score_mode harmonic
    --use_length_penalty --length_penalty_limit 768 --length_penalty_coef 0.001
    --use_standby_reward --standby_reward_coef 0.5` by default. `weights` (3 floats, empty =
    equal) only applies to mode "mean"."""

    mode: str = "harmonic"
    weights: tuple[float, ...] = ()
    use_length_penalty: bool = True
    length_limit: int = non_negative(768)
    length_coef: float = non_negative(0.001)
    use_standby: bool = True
    standby_coef: float = non_negative(0.5)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"config.reward.mode: {self.mode!r} is not one of {MODES}")
        if self.weights and len(self.weights) != len(EMPATHY_KINDS):
            raise ValueError(f"config.reward.weights: expected 3 weights, got {self.weights}")

    @property
    def kinds(self) -> tuple[str, ...]:
        """The judge kinds (score columns) this reward needs."""
        return (*EMPATHY_KINDS, "standby") if self.use_standby else EMPATHY_KINDS


def empathy_harmonic(scores: jax.Array) -> jax.Array:
    """`scores`: [B, K] judge scores in 1..5 -> [B] harmonic mean of s/5 over positive scores."""
    s = jnp.asarray(scores, jnp.float32)
    ok = s > 0
    total = jnp.sum(jnp.where(ok, MAX_SCORE / jnp.where(ok, s, 1.0), 0.0), axis=-1)
    n = jnp.sum(ok, axis=-1)
    return jnp.where(n > 0, n / jnp.where(n > 0, total, 1.0), 0.0)


def empathy_mean(scores: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """`scores`: [B, K]; `weights`: None, [K] or [B, K] (one row per completion) -> [B]
    Σ w s/5 / Σ w (0 where the weights sum to 0)."""
    s = jnp.asarray(scores, jnp.float32) / MAX_SCORE
    if weights is None:
        return jnp.mean(s, axis=-1)
    w = jnp.broadcast_to(jnp.asarray(weights, jnp.float32), s.shape)
    total = jnp.sum(w, axis=-1)
    return jnp.where(total > 0, jnp.sum(w * s, axis=-1) / jnp.where(total > 0, total, 1.0), 0.0)


def empathy_geometric(scores: jax.Array) -> jax.Array:
    """`scores`: [B, K] -> [B] geometric mean of s/5 over positive scores."""
    s = jnp.asarray(scores, jnp.float32) / MAX_SCORE
    ok = s > 0
    logs = jnp.sum(jnp.where(ok, jnp.log(jnp.where(ok, s, 1.0)), 0.0), axis=-1)
    n = jnp.sum(ok, axis=-1)
    return jnp.where(n > 0, jnp.exp(logs / jnp.maximum(n, 1)), 0.0)


def length_penalty(lengths: jax.Array, limit: int = 768, coef: float = 0.001) -> jax.Array:
    """`lengths`: [B] completion tokens -> [B] −coef · max(0, L − limit)."""
    excess = jnp.maximum(jnp.asarray(lengths, jnp.float32) - limit, 0.0)
    return -coef * excess


def bystander_term(standby: jax.Array, coef: float = 0.5) -> jax.Array:
    """`standby`: [B] bystander scores in 0..100 -> [B] coef · (S/100 − 1)."""
    return coef * (jnp.asarray(standby, jnp.float32) / 100.0 - 1.0)


def empathy_reward(scores: jax.Array, mode: str, weights: jax.Array | None = None) -> jax.Array:
    """[B, K] empathy scores -> [B] by `mode` (one of `MODES`)."""
    if mode == "harmonic":
        return empathy_harmonic(scores)
    if mode == "geometric":
        return empathy_geometric(scores)
    if mode == "mean":
        return empathy_mean(scores, weights)
    raise ValueError(f"config.reward.mode: {mode!r} is not one of {MODES}")


def make_compose(
    cfg: RewardConfig,
    kinds: Sequence[str],
    user_weights: np.ndarray | None = None,
    user_perspectives: Sequence[str] = EMPATHY_KINDS,
) -> Callable[[jax.Array, jax.Array, Mapping[str, jax.Array]], jax.Array]:
    """The GRPO trainer's `compose(scores [B, R], lengths [B], features) -> rewards [B]`.

    Args:
      cfg: the reward section (mode, weights, the two auxiliary terms).
      kinds: the names of the R score columns (`EMPATHY_KINDS`, then "standby" when judged).
      user_weights: optional [U, K] table of per-user weights over `user_perspectives`
        (`jaxmethods.methods.perm.user_weights`): the empathy term is then the mean of the
        scale-normalised scores (s/5, S_by/100) weighted by row `features["user"]` ([B] int32)
        of the table, replacing `cfg.mode`. When "standby" is one of `user_perspectives` the
        bystander term is not added again.
      user_perspectives: the K columns of `user_weights`, each one of `kinds`.
    """
    kinds = tuple(kinds)
    missing = [k for k in EMPATHY_KINDS if k not in kinds]
    if missing:
        raise ValueError(f"make_compose: score columns {kinds} lack {missing}")
    if cfg.use_standby and "standby" not in kinds:
        raise ValueError("make_compose: config.reward.use_standby needs a 'standby' score column")
    emp_idx = np.array([kinds.index(k) for k in EMPATHY_KINDS])
    fixed = np.asarray(cfg.weights, np.float32) if cfg.weights else None
    table = user_idx = user_scale = None
    use_standby = cfg.use_standby
    if user_weights is not None:
        persp = tuple(user_perspectives)
        table = jnp.asarray(user_weights, jnp.float32)
        if table.ndim != 2 or table.shape[1] != len(persp):
            raise ValueError(
                f"make_compose: user_weights must be [U, {len(persp)}] over {persp}, got "
                f"{table.shape}"
            )
        absent = [p for p in persp if p not in kinds]
        if absent:
            raise ValueError(f"make_compose: user perspectives {absent} are not score columns")
        user_idx = np.array([kinds.index(p) for p in persp])
        user_scale = np.array([SCALE[p] for p in persp], np.float32)
        use_standby = use_standby and "standby" not in persp
    standby_idx = kinds.index("standby") if use_standby else None

    def compose(scores, lengths, features):
        scores = jnp.asarray(scores, jnp.float32)
        if table is not None:
            s = scores[:, user_idx] / user_scale * MAX_SCORE  # empathy_mean divides by 5
            reward = empathy_mean(s, table[jnp.asarray(features["user"], jnp.int32)])
        else:
            reward = empathy_reward(scores[:, emp_idx], cfg.mode, fixed)
        if cfg.use_length_penalty:
            reward = reward + length_penalty(lengths, cfg.length_limit, cfg.length_coef)
        if standby_idx is not None:
            reward = reward + bystander_term(scores[:, standby_idx], cfg.standby_coef)
        return reward.astype(jnp.float32)

    return compose
