"""Distributionally robust reweightings of per-sample losses (BalDRO). Pure jax.

* `dv_aggregate`: the Donsker-Varadhan dual of a KL-regularised DRO inner problem,
  `sign * beta * (logsumexp(sign * l / beta) - log n)` over the valid entries (BalDRO-DV).
* `group_topk_mask` / `group_topk_indices`: the discrete, GroupDRO-style selection of the k
  hardest samples, k = max(1, floor(B * ratio)) (BalDRO-G), and `random_subset_*` for the
  same-size random retain subset that goes with it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmethods.losses.common import masked_mean


def _valid_mask(losses: jnp.ndarray, mask: jnp.ndarray | None) -> jnp.ndarray:
    if mask is None:
        return jnp.ones(losses.shape, bool)
    if mask.shape != losses.shape:
        raise ValueError(f"mask shape {mask.shape} does not match losses shape {losses.shape}")
    return mask.astype(bool)


def dv_aggregate(
    losses: jnp.ndarray,
    beta: float,
    mask: jnp.ndarray | None = None,
    sign: int = -1,
) -> jnp.ndarray:
    """Donsker-Varadhan aggregate of losses over all valid entries -> scalar.

    sign = -1 (the authors' code, DrNPO/DrSimNPO/DrSatImp):
        L = -beta * log( mean_i exp(-l_i / beta) )          (a soft-min)
    sign = +1 (the soft-max form of the paper's text, the closed form of the KL-regularised sup):
        L = +beta * log( mean_i exp(+l_i / beta) )
    Computed as `sign * beta * (logsumexp(sign * l / beta) - log n)`, finite for any l / beta,
    unlike the code's naive exp/mean/log. dL/dl_i = softmax_i(sign * l / beta) (see `dv_weights`):
    the weights sum to 1, beta -> inf gives mean(l), beta -> 0 gives min(l) (sign -1) or max(l).

    Args:
      losses: any shape (per-sample [B] for NPO/SimNPO, per-token [B, T] for SatImp: all valid
        tokens of the batch are flattened into one set).
      beta: temperature beta_dv > 0 (`beta_dv_forget` / `sigma_forget` in the authors' configs).
      mask: optional bool, same shape; False entries are excluded from the mean. With no valid
        entry the result is 0.
      sign: -1 or +1, see above.
    """
    if sign not in (-1, 1):
        raise ValueError(f"dv_aggregate: sign must be -1 or +1, got {sign!r}")
    if not beta > 0:
        raise ValueError(f"dv_aggregate: beta must be > 0, got {beta!r}")
    valid = _valid_mask(losses, mask)
    losses = losses.astype(jnp.float32)
    count = jnp.sum(valid)
    # Centering on the (constant) mean leaves the value and dL/dl unchanged but keeps float32
    # precise when beta is large: the log-mean-exp is then a small correction to the mean.
    center = jax.lax.stop_gradient(masked_mean(losses, valid))
    scaled = jnp.where(valid, sign * (losses - center) / beta, -jnp.inf)
    lse = jax.nn.logsumexp(scaled, where=valid)
    value = center + sign * beta * (lse - jnp.log(jnp.maximum(count, 1).astype(jnp.float32)))
    return jnp.where(count > 0, value, 0.0)


def dv_weights(
    losses: jnp.ndarray,
    beta: float,
    mask: jnp.ndarray | None = None,
    sign: int = -1,
) -> jnp.ndarray:
    """The DRO weights dL/dl of `dv_aggregate`: softmax(sign * l / beta) over valid entries.

    Same shape as `losses`, 0 at masked entries, summing to 1 (for logging and analysis).
    """
    valid = _valid_mask(losses, mask)
    scaled = jnp.where(valid, sign * losses.astype(jnp.float32) / beta, -jnp.inf)
    flat = jax.nn.softmax(scaled.reshape(-1), where=valid.reshape(-1))
    return jnp.where(valid, flat.reshape(losses.shape), 0.0)


def topk_count(batch_size: int, ratio: float) -> int:
    """k = max(1, int(B * ratio)), the authors' `compute_forget_group` rule (static)."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"sampling ratio must be in (0, 1], got {ratio!r}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    return max(1, int(batch_size * ratio))


def _ranks_desc(scores: jnp.ndarray, valid: jnp.ndarray) -> jnp.ndarray:
    """Rank of each entry when sorted by score, largest first (invalid last, ties by index)."""
    keyed = jnp.where(valid, scores.astype(jnp.float32), -jnp.inf)
    order = jnp.argsort(-keyed, stable=True)
    return jnp.zeros(scores.shape, jnp.int32).at[order].set(jnp.arange(scores.shape[0]))


def _dynamic_k(valid: jnp.ndarray, ratio: float) -> jnp.ndarray:
    n_valid = jnp.sum(valid).astype(jnp.float32)
    # A small epsilon so that float32 n * ratio matches Python's int(B * ratio) for exact products.
    return jnp.maximum(1, jnp.floor(n_valid * ratio + 1e-6).astype(jnp.int32))


def group_topk_mask(
    hardness: jnp.ndarray, ratio: float, mask: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Selects the k hardest samples: [B] -> [B] bool with exactly k True (BalDRO-G).

    k = max(1, floor(n * ratio)) where n = B (or the number of valid rows when `mask` is given).
    Hardness is `-avg NLL` (high = still memorised); callers compute it under stop_gradient, and
    the selection itself has no gradient. Ties are broken by index (lowest first).
    """
    if hardness.ndim != 1:
        raise ValueError(f"group_topk_mask: hardness must be [B], got shape {hardness.shape}")
    topk_count(hardness.shape[0], ratio)  # validates ratio
    valid = _valid_mask(hardness, mask)
    hardness = jax.lax.stop_gradient(hardness)
    k = topk_count(hardness.shape[0], ratio) if mask is None else _dynamic_k(valid, ratio)
    return (_ranks_desc(hardness, valid) < k) & valid


def group_topk_indices(
    hardness: jnp.ndarray, ratio: float, mask: jnp.ndarray | None = None
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Indices of the k hardest samples, for gathering only them (static shapes).

    Returns (idx [k_max] int32, selected [k_max] bool) with k_max = max(1, int(B * ratio)). Without
    a mask every returned row is selected; with one, rows past the dynamic k of the valid rows
    (or invalid rows) are returned with selected=False so reductions can skip them.
    """
    if hardness.ndim != 1:
        raise ValueError(f"group_topk_indices: hardness must be [B], got shape {hardness.shape}")
    k_max = topk_count(hardness.shape[0], ratio)
    valid = _valid_mask(hardness, mask)
    keyed = jnp.where(valid, jax.lax.stop_gradient(hardness).astype(jnp.float32), -jnp.inf)
    _, idx = jax.lax.top_k(keyed, k_max)
    if mask is None:
        return idx.astype(jnp.int32), jnp.ones((k_max,), bool)
    selected = (jnp.arange(k_max) < _dynamic_k(valid, ratio)) & valid[idx]
    return idx.astype(jnp.int32), selected


def random_subset_mask(key: jax.Array, k: int | jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """A uniformly random subset of min(k, n_valid) valid rows: [B] bool (G's retain subset)."""
    valid = mask.astype(bool)
    scores = jax.random.uniform(key, valid.shape)
    return (_ranks_desc(scores, valid) < k) & valid


def random_subset_indices(
    key: jax.Array, batch_size: int, k: int, mask: jnp.ndarray | None = None
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Indices of k uniformly random rows (a random permutation's first k), static shapes.

    Returns (idx [min(k, B)] int32, valid [min(k, B)] bool); rows of `mask` that are False are
    drawn last and reported invalid.
    """
    k = min(k, batch_size)
    valid = jnp.ones((batch_size,), bool) if mask is None else mask.astype(bool)
    scores = jnp.where(valid, jax.random.uniform(key, (batch_size,)), -1.0)
    _, idx = jax.lax.top_k(scores, k)
    return idx.astype(jnp.int32), valid[idx]
