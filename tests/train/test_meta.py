"""The generic meta-learning core: differentiable inner optimizers and hypergradient modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxmethods.train.meta import InnerLoopConfig, adapt, adapted_task_losses, meta_value_and_grad


def quad_loss(inner, outer, data):
    """A small problem whose inner gradient depends on both inner and outer parameters."""
    x, y = data
    pred = x @ (inner * outer)
    return jnp.mean((pred - y) ** 2) + 0.1 * jnp.sum(inner**2)


def make_tasks(n_tasks=3, n=6, d=3, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n_tasks, 2, n, d)).astype(np.float32)
    ys = rng.normal(size=(n_tasks, 2, n)).astype(np.float32)
    return {
        "support": (jnp.asarray(xs[:, 0]), jnp.asarray(ys[:, 0])),
        "query": (jnp.asarray(xs[:, 1]), jnp.asarray(ys[:, 1])),
    }


@pytest.mark.slow  # > 10 s on 2 cores under make test
def test_one_adam_step_from_fresh_state_is_sign_like():
    g_fn = jax.grad(quad_loss)
    inner = jnp.array([0.3, -0.2, 0.5])
    outer = jnp.array([1.0, 2.0, -1.0])
    data = make_tasks(1)["support"]
    data = (data[0][0], data[1][0])
    cfg = InnerLoopConfig(optimizer="adam", lr=1e-2, steps=1)
    got = adapt(inner, outer, data, quad_loss, cfg)
    g = g_fn(inner, outer, data)
    want = inner - 1e-2 * g / (jnp.abs(g) + 1e-8)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_sgd_inner_steps_match_manual_unroll():
    inner, outer = jnp.array([0.3, -0.2, 0.5]), jnp.array([1.0, 2.0, -1.0])
    data = jax.tree.map(lambda x: x[0], make_tasks(1)["support"])
    cfg = InnerLoopConfig(optimizer="sgd", lr=0.05, steps=3)
    p = inner
    for _ in range(3):
        p = p - 0.05 * jax.grad(quad_loss)(p, outer, data)
    np.testing.assert_allclose(adapt(inner, outer, data, quad_loss, cfg), p, rtol=1e-5)


def objective_for(cfg, tasks):
    def objective(inner, outer, first_order):
        losses = adapted_task_losses(
            inner,
            outer,
            tasks,
            support_loss=quad_loss,
            query_loss=quad_loss,
            config=cfg,
            first_order=first_order,
        )
        return jnp.sum(losses), losses

    return objective


@pytest.mark.parametrize("optimizer", [pytest.param("sgd", marks=pytest.mark.slow), "adam"])
def test_second_order_meta_gradient_matches_finite_differences(optimizer):
    # float64: Adam's g / (|g| + eps) has large curvature, beyond float32 finite differences.
    with jax.enable_x64(True):
        cfg = InnerLoopConfig(optimizer=optimizer, lr=0.05, steps=2, eps_root=1e-12)
        tasks = jax.tree.map(lambda x: x.astype(jnp.float64), make_tasks())
        objective = objective_for(cfg, tasks)
        inner = jnp.array([0.3, -0.2, 0.5], jnp.float64)
        outer = jnp.array([1.0, 2.0, -1.0], jnp.float64)
        check_grads(
            lambda i, o: objective(i, o, False)[0],
            (inner, outer),
            order=1,
            modes=["rev"],
            eps=1e-4,
            rtol=2e-4,
        )


@pytest.mark.slow  # > 20 s on 2 cores
def test_modes_forward_equals_second_order_and_first_order_differs_for_sgd():
    cfg = InnerLoopConfig(optimizer="sgd", lr=0.1, steps=2)
    objective = objective_for(cfg, make_tasks())
    inner, outer = jnp.array([0.3, -0.2, 0.5]), jnp.array([1.0, 2.0, -1.0])
    (v2, _), g2 = meta_value_and_grad(objective, inner, outer, "second_order")
    (vf, _), gf = meta_value_and_grad(objective, inner, outer, "forward")
    (v1, _), g1 = meta_value_and_grad(objective, inner, outer, "first_order")
    np.testing.assert_allclose(v2, vf, rtol=1e-6)
    np.testing.assert_allclose(v2, v1, rtol=1e-6)  # first order changes gradients, not values
    for a, b in zip(g2, gf):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert not np.allclose(g2[0], g1[0], atol=1e-3)


def test_adam_one_step_second_order_term_is_nearly_zero():
    """One Adam step from zero: d θ'/d g ≈ 0, so all three estimators nearly coincide."""
    cfg = InnerLoopConfig(optimizer="adam", lr=1e-3, steps=1)
    objective = objective_for(cfg, make_tasks())
    inner, outer = jnp.array([0.3, -0.2, 0.5]), jnp.array([1.0, 2.0, -1.0])
    grads = {
        m: meta_value_and_grad(objective, inner, outer, m)[1]
        for m in ("second_order", "forward", "first_order")
    }
    for m in ("forward", "first_order"):
        for a, b in zip(grads["second_order"], grads[m]):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_unknown_mode_and_optimizer_are_clear_errors():
    with pytest.raises(ValueError, match="hypergradient mode"):
        meta_value_and_grad(lambda i, o, f: (0.0, None), 0.0, 0.0, "zeroth")
    with pytest.raises(ValueError, match="inner optimizer"):
        InnerLoopConfig(optimizer="lion").make()
