"""DRC's StyleTower / SemTower and FusionNetwork against NumPy transcriptions of
`Tower(q, kv) = FFN(LN(q + MHA(q, kv, kv)))`: one feature per query token, swapping q and kv,
masked keys, the explicit all-masked case, and the fusion's routing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy.special import erf

from jaxmethods.methods.drc.fusion import FusionConfig, FusionNetwork, FusionParam
from jaxmethods.methods.drc.towers import DualTower, Tower, TowerConfig, TowerParam, check_kv_mask

H, HEADS = 16, 2


def w(module, name):
    d = getattr(module, name)
    return np.asarray(d.kernel[...], np.float64), np.asarray(d.bias[...], np.float64)


def np_ln(x, ln, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * np.asarray(ln.scale[...]) + np.asarray(ln.bias[...])


def np_mha(attn, q, kv, mask=None):
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = (
        w(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")
    )
    b, nq, d = q.shape
    dh = d // HEADS
    out = np.zeros((b, nq, d))
    for i in range(b):
        keys = np.arange(kv.shape[1]) if mask is None else np.flatnonzero(mask[i])
        if len(keys) == 0:
            continue  # all keys masked: the attention term is 0
        qq, kk, vv = q[i] @ wq + bq, kv[i, keys] @ wk + bk, kv[i, keys] @ wv + bv
        heads = []
        for h in range(HEADS):
            sl = slice(h * dh, (h + 1) * dh)
            s = qq[:, sl] @ kk[:, sl].T / np.sqrt(dh)
            p = np.exp(s - s.max(-1, keepdims=True))
            heads.append((p / p.sum(-1, keepdims=True)) @ vv[:, sl])
        out[i] = np.concatenate(heads, -1) @ wo + bo
    return out


def np_tower(t, q, kv, mask=None):
    h = np_ln(q + np_mha(t.attn, q, kv, mask), t.norm)
    (w1, b1), (w2, b2) = w(t, "ffn_in"), w(t, "ffn_out")
    a = h @ w1 + b1
    return (0.5 * a * (1 + erf(a / np.sqrt(2)))) @ w2 + b2


RNG = np.random.default_rng(0)
E_A, E_S = RNG.normal(size=(2, 5, H)), RNG.normal(size=(2, 3, H))  # E_a [B, 5, H], E_s [B, 3, H]
MASK = np.array([[True, False, True], [False, False, False]])  # row 1: every key masked
F_STY, F_SEM = RNG.normal(size=(2, 5, H)), RNG.normal(size=(2, 7, H))
STY_MASK = np.arange(5)[None].repeat(2, 0) < 4  # the last style feature is padding


def build():
    return {
        "towers": DualTower(TowerConfig(num_heads=HEADS), H, rngs=nnx.Rngs(0)),
        # abstract (shapes only): nothing of it is computed, so its init is not compiled either
        "small": nnx.eval_shape(
            lambda: Tower(TowerConfig(dim=8, num_heads=2), H, rngs=nnx.Rngs(1))
        ),
        "joint": FusionNetwork(
            FusionConfig(num_latents=4, num_heads=HEADS), H, 24, rngs=nnx.Rngs(0)
        ),
        "split": FusionNetwork(
            FusionConfig(num_latents=4, num_heads=HEADS, mode="split"), H, 24, rngs=nnx.Rngs(0)
        ),
    }


@pytest.fixture(scope="module")
def mods():
    return build()


@pytest.fixture(scope="module")
def outs(mods):
    """Every tower / fusion output the tests read, from one jitted program (one compile); the
    variants of one call are stacked along the batch (an all-True mask equals no mask)."""
    graphdef, state = nnx.split({k: v for k, v in mods.items() if k != "small"})
    ones = lambda *shape: np.ones(shape, bool)

    @jax.jit
    def run(state, e_a, e_s, f_sty, f_sem):
        m = nnx.merge(graphdef, state)
        t, cat = m["towers"], jnp.concatenate
        e_s2 = e_s.at[0, 1].add(10.0)  # a masked key of row 0
        f_sty2 = f_sty.at[:, 4].add(5.0)  # the masked style feature
        sem = t.sem(cat([e_a] * 3), cat([e_s, e_s, e_s2]), cat([ones(2, 3), MASK, MASK]))
        joint = m["joint"](
            cat([f_sty, f_sty, f_sty, f_sty2]),
            cat([f_sem, f_sem + 1.0, f_sem, f_sem]),
            sty_mask=cat([ones(2, 5), ones(2, 5), STY_MASK, STY_MASK]),
        )
        split = m["split"](cat([f_sty, f_sty]), cat([f_sem, f_sem + 1.0]))
        return {
            "f_a": t.style(e_a, e_s),
            "f_s": t.style(e_s, e_a),
            "sem": sem[:2], "sem_masked": sem[2:4], "sem_masked2": sem[4:],
            "joint": joint[:2], "joint_sem1": joint[2:4], "joint_m": joint[4:6],
            "joint_m2": joint[6:], "split": split[:2], "split_sem1": split[2:],
        }  # fmt: skip

    out = run(state, E_A, E_S, F_STY, F_SEM)
    g_small, s_small = nnx.split(mods["small"])
    out["small"] = jax.eval_shape(lambda st: nnx.merge(g_small, st)(E_A, E_S), s_small)
    return {k: np.asarray(v) if k != "small" else v for k, v in out.items()}


def check_one_feature_per_query_and_swap_gives_the_other_side(mods, outs):
    style = mods["towers"].style
    assert outs["f_a"].shape == (2, 5, H) and outs["f_s"].shape == (2, 3, H)
    np.testing.assert_allclose(outs["f_a"], np_tower(style, E_A, E_S), atol=1e-4)  # F_sty^a
    np.testing.assert_allclose(outs["f_s"], np_tower(style, E_S, E_A), atol=1e-4)  # F_sty^s
    # identical architecture, separate weights
    np.testing.assert_allclose(outs["sem"], np_tower(mods["towers"].sem, E_A, E_S), atol=1e-4)
    assert not np.allclose(outs["sem"], outs["f_a"])


def check_masked_keys_are_ignored_and_all_masked_rows_are_explicit(mods, outs):
    sem = mods["towers"].sem
    out = outs["sem_masked"]
    np.testing.assert_allclose(out, np_tower(sem, E_A, E_S, MASK), atol=1e-4)
    assert np.isfinite(out).all()
    # row 1 has no real key: Tower = FFN(LN(q)) exactly
    np.testing.assert_allclose(out[1], np_tower(sem, E_A[1:], E_S[1:, :0])[0], atol=1e-4)
    np.testing.assert_allclose(outs["sem_masked2"], out, atol=1e-5)  # masked key changed
    with pytest.raises(ValueError, match="row 1"):
        check_kv_mask(MASK, "history kv")
    check_kv_mask(np.ones((2, 3), bool))


def check_tower_dim_projection_and_variable_types(mods, outs):
    t = mods["small"]
    assert outs["small"].shape == (2, 5, 8)
    assert len(jax.tree.leaves(nnx.state(t, TowerParam))) == len(
        jax.tree.leaves(nnx.state(t, nnx.Param))
    )  # every weight has the tower's own type
    with pytest.raises(ValueError, match="kv_mask"):
        t(E_A, E_S, np.ones((2, 4), bool))


def check_fusion_shapes_and_split_routing(mods, outs):
    assert outs["joint"].shape == (2, 4, 24)
    assert not np.allclose(outs["joint_sem1"][:, :2], outs["joint"][:, :2])
    # split: the first K/2 latents ignore the semantic features, the rest depend on them
    np.testing.assert_allclose(outs["split_sem1"][:, :2], outs["split"][:, :2], atol=1e-6)
    assert not np.allclose(outs["split_sem1"][:, 2:], outs["split"][:, 2:])
    np.testing.assert_allclose(outs["joint_m2"], outs["joint_m"], atol=1e-5)  # masked feature
    joint = mods["joint"]
    assert len(jax.tree.leaves(nnx.state(joint, FusionParam))) == len(
        jax.tree.leaves(nnx.state(joint, nnx.Param))
    )


def test_towers_and_fusion(mods, outs):
    """One test over the module's single compiled program (a second test would make the other
    pytest-xdist worker compile it again)."""
    check_one_feature_per_query_and_swap_gives_the_other_side(mods, outs)
    check_masked_keys_are_ignored_and_all_masked_rows_are_explicit(mods, outs)
    check_tower_dim_projection_and_variable_types(mods, outs)
    check_fusion_shapes_and_split_routing(mods, outs)
