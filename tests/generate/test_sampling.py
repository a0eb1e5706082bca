"""Greedy and sampled generation with the KV cache against cache-free references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmethods.generate import generate
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train.mesh import make_mesh
from jaxmethods.train.sharding import param_shardings


@pytest.fixture(scope="module")
def greedy_out(gen_ref, tiny_lm, prompts):
    ids, mask = prompts
    return generate(tiny_lm, ids, mask, max_new_tokens=gen_ref.MAX_NEW)


def test_greedy_with_cache_equals_argmax_loop_without_cache(
    gen_ref, greedy_out, full_forward, prompts
):
    ids, mask = prompts
    ref = gen_ref.greedy_reference(full_forward, ids, mask, gen_ref.MAX_NEW)
    np.testing.assert_array_equal(greedy_out.sequences, ref)
    np.testing.assert_array_equal(greedy_out.lengths, [gen_ref.MAX_NEW] * 3)


def test_returned_logprobs_are_the_models_token_logprobs(
    gen_ref, greedy_out, full_forward, prompts
):
    ids, mask = prompts
    seqs = np.asarray(greedy_out.sequences)
    for t in range(gen_ref.MAX_NEW):
        lp = full_forward.next_logprobs(ids, mask, seqs[:, :t])
        want = lp[np.arange(3), seqs[:, t]]
        np.testing.assert_allclose(greedy_out.logprobs[:, t], want, rtol=1e-4, atol=1e-4)


def test_left_padded_batch_equals_each_prompt_alone(gen_ref, tiny_lm, greedy_out, prompts):
    ids, mask = prompts
    for row in (2,):  # the row with the most padding (row 0 has none)
        alone = ids[row : row + 1, mask[row] == 1]
        out = generate(tiny_lm, alone, None, max_new_tokens=gen_ref.MAX_NEW)
        np.testing.assert_array_equal(out.sequences[0], greedy_out.sequences[row])
        np.testing.assert_allclose(out.logprobs[0], greedy_out.logprobs[row], atol=1e-5)


def test_eos_stops_rows_and_pads(gen_ref, tiny_lm, greedy_out, prompts):
    ids, mask = prompts
    seqs = np.asarray(greedy_out.sequences)
    # Make row 0's third token a stop token, plus a second stop id nobody emits.
    eos = int(seqs[0, 2])
    pad = gen_ref.VOCAB - 1 if eos != gen_ref.VOCAB - 1 else gen_ref.VOCAB - 2
    out = generate(
        tiny_lm,
        ids,
        mask,
        max_new_tokens=gen_ref.MAX_NEW,
        eos_token_id=[pad - 1, eos],
        pad_token_id=pad,
    )
    got = np.asarray(out.sequences)
    for row in range(3):
        hits = np.nonzero(seqs[row] == eos)[0]
        end = hits[0] + 1 if hits.size else gen_ref.MAX_NEW
        assert out.lengths[row] == end
        np.testing.assert_array_equal(got[row, :end], seqs[row, :end])
        assert np.all(got[row, end:] == pad)
        assert np.all(np.asarray(out.logprobs)[row, end:] == 0.0)
    assert out.lengths[0] == 3


def test_sampling_is_reproducible_with_a_fixed_key(gen_ref, tiny_lm, prompts):
    ids, mask = prompts
    kw = dict(max_new_tokens=gen_ref.MAX_NEW, do_sample=True, temperature=1.3, top_k=8, top_p=0.9)
    a = generate(tiny_lm, ids, mask, rng=jax.random.key(7), **kw)
    b = generate(tiny_lm, ids, mask, rng=jax.random.key(7), **kw)
    c = generate(tiny_lm, ids, mask, rng=jax.random.key(8), **kw)
    np.testing.assert_array_equal(a.sequences, b.sequences)
    assert not np.array_equal(a.sequences, c.sequences)


def test_top_k_one_sampling_equals_greedy(gen_ref, tiny_lm, greedy_out, prompts):
    ids, mask = prompts
    out = generate(
        tiny_lm,
        ids,
        mask,
        max_new_tokens=gen_ref.MAX_NEW,
        do_sample=True,
        top_k=1,
        rng=jax.random.key(3),
    )
    np.testing.assert_array_equal(out.sequences, greedy_out.sequences)


def test_sampled_first_tokens_follow_the_warped_distribution(
    gen_ref, tiny_lm, full_forward, prompts
):
    """8k draws of the first token ~ softmax(top_k(logits / T)) (chi-square-sized tolerance)."""
    ids, mask = prompts
    n = 8000
    many_ids, many_mask = np.repeat(ids[1:2], n, 0), np.repeat(mask[1:2], n, 0)
    out = generate(
        tiny_lm, many_ids, many_mask, max_new_tokens=1, do_sample=True, temperature=0.7,
        top_k=5, rng=jax.random.key(0),
    )  # fmt: skip
    logits = full_forward.next_logprobs(ids, mask, np.zeros((3, 0), np.int64))[1] / 0.7
    keep = np.argsort(-logits)[:5]
    probs = np.zeros(gen_ref.VOCAB)
    probs[keep] = np.exp(logits[keep] - logits[keep].max())
    probs /= probs.sum()
    freq = np.bincount(np.asarray(out.sequences[:, 0]), minlength=gen_ref.VOCAB) / n
    assert set(np.nonzero(freq)[0]) <= set(keep)
    np.testing.assert_allclose(freq, probs, atol=4 * np.sqrt(0.25 / n))


def test_stateless_processor_hook_bans_tokens(gen_ref, tiny_lm, greedy_out, prompts):
    ids, mask = prompts
    banned = jnp.asarray(np.unique(np.asarray(greedy_out.sequences)))

    def ban(scores, state):
        return scores.at[:, banned].set(-jnp.inf)

    out = generate(tiny_lm, ids, mask, max_new_tokens=gen_ref.MAX_NEW, logits_processor=ban)
    assert not np.isin(np.asarray(out.sequences), np.asarray(banned)).any()


def test_bad_arguments_raise_clear_errors(tiny_lm, prompts):
    ids, mask = prompts
    with pytest.raises(ValueError, match="left padded"):
        generate(tiny_lm, ids, mask[:, ::-1], max_new_tokens=2)
    with pytest.raises(ValueError, match="rng"):
        generate(tiny_lm, ids, mask, max_new_tokens=2, do_sample=True)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(tiny_lm, ids, mask, max_new_tokens=0)
    with pytest.raises(ValueError, match="outside"):
        generate(tiny_lm, ids + 1000, mask, max_new_tokens=2)
    with pytest.raises(ValueError, match="top_p"):
        generate(tiny_lm, ids, mask, max_new_tokens=2, top_p=0.0)


def test_greedy_with_params_sharded_on_a_mesh_equals_single_device(tiny_lm, greedy_out, prompts):
    """fsdp x tensor over the 4 fake devices: same tokens as the unsharded model."""
    ids, mask = prompts
    mesh = make_mesh({"fsdp": 2, "tensor": 2})
    graphdef, state = nnx.split(tiny_lm)
    shardings = param_shardings(state, mesh, DECODER_SHARDING_RULES, min_fsdp_bytes=0)
    sharded = nnx.merge(graphdef, jax.device_put(state, shardings))
    out = generate(sharded, ids, mask, max_new_tokens=greedy_out.sequences.shape[1])
    np.testing.assert_array_equal(out.sequences, greedy_out.sequences)
