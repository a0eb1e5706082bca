"""Beam search against PyTorch `transformers.generate` itself (transformers v5 `_beam_search`), on
the committed tiny Qwen2 and Llama fixtures with left-padded prompts and two EOS ids.

The live comparison runs only when torch is importable (it is not a test dependency); without it
the same cases still run our side against the list-based NumPy reference of HF's algorithm
(`gen_ref.beam_search_reference`), so every case below is exercised in the offline suite.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from jaxmethods.generate import beam_search, generate
from jaxmethods.hf import load_pretrained

pytestmark = pytest.mark.hf_parity

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "data", "hf")
FAMILIES = ("qwen2", "llama")
MAX_NEW = 6
PAD = 0
# (num_beams, num_return_sequences, length_penalty, early_stopping)
CASES = [
    (3, 3, 1.0, False),
    (4, 2, -0.5, True),
    (3, 2, 2.0, "never"),
    (2, 1, 0.0, False),
    (4, 3, -2.0, "never"),
    (3, 1, 1.0, True),
]


def _prompts() -> tuple[np.ndarray, np.ndarray]:
    """Three left-padded prompts [3, 8] of lengths 8, 5 and 2 (pad id 0 is never a real token)."""
    rng = np.random.RandomState(1234)
    lengths = [8, 5, 2]
    ids = np.full((3, 8), PAD, np.int64)
    mask = np.zeros((3, 8), np.int64)
    for b, n in enumerate(lengths):
        ids[b, 8 - n :] = rng.randint(3, 64, size=n)
        mask[b, 8 - n :] = 1
    return ids, mask


_MODELS: dict[str, object] = {}


def _ours(family: str):
    if family not in _MODELS:
        _MODELS[family] = load_pretrained(os.path.join(FIXTURES, family), dtype="float32")
    return _MODELS[family]


def _two_eos_ids(model, ids, mask) -> tuple[int, int]:
    """Two ids the greedy continuations emit early, so hypotheses end on both EOS ids."""
    seqs = np.asarray(generate(model, ids, mask, max_new_tokens=MAX_NEW).sequences)
    first = int(seqs[0, 1])
    second = next(int(t) for t in seqs[2, 1:] if t not in (first, PAD))
    return first, second


def _run_ours(family, num_beams, num_return, length_penalty, early_stopping):
    model = _ours(family)
    ids, mask = _prompts()
    eos = _two_eos_ids(model, ids, mask)
    out = beam_search(
        model, ids, mask, max_new_tokens=MAX_NEW, num_beams=num_beams,
        num_return_sequences=num_return, length_penalty=length_penalty,
        early_stopping=early_stopping, eos_token_id=eos, pad_token_id=PAD,
    )  # fmt: skip
    return ids, mask, eos, out


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("family", FAMILIES)
def test_beam_search_matches_transformers_generate(family, case):
    torch = pytest.importorskip("torch")
    import transformers

    num_beams, num_return, length_penalty, early_stopping = case
    ids, mask, eos, out = _run_ours(family, *case)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.join(FIXTURES, family), dtype=torch.float32
    ).eval()
    with torch.no_grad():
        hf = hf_model.generate(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            do_sample=False,
            num_beams=num_beams,
            num_return_sequences=num_return,
            length_penalty=length_penalty,
            early_stopping=early_stopping,
            max_new_tokens=MAX_NEW,
            eos_token_id=list(eos),
            pad_token_id=PAD,
            output_scores=True,
            return_dict_in_generate=True,
        )
    batch = ids.shape[0]
    prompt_len = ids.shape[1]
    # HF returns [B * R, T + M'] (M' = the longest returned hypothesis) and fills after a
    # hypothesis' end with `pad or eos[0]`; beam_indices >= 0 marks its generated tokens.
    hf_tokens = hf.sequences[:, prompt_len:].numpy().reshape(batch, num_return, -1)
    hf_lengths = (hf.beam_indices >= 0).sum(-1).numpy().reshape(batch, num_return)
    hf_scores = hf.sequences_scores.numpy().reshape(batch, num_return)
    np.testing.assert_array_equal(np.asarray(out.lengths), hf_lengths)
    assert hf_tokens.shape[-1] == int(hf_lengths.max())
    ours = np.asarray(out.sequences)
    for b in range(batch):
        for j in range(num_return):
            n = int(hf_lengths[b, j])
            np.testing.assert_array_equal(ours[b, j, :n], hf_tokens[b, j, :n], err_msg=(b, j))
            assert np.all(ours[b, j, n:] == PAD)
    np.testing.assert_allclose(np.asarray(out.scores), hf_scores, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # tests/generate/test_beam_search.py covers the NumPy reference in the fast suite
@pytest.mark.parametrize("family, case", [(f, c) for f in FAMILIES for c in CASES], ids=str)
def test_same_cases_match_the_numpy_reference(family, case, gen_ref):
    """Without torch: the cases above against the list-based reference of HF's algorithm (one
    case in the default suite, all of them under `-m slow`)."""
    num_beams, num_return, length_penalty, early_stopping = case
    ids, mask, eos, out = _run_ours(family, *case)
    ff = gen_ref.FullForward(_ours(family), MAX_NEW)
    hit_eos = False
    for row in range(ids.shape[0]):
        ref = gen_ref.beam_search_reference(
            ff, ids[row : row + 1], mask[row : row + 1], num_beams=num_beams, max_new=MAX_NEW,
            length_penalty=length_penalty, early_stopping=early_stopping, eos_ids=eos, pad=PAD,
        )  # fmt: skip
        for j, (score, tokens, length) in enumerate(ref[:num_return]):
            np.testing.assert_array_equal(out.sequences[row, j], tokens)
            assert out.lengths[row, j] == length
            np.testing.assert_allclose(out.scores[row, j], score, rtol=1e-4, atol=1e-5)
            hit_eos |= length < MAX_NEW
    if length_penalty <= 1.0:  # a strong length reward may return only full-length hypotheses
        assert hit_eos  # the EOS ids end some returned hypothesis early
