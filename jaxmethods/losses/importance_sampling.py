"""Difficulty-aware importance sampling over a fixed set of training items (DRC's triplets).

Pure functions of arrays; each works on NumPy arrays (the host-side sampler,
`jaxmethods.methods.drc.sampler`) and on JAX arrays (inside jit) alike, choosing the namespace
from its input.

With running per-item losses l_1..l_N, items are drawn with probability p_t and each draw is
weighted by w_t = 1 / (N p_t), so that E_{t~p}[w_t l_t] = (1/N) sum_t l_t: the weighted batch
mean estimates the uniform mean without bias, while hard (high-loss) items are seen more often.
The DRC paper's formula is unknown [reconstruction: verify]; three are selectable:

    "power"    p_t ∝ (l_t + eps)^alpha          (loss-proportional for alpha = 1)
    "softmax"  p_t ∝ exp(l_t / T)               (tempered softmax)
    "uniform"  p_t = 1 / N                      (weights all 1)

and any of them is mixed with the uniform distribution,  p <- (1 - lambda) p + lambda / N
(`uniform_mix` = lambda), which bounds every weight: w_t <= 1 / lambda.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FORMULAS = ("softmax", "power", "uniform")


def _xp(x: Any):
    """jax.numpy for JAX arrays (tracers included), numpy for anything else."""
    import jax

    if isinstance(x, jax.Array):  # tracers are jax.Array instances too
        import jax.numpy as jnp

        return jnp
    return np


def sampling_probs(
    running_losses: Any,
    formula: str = "softmax",
    *,
    temperature: float = 1.0,
    alpha: float = 1.0,
    uniform_mix: float = 0.0,
    eps: float = 1e-8,
) -> Any:
    """Sampling distribution over N items from their running losses.

    Args:
      running_losses: [N] float, the current per-item loss estimates (>= 0 for "power").
      formula: "softmax" (p ∝ exp(l / temperature)), "power" (p ∝ (l + eps)^alpha) or "uniform".
      temperature: T of "softmax" (> 0); larger = closer to uniform.
      alpha: exponent of "power" (>= 0); 0 = uniform, 1 = loss-proportional.
      uniform_mix: lambda in [0, 1]: p <- (1 - lambda) p + lambda / N.
      eps: added to the losses of "power" so that zero-loss items keep a non-zero probability.
    Returns:
      p [N] float (float64 for NumPy input, the input's float dtype for JAX), sums to 1.
    """
    if formula not in FORMULAS:
        raise ValueError(f"sampling_probs: formula {formula!r} is not one of {FORMULAS}")
    if not 0.0 <= uniform_mix <= 1.0:
        raise ValueError(f"sampling_probs: uniform_mix must be in [0, 1], got {uniform_mix}")
    xp = _xp(running_losses)
    losses = xp.asarray(running_losses)
    if losses.ndim != 1 or losses.shape[0] == 0:
        raise ValueError(
            f"sampling_probs: running_losses must be [N] with N > 0, got {losses.shape}"
        )
    losses = losses.astype(np.float64 if xp is np else xp.result_type(losses.dtype, xp.float32))
    n = losses.shape[0]
    if formula == "uniform":
        return xp.full((n,), 1.0 / n, losses.dtype)
    if formula == "softmax":
        if temperature <= 0:
            raise ValueError(f"sampling_probs: temperature must be > 0, got {temperature}")
        z = losses / temperature
        e = xp.exp(z - xp.max(z))
    else:
        if alpha < 0:
            raise ValueError(f"sampling_probs: alpha must be >= 0, got {alpha}")
        e = (xp.maximum(losses, 0.0) + eps) ** alpha
    p = e / xp.sum(e)
    if uniform_mix > 0:
        p = (1.0 - uniform_mix) * p + uniform_mix / n
    return p


def importance_weights(probs: Any, indices: Any) -> Any:
    """Unbiasedness weights w = 1 / (N p[indices]) of items drawn from `probs`.

    Args:
      probs: [N] sampling distribution.
      indices: [b] int, the drawn items.
    Returns:
      [b] float32; all 1 when p is uniform.
    """
    xp = _xp(probs)
    probs = xp.asarray(probs)
    n = probs.shape[0]
    return (1.0 / (n * probs[indices])).astype(xp.float32)


def weighted_mean(losses: Any, weights: Any) -> Any:
    """mean_b w_b l_b: the unbiased estimate of the uniform mean loss from a weighted batch."""
    xp = _xp(losses)
    return xp.mean(xp.asarray(weights) * xp.asarray(losses))


def update_running_losses(
    running: Any, seen: Any, indices: Any, losses: Any, momentum: float = 0.9
) -> tuple[Any, Any]:
    """Exponential moving average of per-item losses, first observation taken as is.

        r_t <- losses            if item t was never seen
        r_t <- m r_t + (1 - m) l otherwise

    An item drawn several times in one batch takes the mean of its losses there.

    Args:
      running: [N] float running losses. seen: [N] bool, items observed at least once.
      indices: [b] int drawn items; losses: [b] their current losses.
      momentum: m in [0, 1).
    Returns:
      (running [N], seen [N]) new arrays (the inputs are not modified).
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"update_running_losses: momentum must be in [0, 1), got {momentum}")
    xp = _xp(running)
    running = xp.asarray(running)
    if xp is np:  # O(b) work on the touched items (plus the copies that keep this pure)
        idx = np.asarray(indices).reshape(-1)
        vals = np.asarray(losses, running.dtype).reshape(-1)
        uniq, inv = np.unique(idx, return_inverse=True)
        batch_mean = np.bincount(inv, weights=vals) / np.bincount(inv)
        seen = np.asarray(seen, bool)
        new, new_seen = running.copy(), seen.copy()
        old = running[uniq]
        new[uniq] = np.where(seen[uniq], momentum * old + (1.0 - momentum) * batch_mean, batch_mean)
        new_seen[uniq] = True
        return new, new_seen
    idx = xp.asarray(indices)
    vals = xp.asarray(losses).astype(running.dtype)
    n = running.shape[0]
    total = xp.zeros((n,), running.dtype).at[idx].add(vals)
    count = xp.zeros((n,), xp.int32).at[idx].add(1)
    hit = count > 0
    batch_mean = total / xp.maximum(count, 1)
    ema = momentum * running + (1.0 - momentum) * batch_mean
    new = xp.where(hit, xp.where(xp.asarray(seen), ema, batch_mean), running)
    return new.astype(running.dtype), xp.asarray(seen) | hit
