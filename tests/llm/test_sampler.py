"""`RowSampler` on fixed logits: per-row Gumbel-max sampling matches softmax(top_p(l / T)) as
computed with NumPy; greedy rows, the forced EOS and the EOS ban."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxmethods.generate import DecodeState
from jaxmethods.llm.sampler import RowSampler

LOGITS = np.array([2.0, 1.5, 1.0, 0.2, -0.5, -1.0], np.float32)
EOS = 5


def _numpy_probs(logits, temperature, top_p):
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.argsort(-p)
    mass_above = np.cumsum(p[order]) - p[order]
    keep = np.zeros_like(p, bool)
    keep[order[mass_above < top_p]] = True
    q = np.where(keep, p, 0.0)
    return q / q.sum()


N = 4000  # rows: every call has this shape, so the function below compiles once


@jax.jit
def _choose(temperature, top_p, max_tokens, ignore_eos, scores, step):
    """argmax of `RowSampler` scores: [N] settings, scores [N, V] -> tokens [N]."""
    sampler = RowSampler(
        temperature=temperature,
        top_p=top_p,
        keys=jax.vmap(jax.random.key)(jnp.arange(N, dtype=jnp.uint32)),
        max_tokens=max_tokens,
        ignore_eos=ignore_eos,
        eos_ids=jnp.asarray([EOS], jnp.int32),
    )
    state = DecodeState(step=step, tokens=jnp.zeros((N, 1), jnp.int32))
    return jnp.argmax(sampler(scores, state), axis=-1)


def _settings(temperature, top_p=1.0, max_tokens=10, ignore_eos=False):
    return (
        np.full(N, temperature, np.float32),
        np.full(N, top_p, np.float32),
        np.full(N, max_tokens, np.int32),
        np.full(N, ignore_eos),
    )


def test_sampled_rows_follow_the_warped_distribution_and_greedy_rows_the_argmax():
    scores = np.tile(LOGITS, (N, 1))
    temperature, top_p, max_tokens, ignore_eos = _settings(0.7, 0.8)
    tokens = np.asarray(_choose(temperature, top_p, max_tokens, ignore_eos, scores, 0))
    freq = np.bincount(tokens, minlength=len(LOGITS)) / N
    np.testing.assert_allclose(freq, _numpy_probs(LOGITS, 0.7, 0.8), atol=0.03)
    # The same (key, step) gives the same tokens, another step other tokens; rows at
    # temperature 0 in the same batch are greedy.
    temperature[:8] = 0.0
    again = np.asarray(_choose(temperature, top_p, max_tokens, ignore_eos, scores, 0))
    other = np.asarray(_choose(temperature, top_p, max_tokens, ignore_eos, scores, 1))
    assert (again[8:] == tokens[8:]).all() and (other[8:] != tokens[8:]).any()
    assert (again[:8] == 0).all()


def test_forced_eos_after_max_tokens_and_eos_ban_with_ignore_eos():
    eos_best = np.tile(LOGITS[::-1], (N, 1))  # EOS (id 5) is the argmax
    temperature, top_p, max_tokens, ignore_eos = _settings(0.0, max_tokens=3)
    ignore_eos[1] = True
    at_1 = np.asarray(_choose(temperature, top_p, max_tokens, ignore_eos, eos_best, 1))
    assert list(at_1[:2]) == [EOS, 4]  # EOS banned on row 1 before max_tokens
    at_3 = np.asarray(
        _choose(temperature, top_p, max_tokens, ignore_eos, np.tile(LOGITS, (N, 1)), 3)
    )
    assert list(at_3[:2]) == [EOS, EOS]  # forced at step == max_tokens
