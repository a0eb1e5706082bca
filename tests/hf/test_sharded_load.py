"""Loading straight onto a 4-device (fsdp=2 x tensor=2) mesh: shardings follow the decoder rules
and the sharded jitted forward equals the single-device logits."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx
from hf_testing import TOL, fixture_path, forward, reference, valid
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxmethods.hf import load_pretrained
from jaxmethods.train.mesh import make_mesh


@pytest.fixture(scope="module")
def mesh():
    if len(jax.devices()) < 4:
        pytest.skip("needs 4 (fake) devices")
    return make_mesh({"fsdp": 2, "tensor": 2}, devices=jax.devices()[:4])


@pytest.mark.parametrize("scan_layers", [False, True])
def test_sharded_logits_equal_single_device(mesh, scan_layers):
    ref = reference("qwen2")
    model = load_pretrained(
        fixture_path("qwen2"), dtype="float32", mesh=mesh, scan_layers=scan_layers
    )
    layer = "model/layers/" if scan_layers else "model/layers/0/"
    lead = (None,) if scan_layers else ()
    state = nnx.state(model)
    specs = {"/".join(map(str, k)): v[...].sharding.spec for k, v in nnx.to_flat_state(state)}
    assert specs[layer + "self_attn/q_proj/kernel"] == P(*lead, "fsdp", "tensor")
    assert specs[layer + "self_attn/q_proj/bias"] == P(*lead, "tensor")
    assert specs[layer + "mlp/down_proj/kernel"] == P(*lead, "tensor", "fsdp")
    assert specs["model/embed_tokens/embedding"] == P("tensor", "fsdp")

    ids = np.concatenate([ref["input_ids"], ref["input_ids"][:1]]).astype(np.int32)
    mask = np.concatenate([ref["attention_mask"], ref["attention_mask"][:1]])
    batch_sharding = NamedSharding(mesh, P("fsdp"))
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, ids, mask):
        return nnx.merge(graphdef, state)(ids, mask)

    with jax.set_mesh(mesh):
        out = run(state, jax.device_put(ids, batch_sharding), jax.device_put(mask, batch_sharding))
    out = np.asarray(out)[:3]
    single = forward(load_pretrained(fixture_path("qwen2"), dtype="float32"), ids[:3], mask[:3])
    np.testing.assert_allclose(valid(out, mask[:3]), valid(single, mask[:3]), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(
        valid(out, ref["attention_mask"]), valid(ref["outputs"], ref["attention_mask"]), **TOL
    )
