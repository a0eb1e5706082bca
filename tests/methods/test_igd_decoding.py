"""IGD decoding: the rescaling against NumPy, and the processor inside the shared beam search."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxmethods.generate.processors import DecodeState
from jaxmethods.methods.igd.decoding import (
    LOGP_SHIFT,
    IGDLogitsProcessor,
    ig_rescale,
    igd_beam_search,
    item_trie_constraint,
)
from jaxmethods.methods.igd.trie import ItemTrie
from jaxmethods.models.decoder import DecoderConfig, DecoderLM

VOCAB, EOS, PAD = 24, 2, 0


def _np_rescale(logp, ig, alpha):
    """The authors' per-beam loop for one node: logp, ig over its children."""
    lo, hi = ig.min(), ig.max()
    if hi > lo:
        mult = 1.0 - alpha * (ig - lo) / (hi - lo + 1e-7)
    else:
        mult = np.ones_like(ig)
    return (logp - 1e-7) * mult


def test_ig_rescale_matches_numpy_including_ties_and_padding():
    rng = np.random.default_rng(0)
    n, c = 6, 5
    logp = -rng.random((n, c)).astype(np.float32) * 5
    ig = rng.random((n, c)).astype(np.float32)
    ig[1] = 0.7  # all siblings tie -> multiplier 1
    valid = np.ones((n, c), bool)
    valid[2, 3:] = False
    valid[3, 1:] = False  # a single child
    out = np.asarray(ig_rescale(logp, ig, valid, 0.3))
    for r in range(n):
        v = valid[r]
        np.testing.assert_allclose(out[r, v], _np_rescale(logp[r, v], ig[r, v], 0.3), rtol=1e-6)
        assert np.all(np.isneginf(out[r, ~v]))
    np.testing.assert_allclose(out[1], logp[1] - 1e-7, rtol=1e-6)
    # alpha = 0 is a uniform shift
    np.testing.assert_allclose(
        np.asarray(ig_rescale(logp, ig, valid, 0.0))[valid], (logp - LOGP_SHIFT)[valid]
    )


@pytest.fixture(scope="module")
def catalog():
    rng = np.random.default_rng(1)
    items = set()
    shared = [5, 6, 7]
    while len(items) < 12:  # titles sharing long prefixes, all ending in "\n" (3) + EOS
        head = shared if rng.random() < 0.6 else [int(rng.integers(8, VOCAB))]
        tail = [int(t) for t in rng.integers(8, VOCAB, size=int(rng.integers(1, 3)))]
        items.add((*head, *tail, 3, EOS))
    items = sorted(items)
    freqs = rng.integers(1, 20, size=len(items))
    return ItemTrie(items, freqs), items


@pytest.fixture(scope="module")
def model():
    cfg = DecoderConfig.tiny(vocab_size=VOCAB, initializer_range=0.6)
    return DecoderLM(cfg, nnx.Rngs(3))


@pytest.mark.slow  # > 20 s on 2 cores
def test_processor_scores_allowed_children_only(catalog):
    trie, _ = catalog
    proc = IGDLogitsProcessor.from_trie(trie, vocab_size=VOCAB, alpha=0.25)
    rng = np.random.default_rng(2)
    nodes = np.array([0, trie.child(0, 5), trie.child(trie.child(0, 5), 6), -1], np.int32)
    scores = np.asarray(jax.nn.log_softmax(rng.normal(size=(4, VOCAB)).astype(np.float32)))
    state = DecodeState(
        step=jnp.int32(0),
        tokens=jnp.zeros((4, 3), jnp.int32),
        processor_state=proc.init_state(4).replace(node=jnp.asarray(nodes)),
    )
    out = np.asarray(proc(jnp.asarray(scores), state))
    for r, node in enumerate(nodes):
        expect = np.full(VOCAB, -np.inf)
        if node >= 0:
            tok, _, ig = trie.children(int(node))
            expect[tok] = _np_rescale(scores[r, tok], ig, 0.25)
        np.testing.assert_allclose(out[r], expect, rtol=1e-5)
    assert np.all(np.isneginf(out[3]))  # off the trie: the whole beam is -inf


def _prompts():
    rng = np.random.default_rng(4)
    ids = rng.integers(8, VOCAB, size=(2, 6)).astype(np.int32)
    mask = np.ones((2, 6), np.int32)
    mask[1, :2] = 0
    ids[1, :2] = PAD
    return ids, mask


def _brute_force_scores(model, trie, items, ids, mask, alpha, length_penalty):
    """Teacher-forced IGD score of every catalog item for every prompt (one causal forward of
    all prompt + item rows, right padded: padding after a token never changes its logits)."""
    width = ids.shape[1] + max(len(x) for x in items)
    rows, where = [], []
    for b in range(ids.shape[0]):
        prompt = list(ids[b][mask[b].astype(bool)])
        for item in items:
            seq = prompt + list(item)
            rows.append(seq + [PAD] * (width - len(seq)))
            where.append(len(prompt) - 1)
    forward = nnx.jit(lambda m, x: jax.nn.log_softmax(m(x).astype(jnp.float32)))
    logp = np.asarray(forward(model, jnp.asarray(rows, jnp.int32)))
    out = np.zeros((ids.shape[0], len(items)))
    for r, (start, row) in enumerate(zip(where, logp)):
        b, i = divmod(r, len(items))
        node, total = 0, 0.0
        for t, tok in enumerate(items[i]):
            kid_tokens, _, ig = trie.children(node)
            step = _np_rescale(row[start + t][kid_tokens], ig, alpha)
            total += step[list(kid_tokens).index(tok)]
            node = trie.child(node, tok)
        out[b, i] = total / len(items[i]) ** length_penalty
    return out


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_search_stays_in_catalog_with_igd_scores(catalog, model, length_penalty):
    trie, items = catalog
    ids, mask = _prompts()
    proc = IGDLogitsProcessor.from_trie(trie, vocab_size=VOCAB, alpha=0.3)
    out = igd_beam_search(model, ids, mask, proc, eos_token_id=EOS, pad_token_id=PAD,
                          num_beams=8, num_return_sequences=8, max_new_tokens=8,
                          length_penalty=length_penalty)  # fmt: skip
    seqs, scores, lengths = map(np.asarray, (out.sequences, out.scores, out.lengths))
    ref = _brute_force_scores(model, trie, items, ids, mask, 0.3, length_penalty)
    for b in range(2):
        found = {}
        for r in range(8):
            if np.isfinite(scores[b, r]):
                found[tuple(seqs[b, r, : lengths[b, r]])] = scores[b, r]
        assert len(found) == 8 and set(found) <= set(items)  # never leaves the catalog
        for item, score in found.items():  # each score is the teacher-forced IGD score
            np.testing.assert_allclose(score, ref[b, items.index(item)], rtol=1e-4, atol=1e-5)
        # Returned best first.
        assert np.all(np.diff(scores[b]) <= 1e-6)


@pytest.mark.slow  # > 10 s on 2 cores under make test
def test_alpha_zero_equals_plain_constrained_search(catalog, model):
    trie, _ = catalog
    ids, mask = _prompts()
    # Same static settings as the length_penalty=0 search above: the IGD program is reused.
    kw = dict(eos_token_id=EOS, pad_token_id=PAD, num_beams=8, num_return_sequences=8,
              max_new_tokens=8, length_penalty=0.0)  # fmt: skip
    plain = igd_beam_search(model, ids, mask, item_trie_constraint(trie, VOCAB), **kw)
    igd0 = igd_beam_search(
        model, ids, mask, IGDLogitsProcessor.from_trie(trie, vocab_size=VOCAB, alpha=0.0), **kw
    )
    live = np.isfinite(np.asarray(plain.scores))
    np.testing.assert_array_equal(np.isfinite(np.asarray(igd0.scores)), live)
    np.testing.assert_array_equal(
        np.asarray(igd0.sequences)[live], np.asarray(plain.sequences)[live]
    )
    np.testing.assert_allclose(
        np.asarray(igd0.scores)[live], np.asarray(plain.scores)[live], atol=1e-5
    )
    items = {tuple(s) for s in trie._lookup}
    for b in range(2):
        for r in range(8):
            n = int(igd0.lengths[b, r])
            assert tuple(np.asarray(igd0.sequences[b, r, :n])) in items


def test_vocab_mismatch_is_reported(catalog):
    trie, _ = catalog
    with pytest.raises(ValueError, match="vocab_size"):
        item_trie_constraint(trie, 10)
