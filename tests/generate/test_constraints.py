"""Prefix-trie constrained decoding: trie arrays, never leaving the allowed set, exact beams."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from jaxmethods.generate import (
    DecodeState,
    PrefixTrieConstraint,
    TrieState,
    beam_search,
    generate,
)

EOS = 1


def _random_items(seed: int, n: int, max_len: int, vocab: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    items = set()
    while len(items) < n:
        length = int(rng.integers(1, max_len + 1))
        items.add(tuple(int(t) for t in rng.integers(2, vocab, size=length)))
    return [list(it) for it in sorted(items)]


def _dict_trie(items):
    root: dict = {}
    for seq in items:
        node = root
        for tok in [*seq, EOS]:
            node = node.setdefault(tok, {})
    return root


def _completed_items(seqs: np.ndarray) -> list[tuple[int, ...]]:
    """Rows up to and including the first EOS (asserting there is one)."""
    out = []
    for row in np.asarray(seqs):
        ends = np.nonzero(row == EOS)[0]
        assert ends.size, f"row {row} never emitted EOS"
        out.append(tuple(int(t) for t in row[: ends[0]]))
    return out


def test_trie_arrays_match_a_dict_trie(gen_ref):
    items = _random_items(0, 15, 4, gen_ref.VOCAB)
    trie = PrefixTrieConstraint.from_sequences(items, vocab_size=gen_ref.VOCAB, eos_token_id=EOS)
    ref = _dict_trie(items)
    prefixes = [()] + [tuple(s[:i]) for s in items for i in range(1, len(s) + 1)]
    nodes = np.array([trie.lookup(p) for p in prefixes], np.int32)
    # One jitted call (how the decoding loop uses them) instead of many eager ops.
    query = jax.jit(lambda t, n: (*t.children(n), t.allowed_mask(n)))
    queried = query(trie, jnp.asarray([*nodes, -1]))  # -1: a row that left the trie
    tokens, children, valid, mask = (np.asarray(a) for a in queried)
    assert not valid[-1].any() and not mask[-1].any()
    edge_nodes, edge_tokens, edge_children = [], [], []
    for i, prefix in enumerate(prefixes):
        sub = ref
        for tok in prefix:
            sub = sub[tok]
        want = sorted(sub)
        assert tokens[i][valid[i]].tolist() == want
        assert np.nonzero(mask[i])[0].tolist() == want
        for tok, child in zip(tokens[i][valid[i]], children[i][valid[i]]):
            assert trie.lookup((*prefix, int(tok))) == child
            edge_nodes.append(nodes[i])
            edge_tokens.append(tok)
            edge_children.append(child)
    # Plus two moves off the trie: token 0 never starts an item; node -1 stays off.
    edge_nodes += [0, -1]
    edge_tokens += [0, int(tokens[0][0])]
    edge_children += [-1, -1]
    moved = jax.jit(lambda t, n, k: t.advance(n, k))(
        trie, jnp.asarray(edge_nodes), jnp.asarray(edge_tokens)
    )
    np.testing.assert_array_equal(moved, edge_children)
    assert trie.lookup([0, 0]) == -1


def test_trie_rejects_bad_sequences(gen_ref):
    with pytest.raises(ValueError, match="outside"):
        PrefixTrieConstraint.from_sequences([[3, gen_ref.VOCAB]], vocab_size=gen_ref.VOCAB)
    with pytest.raises(ValueError, match="no sequences"):
        PrefixTrieConstraint.from_sequences([], vocab_size=gen_ref.VOCAB)


@pytest.fixture(scope="module")
def items_and_trie(gen_ref):
    items = _random_items(1, 12, 4, gen_ref.VOCAB)
    return items, PrefixTrieConstraint.from_sequences(
        items, vocab_size=gen_ref.VOCAB, eos_token_id=EOS
    )


def test_sampling_never_leaves_the_trie(gen_ref, tiny_lm, prompts, items_and_trie):
    items, trie = items_and_trie
    allowed = {tuple(s) for s in items}
    ids, mask = prompts
    many_ids, many_mask = np.repeat(ids, 40, 0), np.repeat(mask, 40, 0)
    sampled = generate(
        tiny_lm, many_ids, many_mask, max_new_tokens=gen_ref.MAX_NEW, do_sample=True,
        temperature=3.0, rng=jax.random.key(0), eos_token_id=EOS, logits_processor=trie,
    )  # fmt: skip
    got = _completed_items(sampled.sequences)
    assert set(got) <= allowed
    assert len(set(got)) > len(allowed) // 2  # hot sampling explores many items


def test_constrained_beam_search_is_exact_over_few_items(gen_ref, tiny_lm, prompts, full_forward):
    """With K = #items every prefix survives, so beams rank all items by their exact log-prob."""
    items = _random_items(2, 5, 3, gen_ref.VOCAB)
    trie = PrefixTrieConstraint.from_sequences(items, vocab_size=gen_ref.VOCAB, eos_token_id=EOS)
    ids, mask = prompts
    out = beam_search(
        tiny_lm, ids, mask, max_new_tokens=gen_ref.MAX_NEW, num_beams=5, num_return_sequences=5,
        length_penalty=0.0, eos_token_id=EOS, logits_processor=trie,
    )  # fmt: skip
    seqs = np.full((len(items), gen_ref.MAX_NEW), EOS)
    for i, item in enumerate(items):
        seqs[i, : len(item)] = item  # EOS-filled after the item; only the first EOS counts
    lengths = np.array([len(it) + 1 for it in items])
    for row in range(ids.shape[0]):
        lp = full_forward._token_logprobs(
            np.repeat(ids[row : row + 1], len(items), 0),
            np.repeat(mask[row : row + 1], len(items), 0),
            seqs[:, :-1],
        )
        per_token = np.take_along_axis(lp, seqs[..., None], -1)[..., 0]
        valid = np.arange(gen_ref.MAX_NEW)[None, :] < lengths[:, None]
        totals = {tuple(it): (per_token * valid)[i].sum() for i, it in enumerate(items)}
        ranked = sorted(totals, key=lambda it: -totals[it])
        assert _completed_items(out.sequences[row]) == ranked
        np.testing.assert_allclose(out.scores[row], [totals[i] for i in ranked], rtol=1e-4)


@struct.dataclass
class _PreferLargestChildNode:
    """An IGD-style processor: reads the trie state and the children's node ids each step."""

    trie: PrefixTrieConstraint

    def init_state(self, num_rows):
        return self.trie.init_state(num_rows)

    def update_state(self, proc_state, tokens):
        return self.trie.update_state(proc_state, tokens)

    def __call__(self, scores, state: DecodeState):
        assert isinstance(state.processor_state, TrieState)
        tokens, nodes, valid = self.trie.children(state.processor_state.node)
        pick = jnp.argmax(jnp.where(valid, nodes, -1), axis=-1)
        best = jnp.take_along_axis(tokens, pick[:, None], -1)
        bonus = jnp.where(jnp.arange(scores.shape[-1])[None, :] == best, 1e4, 0.0)
        return scores + bonus


def test_custom_processor_reads_trie_state(gen_ref, tiny_lm, prompts, items_and_trie):
    _, trie = items_and_trie
    ids, mask = prompts
    out = generate(
        tiny_lm, ids, mask, max_new_tokens=gen_ref.MAX_NEW, eos_token_id=EOS,
        logits_processor=[trie, _PreferLargestChildNode(trie)],
    )  # fmt: skip
    # Host-side walk: always follow the child with the largest node id until EOS.
    want, prefix = [], []
    while not prefix or prefix[-1] != EOS:
        node = trie.lookup(prefix)
        kids = {tok: trie.lookup([*prefix, tok]) for tok in range(gen_ref.VOCAB)}
        prefix.append(max((n, t) for t, n in kids.items() if n >= 0)[1])
        assert node >= 0
    want = prefix[:-1]
    assert _completed_items(out.sequences) == [tuple(want)] * 3
