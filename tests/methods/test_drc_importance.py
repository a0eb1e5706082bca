"""DRC's difficulty-aware importance sampling: the three formulas against NumPy transcriptions,
Monte-Carlo unbiasedness of the 1/(N p) weights, uniform -> weights 1, the running-loss EMA
against a Python loop, the jax path against the NumPy path, and the host sampler's lagged reads
and state round trip."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.losses.importance_sampling import (
    importance_weights,
    sampling_probs,
    update_running_losses,
    weighted_mean,
)
from jaxmethods.methods.drc.sampler import ImportanceSampler, SampledBatches, SamplerConfig

LOSSES = np.array([0.2, 1.5, 3.0, 0.0, 0.7, 2.2, 4.1, 0.05])


def ref_probs(losses, formula, temperature=1.0, alpha=1.0, mix=0.0, eps=1e-8):
    """Direct transcription of the formulas (no max-subtraction: the losses are small)."""
    n = len(losses)
    if formula == "softmax":
        e = np.array([np.exp(v / temperature) for v in losses])
    elif formula == "power":
        e = np.array([(v + eps) ** alpha for v in losses])
    else:
        e = np.ones(n)
    p = e / e.sum()
    return (1 - mix) * p + mix / n


@pytest.mark.parametrize(
    "formula,kw",
    [
        ("softmax", dict(temperature=0.7)),
        ("softmax", dict(temperature=2.0, uniform_mix=0.25)),
        ("power", dict(alpha=1.0)),
        ("power", dict(alpha=2.5, uniform_mix=0.1)),
        ("uniform", dict()),
    ],
)
def test_formulas_match_numpy_reference(formula, kw):
    p = sampling_probs(LOSSES, formula, **kw)
    want = ref_probs(
        LOSSES, formula, kw.get("temperature", 1.0), kw.get("alpha", 1.0), kw.get("uniform_mix", 0)
    )
    np.testing.assert_allclose(p, want, rtol=1e-12)
    assert p.sum() == pytest.approx(1.0)


def test_loss_proportional_is_l_over_sum():
    p = sampling_probs(LOSSES, "power", alpha=1.0, eps=0.0)
    np.testing.assert_allclose(p, LOSSES / LOSSES.sum(), rtol=1e-12)


def test_uniform_probabilities_give_unit_weights():
    idx = np.array([0, 3, 3, 7, 5])
    for p in (sampling_probs(LOSSES, "uniform"), sampling_probs(np.ones(8), "softmax")):
        np.testing.assert_allclose(importance_weights(p, idx), np.ones(5), rtol=1e-6)
    assert importance_weights(sampling_probs(LOSSES, "power"), idx).dtype == np.float32


@pytest.mark.parametrize("formula", ["softmax", "power"])
def test_weighted_sample_mean_is_unbiased(formula):
    """Monte Carlo: the mean over many weighted batches matches the uniform mean within 4 s.e.,
    while the unweighted sample mean is clearly biased towards the hard items."""
    rng = np.random.default_rng(0)
    losses = rng.gamma(2.0, 1.0, size=200)
    sampler = ImportanceSampler(len(losses), SamplerConfig(formula=formula, uniform_mix=0.05))
    sampler.observe(np.arange(len(losses)), losses)
    sampler.flush()  # running losses = the true losses (first observation taken as is)
    np.testing.assert_allclose(sampler.running, losses)
    ests, raw = [], []
    for _ in range(800):
        idx, w = sampler.sample(64)
        ests.append(weighted_mean(losses[idx], w))
        raw.append(losses[idx].mean())
    ests = np.asarray(ests)
    se = ests.std(ddof=1) / np.sqrt(len(ests))
    assert abs(ests.mean() - losses.mean()) < 4 * se
    assert np.mean(raw) - losses.mean() > 10 * se  # the reweighting is what removes the bias


def test_running_losses_match_python_loop():
    rng = np.random.default_rng(1)
    n, m = 10, 0.8
    running, seen = np.zeros(n), np.zeros(n, bool)
    ref_r, ref_s = np.zeros(n), np.zeros(n, bool)
    for _ in range(5):
        idx = rng.integers(0, n, 6)  # duplicates on purpose
        vals = rng.random(6) * 3
        running, seen = update_running_losses(running, seen, idx, vals, m)
        for i in set(idx.tolist()):
            mean = vals[idx == i].mean()
            ref_r[i] = m * ref_r[i] + (1 - m) * mean if ref_s[i] else mean
            ref_s[i] = True
        np.testing.assert_allclose(running, ref_r, rtol=1e-12)
        np.testing.assert_array_equal(seen, ref_s)


def test_jax_path_matches_numpy_path():
    idx = np.array([1, 1, 6, 2])
    vals = np.array([0.5, 1.5, 2.0, 3.0])

    @jax.jit
    def f(losses, running, seen, idx, vals):
        p = sampling_probs(losses, "softmax", temperature=0.5, uniform_mix=0.1)
        return p, importance_weights(p, idx), update_running_losses(running, seen, idx, vals, 0.5)

    seen = np.arange(8) % 2 == 0
    p, w, (r, s) = f(jnp.asarray(LOSSES), jnp.asarray(LOSSES), jnp.asarray(seen), idx, vals)
    p_np = sampling_probs(LOSSES, "softmax", temperature=0.5, uniform_mix=0.1)
    r_np, s_np = update_running_losses(LOSSES, seen, idx, vals, 0.5)
    np.testing.assert_allclose(p, p_np, rtol=1e-5)
    np.testing.assert_allclose(w, importance_weights(p_np, idx), rtol=1e-5)
    np.testing.assert_allclose(r, r_np, rtol=1e-5)
    np.testing.assert_array_equal(s, s_np)


def test_sampler_reads_losses_one_step_late_and_round_trips():
    s = ImportanceSampler(6, SamplerConfig(formula="power", lag=1, uniform_mix=0.0), seed=3)
    _, w = s.sample(4)
    np.testing.assert_allclose(w, 1.0)  # nothing observed yet: uniform
    s.observe(np.array([0, 1]), jnp.asarray([1.0, 3.0]))
    assert not s.seen.any()  # the newest record stays unread (lag 1)
    s.observe(np.array([2]), np.array([2.0]))
    np.testing.assert_array_equal(s.seen, [True, True, False, False, False, False])
    # unseen items take the max observed loss (3.0): p ∝ [1, 3, 3, 3, 3, 3]
    np.testing.assert_allclose(s.probs(), np.array([1, 3, 3, 3, 3, 3]) / 16, rtol=1e-6)
    state = s.get_state()  # flushes the pending record
    assert state["seen"][2]
    t = ImportanceSampler(6, s.cfg, seed=99)
    t.set_state(state)
    np.testing.assert_array_equal(s.sample(5)[0], t.sample(5)[0])
    with pytest.raises(ValueError, match="state has 6 items"):
        ImportanceSampler(3, s.cfg).set_state(state)


def test_sampled_batches_iterator_feeds_losses_back_and_resumes():
    losses = np.linspace(0.1, 3.0, 10)
    make = lambda seed: SampledBatches(
        ImportanceSampler(10, SamplerConfig(lag=0), seed=seed),
        lambda idx, w: {"ids": idx, "weight": w},
        batch_size=4,
    )
    it = make(0)
    for _ in range(5):
        batch = next(it)
        it.observe({"per_triplet_loss": losses[batch["ids"]]})  # what a step would return
    seen = it.sampler.seen
    np.testing.assert_allclose(it.sampler.running[seen], losses[seen])
    state = json.loads(json.dumps(it.get_state()))  # checkpointed as JSON by the train loop
    other = make(7)
    other.set_state(state)
    np.testing.assert_array_equal(next(other)["ids"], next(it)["ids"])
    with pytest.raises(KeyError, match="per_triplet_loss"):
        it.observe({"loss": 1.0})
    it.observe({"per_triplet_loss": np.zeros(4)})
    with pytest.raises(RuntimeError, match="no drawn batch"):
        it.observe({"per_triplet_loss": np.zeros(4)})


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="formula"):
        sampling_probs(LOSSES, "cubic")
    with pytest.raises(ValueError, match="temperature"):
        SamplerConfig(temperature=0.0)
    with pytest.raises(ValueError, match="uniform_mix"):
        sampling_probs(LOSSES, "softmax", uniform_mix=1.5)
