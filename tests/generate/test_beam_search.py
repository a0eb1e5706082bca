"""Beam search against greedy, a list-based NumPy reference of HF's algorithm, and brute force."""

import itertools

import numpy as np
import pytest
from flax import nnx

from jaxmethods.generate import beam_search, generate
from jaxmethods.models.decoder import DecoderConfig, DecoderLM


@pytest.mark.slow  # > 10 s on 2 cores under make test
def test_one_beam_equals_greedy(gen_ref, tiny_lm, prompts):
    ids, mask = prompts
    greedy = generate(tiny_lm, ids, mask, max_new_tokens=gen_ref.MAX_NEW)
    seqs = np.asarray(greedy.sequences)
    # Row 1 stops early (others may too); the second stop id is never emitted.
    eos = (int(seqs[1, 3]), int(np.setdiff1d(np.arange(gen_ref.VOCAB), seqs)[0]))
    greedy = generate(tiny_lm, ids, mask, max_new_tokens=gen_ref.MAX_NEW, eos_token_id=eos)
    beams = beam_search(
        tiny_lm, ids, mask, max_new_tokens=gen_ref.MAX_NEW, num_beams=1, early_stopping=True,
        eos_token_id=eos,
    )  # fmt: skip
    np.testing.assert_array_equal(beams.sequences[:, 0], greedy.sequences)
    np.testing.assert_array_equal(beams.lengths[:, 0], greedy.lengths)
    want = np.asarray(greedy.logprobs).sum(-1) / np.asarray(greedy.lengths)
    np.testing.assert_allclose(beams.scores[:, 0], want, rtol=1e-5)


@pytest.mark.parametrize(
    "length_penalty,early_stopping", [(1.0, False), (0.0, True), (2.0, "never"), (-0.5, False)]
)
def test_several_beams_match_numpy_reference(
    gen_ref, tiny_lm, prompts, full_forward, length_penalty, early_stopping
):
    ids, mask = prompts
    k, r, max_new = 3, 3, gen_ref.MAX_NEW
    probe = generate(tiny_lm, ids, mask, max_new_tokens=max_new)
    eos = (int(np.asarray(probe.sequences)[0, 1]), int(np.asarray(probe.sequences)[2, 2]))
    out = beam_search(
        tiny_lm, ids, mask, max_new_tokens=max_new, num_beams=k, num_return_sequences=r,
        length_penalty=length_penalty, early_stopping=early_stopping, eos_token_id=eos,
    )  # fmt: skip
    for row in range(ids.shape[0]):
        ref = gen_ref.beam_search_reference(
            full_forward, ids[row : row + 1], mask[row : row + 1], num_beams=k, max_new=max_new,
            length_penalty=length_penalty, early_stopping=early_stopping, eos_ids=eos,
        )  # fmt: skip
        assert len(ref) == k
        for j, (score, tokens, length) in enumerate(ref[:r]):
            np.testing.assert_array_equal(out.sequences[row, j], tokens)
            assert out.lengths[row, j] == length
            np.testing.assert_allclose(out.scores[row, j], score, rtol=1e-4, atol=1e-5)


def test_exhaustive_beams_find_the_exact_top_sequences(gen_ref):
    """With K = V**(M-1) beams nothing is pruned: the result is the exact top-R by log-prob."""
    vocab, steps = 5, 3
    model = DecoderLM(DecoderConfig.tiny(vocab_size=vocab, initializer_range=0.3), nnx.Rngs(1))
    ids = np.array([[2, 1, 4]], np.int32)
    mask = np.ones_like(ids)
    out = beam_search(
        model, ids, mask, max_new_tokens=steps, num_beams=vocab ** (steps - 1),
        num_return_sequences=4, length_penalty=0.0,
    )  # fmt: skip
    every = np.array(list(itertools.product(range(vocab), repeat=steps)))  # [V**M, M]
    logps = gen_ref.FullForward(model, steps).continuation_logprob(
        np.repeat(ids, len(every), 0), np.repeat(mask, len(every), 0), every
    )
    totals = {tuple(seq): lp for seq, lp in zip(every.tolist(), logps)}
    best = sorted(totals, key=lambda s: -totals[s])[:4]
    np.testing.assert_array_equal(out.sequences[0], np.array(best))
    np.testing.assert_allclose(out.scores[0], [totals[s] for s in best], rtol=1e-5)


def test_bad_beam_arguments_raise(tiny_lm, prompts):
    ids, mask = prompts
    with pytest.raises(ValueError, match="num_return_sequences"):
        beam_search(tiny_lm, ids, mask, max_new_tokens=2, num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match="early_stopping"):
        beam_search(tiny_lm, ids, mask, max_new_tokens=2, num_beams=2, early_stopping="sometimes")
