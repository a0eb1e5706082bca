"""Mesh construction and regex sharding rules with the FSDP fallback (4 fake CPU devices)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxmethods.train.mesh import batch_size_multiple, data_sharding, make_mesh
from jaxmethods.train.sharding import param_shardings, spec_for


def test_make_mesh_fills_minus_one_and_sets_axis_types():
    mesh = make_mesh({"data": -1, "fsdp": 2, "tensor": 1})
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 1}
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)
    assert batch_size_multiple(mesh) == 4
    assert data_sharding(mesh).spec == P(("data", "fsdp"))


def test_make_mesh_subset_and_errors():
    assert make_mesh({"data": 1, "fsdp": 1, "tensor": 1}).devices.size == 1
    with pytest.raises(ValueError, match="needs 8 devices"):
        make_mesh({"data": 8})
    with pytest.raises(ValueError, match="at most one axis"):
        make_mesh({"data": -1, "fsdp": -1})
    with pytest.raises(ValueError, match="not divisible"):
        make_mesh({"data": -1, "fsdp": 3})


def test_rules_first_match_wins_and_non_dividing_axes_are_dropped():
    mesh = make_mesh({"data": 1, "fsdp": 2, "tensor": 2})
    rules = [(r"embed", P("tensor", "fsdp")), (r"mlp/.*kernel", P("fsdp", "tensor"))]
    assert spec_for("model/embed", (8, 6), 4, mesh, rules) == P("tensor", "fsdp")
    assert spec_for("model/mlp/up/kernel", (6, 5), 4, mesh, rules) == P("fsdp", None)
    with pytest.raises(ValueError, match="has rank 2"):
        spec_for("model/embed", (8,), 4, mesh, rules)


def test_fallback_shards_big_arrays_over_fsdp_on_largest_divisible_dim():
    mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 1})
    tree = {
        "big": jnp.zeros((3, 1024, 512)),
        "small": jnp.zeros((4, 4)),
        "odd": jnp.zeros((3, 1025 * 257)),
    }
    sh = param_shardings(tree, mesh, min_fsdp_bytes=1 << 20)
    assert sh["big"].spec == P(None, "fsdp", None)
    assert sh["small"].spec == P()
    assert sh["odd"].spec == P()  # neither dimension divides by 2 -> replicated
    placed = jax.device_put(tree["big"], sh["big"])
    assert placed.addressable_shards[0].data.shape == (3, 512, 512)


def test_sharded_matmul_equals_single_device():
    mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 1})
    x = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
    w = np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32)
    xs = jax.device_put(x, data_sharding(mesh))
    out = jax.jit(lambda a, b: a @ b)(xs, w)
    np.testing.assert_allclose(out, x @ w, rtol=1e-5, atol=1e-5)
