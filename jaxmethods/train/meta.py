"""Generic gradient-based meta-learning (MAML-style) over any subset of inner parameters.

The inner loop adapts `inner` parameters with a *differentiable* optax optimizer started from a
fresh state, for a fixed number of steps under `lax.scan`; `outer` parameters are held fixed in
the inner loop. Tasks are batched with `vmap` over padded, masked task data. Hypergradients:

- "second_order": reverse mode through the unrolled inner loop (exact MAML);
- "first_order":  inner gradients are `stop_gradient`ed (FOMAML), so d adapted / d inner = I;
- "forward":      the gradient w.r.t. `inner` by forward mode (`jax.jacfwd`; cheap when `inner`
                  is small, e.g. MRM's K = 2 reward-weight logits), the gradient w.r.t. `outer`
                  by reverse mode. Exact, so it equals "second_order".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import optax

HYPERGRAD_MODES = ("second_order", "first_order", "forward")

InnerLoss = Callable[[Any, Any, Any], jax.Array]  # (inner, outer, task_data) -> scalar


@dataclass(frozen=True)
class InnerLoopConfig:
    """The inner optimizer.

    `optimizer` "adam" (as in MRM's `higher` inner loop: betas (0.9, 0.999), eps outside the sqrt,
    `eps_root` 0) or "sgd". A positive `eps_root` keeps reverse mode finite when an inner gradient
    component is exactly 0 (d sqrt(v)/dv is infinite at 0), at a ~eps_root relative change in value.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    steps: int = 1
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    eps_root: float = 0.0

    def make(self) -> optax.GradientTransformation:
        if self.optimizer == "adam":
            return optax.adam(self.lr, b1=self.b1, b2=self.b2, eps=self.eps, eps_root=self.eps_root)
        if self.optimizer == "sgd":
            return optax.sgd(self.lr)
        raise ValueError(f"inner optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")


def adapt(
    inner: Any,
    outer: Any,
    data: Any,
    loss_fn: InnerLoss,
    config: InnerLoopConfig,
    *,
    first_order: bool = False,
) -> Any:
    """`config.steps` optimizer steps on `inner` from a fresh optimizer state; differentiable.

    Args:
      inner: the adapted parameters (any pytree).
      outer: parameters held fixed during adaptation (gradients still flow to them).
      data: the task's support data, passed to `loss_fn(inner, outer, data)`.
    Returns:
      the adapted `inner` pytree.
    """
    tx = config.make()
    grad = jax.grad(loss_fn)

    def body(carry, _):
        params, opt_state = carry
        g = grad(params, outer, data)
        if first_order:
            g = jax.lax.stop_gradient(g)
        updates, opt_state = tx.update(g, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    (adapted, _), _ = jax.lax.scan(body, (inner, tx.init(inner)), None, length=config.steps)
    return adapted


def adapted_task_losses(
    inner: Any,
    outer: Any,
    tasks: Any,
    *,
    support_loss: InnerLoss,
    query_loss: InnerLoss,
    config: InnerLoopConfig,
    first_order: bool = False,
) -> jax.Array:
    """Query loss after adapting on the support set, for every task in parallel.

    Args:
      tasks: a pytree with leading task dimension T, holding `"support"` and `"query"` subtrees.
    Returns:
      [T] query losses.
    """

    def one(task):
        adapted = adapt(
            inner, outer, task["support"], support_loss, config, first_order=first_order
        )
        return query_loss(adapted, outer, task["query"])

    return jax.vmap(one)(tasks)


def meta_value_and_grad(
    objective: Callable[[Any, Any, bool], tuple[jax.Array, Any]],
    inner: Any,
    outer: Any,
    mode: str = "second_order",
) -> tuple[tuple[jax.Array, Any], tuple[Any, Any]]:
    """Value and hypergradient of `objective(inner, outer, first_order) -> (scalar, aux)`.

    Returns `((value, aux), (grad_inner, grad_outer))`.
    """
    if mode not in HYPERGRAD_MODES:
        raise ValueError(f"hypergradient mode must be one of {HYPERGRAD_MODES}, got {mode!r}")
    first_order = mode == "first_order"
    fn = lambda i, o: objective(i, o, first_order)
    if mode in ("second_order", "first_order"):
        return jax.value_and_grad(fn, argnums=(0, 1), has_aux=True)(inner, outer)
    (value, aux), g_outer = jax.value_and_grad(lambda o: fn(inner, o), has_aux=True)(outer)
    g_inner = jax.jacfwd(lambda i: fn(i, outer)[0])(inner)
    return (value, aux), (g_inner, g_outer)
