"""MRM's peers (per-user heads, LoRe, PAL-A, VPL): losses against NumPy transcriptions of the
papers' formulas, the PAL mixture identity, and one run with every peer, resumed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import mrm as mrm_configs
from configs.common import set_path
from jaxmethods.methods.mrm import peers
from jaxmethods.methods.mrm import run as mrm_run
from jaxmethods.models.personalized_peers import (
    IdealPointReward,
    LowRankReward,
    UserWeights,
    VariationalPreferenceReward,
    gaussian_kl,
)

SCALE = 0.01
N, D, T, P = 40, 6, 3, 5


def np_log1p_exp_neg(m):
    """-log σ(m) = log(1 + e^{-m})."""
    return np.logaddexp(0.0, -m)


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_user_bt(margins, mask, user_mask):
    per_user = [(np_log1p_exp_neg(m)[k]).mean() for m, k in zip(margins, mask)]
    return float(np.mean([v for v, ok in zip(per_user, user_mask) if ok]))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(N, D)).astype(np.float32) * 30
    c = rng.integers(0, N, size=(T, P)).astype(np.int32)
    r = rng.integers(0, N, size=(T, P)).astype(np.int32)
    mask = rng.random((T, P)) < 0.7
    mask[:, 0] = True
    return emb, c, r, mask


def table_loss(model, data, users, user_mask):
    """The project's LoRe/PAL training loss on a batch of the `data` pairs."""
    emb, c, r, mask = data
    graphdef, table, shared = nnx.split(model, UserWeights, ...)
    batch = {
        "pairs": (jnp.asarray(c), jnp.asarray(r), jnp.asarray(mask)),
        "user": jnp.asarray(users, jnp.int32),
        "user_mask": jnp.asarray(user_mask),
    }
    params = {"users": table, "shared": shared}
    return peers.table_peer_loss(graphdef)(params, jnp.asarray(emb), batch, None)[0]


@pytest.mark.slow  # > 15 s on 2 cores
def test_lore_loss_matches_numpy(data):
    emb, c, r, mask = data
    model = LowRankReward(D, 3, 4, scale=SCALE, seed=1)
    users_idx, user_mask = np.array([2, 0, 3]), np.array([True, True, False])
    loss = table_loss(model, data, users_idx, user_mask)
    V = np.asarray(model.basis[...])
    theta = np.asarray(model.user_logits[...])
    margins = [
        SCALE * (emb[c[t]] - emb[r[t]]) @ V @ np_softmax(theta[users_idx[t]]) for t in range(T)
    ]
    np.testing.assert_allclose(loss, np_user_bt(margins, mask, user_mask), rtol=1e-5)


@pytest.mark.parametrize("distance", [pytest.param("squared", marks=pytest.mark.slow), "euclidean"])
def test_pal_loss_matches_numpy(data, distance):
    emb, c, r, mask = data
    model = IdealPointReward(D, 4, 3, 4, scale=SCALE, distance=distance, seed=2)
    users_idx, user_mask = np.array([1, 1, 3]), np.array([True, True, True])
    loss = table_loss(model, data, users_idx, user_mask)
    A, b = np.asarray(model.projector.kernel[...]), np.asarray(model.projector.bias[...])
    protos, theta = np.asarray(model.prototypes[...]), np.asarray(model.user_logits[...])
    f = lambda x: (SCALE * x) @ A + b

    def reward(x, u):
        ideal = (np_softmax(theta[u]) @ protos) @ A + b
        sq = ((f(x) - ideal) ** 2).sum(-1)
        return -sq if distance == "squared" else -np.sqrt(sq)

    margins = [reward(emb[c[t]], users_idx[t]) - reward(emb[r[t]], users_idx[t]) for t in range(T)]
    np.testing.assert_allclose(loss, np_user_bt(margins, mask, user_mask), rtol=1e-4)


@pytest.mark.slow  # > 10 s on 2 cores under make test
def test_pal_squared_margin_is_the_mixture_of_prototype_rewards(data):
    emb, c, r, _ = data
    model = IdealPointReward(D, 4, 3, 1, scale=SCALE, distance="squared", seed=3)
    logits = np.array([0.3, -1.0, 2.0], np.float32)
    got = model.margin(jnp.asarray(emb[c[0]]), jnp.asarray(emb[r[0]]), jnp.asarray(logits))
    A, b = np.asarray(model.projector.kernel[...]), np.asarray(model.projector.bias[...])
    protos = np.asarray(model.prototypes[...])
    f = lambda x: (SCALE * x) @ A + b
    proto_reward = lambda x: -(((f(x)[:, None, :] - f(protos / SCALE)[None]) ** 2).sum(-1))
    mix = lambda x: proto_reward(x) @ np_softmax(logits)  # Σ_k w_k r_k(x)
    np.testing.assert_allclose(got, mix(emb[c[0]]) - mix(emb[r[0]]), rtol=1e-4, atol=1e-5)


def test_per_user_head_loss_matches_numpy(data):
    emb, c, r, mask = data
    w = np.random.default_rng(4).normal(size=D).astype(np.float32)
    got = peers.per_user_head_loss(
        jnp.asarray(w),
        jnp.asarray(emb[c[0]]),
        jnp.asarray(emb[r[0]]),
        jnp.asarray(mask[0]),
        SCALE,
        0.3,
    )
    m = SCALE * (emb[c[0]] - emb[r[0]]) @ w
    want = np_log1p_exp_neg(m)[mask[0]].mean() + 0.15 * (w**2).sum()
    np.testing.assert_allclose(got, want, rtol=1e-5)


def leaky(x):
    return np.where(x > 0, x, 0.2 * x)


def np_mlp(layers, h):
    for i, layer in enumerate(layers):
        h = h @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])
        if i < len(layers) - 1:
            h = leaky(h)
    return h


@pytest.mark.slow  # > 20 s on 2 cores
def test_vpl_negative_elbo_matches_numpy(data):
    emb, c, r, mask = data
    model = VariationalPreferenceReward(D, 8, 3, scale=SCALE, seed=5)
    graphdef, params = nnx.split(model)
    rng = jax.random.key(7)
    q_mask = np.roll(mask, 1, axis=1)
    batch = {
        "support": (jnp.asarray(c), jnp.asarray(r), jnp.asarray(mask)),
        "query": (jnp.asarray(r), jnp.asarray(c), jnp.asarray(q_mask)),
        "task_mask": jnp.asarray([True, False, True]),
    }
    beta = 0.05
    loss, aux = peers.vpl_loss(graphdef, beta)(params, jnp.asarray(emb), batch, rng)
    keys = jax.random.split(rng, T)
    nll, kl = [], []
    for t in range(T):
        pairs = SCALE * np.concatenate([emb[c[t]], emb[r[t]]], -1)
        pooled = np_mlp(model.pair_encoder, pairs)[mask[t]].mean(0)
        mu = np_mlp([model.mean_layer], pooled)
        lv = np_mlp([model.log_var_layer], pooled)
        z = mu + np.exp(0.5 * lv) * np.asarray(jax.random.normal(keys[t], mu.shape))
        rew = lambda x, z=z: np_mlp(
            model.decoder, np.concatenate([SCALE * x, np.broadcast_to(z, (P, 3))], -1)
        )[:, 0]
        m = rew(emb[r[t]]) - rew(emb[c[t]])
        nll.append(np_log1p_exp_neg(m)[q_mask[t]].mean())
        kl.append(0.5 * np.sum(np.exp(lv) + mu**2 - 1 - lv))
    keep = [0, 2]
    want_nll, want_kl = np.mean([nll[i] for i in keep]), np.mean([kl[i] for i in keep])
    np.testing.assert_allclose(aux["bt"], want_nll, rtol=1e-4)
    np.testing.assert_allclose(aux["kl"], want_kl, rtol=1e-4)
    np.testing.assert_allclose(loss, want_nll + beta * want_kl, rtol=1e-4)


def test_gaussian_kl_matches_scipy_free_formula():
    mu, lv = np.array([[0.5, -1.0], [0.0, 0.0]]), np.array([[0.2, -0.3], [0.0, 0.0]])
    var = np.exp(lv)
    # KL(N(μ, σ²) ‖ N(0, 1)) per dimension = log(1/σ) + (σ² + μ²)/2 - 1/2
    want = np.sum(-0.5 * lv + (var + mu**2) / 2 - 0.5, axis=-1)
    np.testing.assert_allclose(gaussian_kl(jnp.asarray(mu), jnp.asarray(lv)), want, rtol=1e-6)
    assert float(gaussian_kl(jnp.zeros(3), jnp.zeros(3))) == 0.0


def peers_config(**overrides):
    c = mrm_configs.get_config("tiny")
    c.data.num_users = 24
    c.data.label_noise = 0.0
    c.data.feature_scale = 30.0
    c.epochs = 2
    c.peers = ("per_user", "lore", "pal", "vpl")
    c.per_user.fit.steps = 50
    c.lore.epochs, c.lore.fit.steps = 30, 30
    c.pal.epochs, c.pal.fit.steps, c.pal.pref_dim = 10, 10, 4
    c.vpl.epochs, c.vpl.latent_dim, c.vpl.hidden_dim = 5, 4, 8
    c.baseline.enabled = True
    c.baseline.epochs = 3
    for key, value in overrides.items():
        set_path(c, key, value)
    return c


@pytest.mark.slow
def test_every_peer_runs_beside_mrm_resumes_and_fills_the_table(tmp_path):
    first = mrm_run.run(peers_config(), str(tmp_path))
    table = first["tables"]["mrm"]
    for label in (
        "MRM (adapted)",
        "global Bradley-Terry",
        "per-user linear heads",
        "LoRe",
        "PAL-A",
        "VPL",
    ):
        assert f"| {label} |" in table
    for name in ("per_user", "lore", "pal", "vpl", "baseline"):
        for split in ("seen", "unseen"):
            assert 0.0 <= first[f"{name}/{split}_acc"] <= 1.0
        assert first[f"{name}/num_seen"] == first["eval/num_seen"]  # same users, same splits
    # Noise-free labels over K = 2 directions: the shared low-rank model must beat chance.
    assert first["lore/overall_acc"] > 0.6
    for name in ("lore", "pal", "vpl"):
        assert (tmp_path / "peers" / name / "checkpoints").is_dir()
    again = mrm_run.run(peers_config(), str(tmp_path))  # everything restored, nothing retrained
    for key in ("lore/overall_acc", "pal/overall_acc", "vpl/overall_acc", "per_user/overall_acc"):
        assert again[key] == first[key]
