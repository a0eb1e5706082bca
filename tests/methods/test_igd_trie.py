"""ItemTrie: entropy scores and IG against a brute-force dict computation, and the spec invariants."""

import numpy as np
import pytest

from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.methods.igd.trie import ItemTrie, item_text


def _brute_scores(seqs, freqs):
    """prefix tuple -> sum over items having that prefix of -p log p (p = f / F)."""
    total = float(sum(freqs))
    item = [(-f / total * np.log(f / total)) if f > 0 else 0.0 for f in freqs]
    scores = {(): float(sum(item))}
    for seq, s in zip(seqs, item):
        for d in range(1, len(seq) + 1):
            key = tuple(seq[:d])
            scores[key] = scores.get(key, 0.0) + s
    return scores, item


def _random_catalog(rng, n_max=40, vocab=4, len_max=6):
    n = int(rng.integers(1, n_max))
    seqs = [list(rng.integers(0, vocab, size=int(rng.integers(1, len_max)))) for _ in range(n)]
    freqs = list(rng.integers(0, 12, size=n))
    if sum(freqs) == 0:
        freqs[0] = 1
    return seqs, freqs


def test_toy_catalog_hand_values():
    # Items "a b" (f=2), "a c" (f=1), "d" (f=1), each followed by the end token 9.
    a, b, c, d, end = 1, 2, 3, 4, 9
    trie = ItemTrie([[a, b, end], [a, c, end], [d, end]], [2, 1, 1])
    p = np.array([0.5, 0.25, 0.25])
    h = -(p * np.log(p))
    assert trie.root_score == pytest.approx(h.sum())
    np.testing.assert_allclose(trie.token_ig([a, b, end]), [h[2], h[1], 0.0])
    np.testing.assert_allclose(trie.token_ig([a, c, end]), [h[2], h[0], 0.0])
    np.testing.assert_allclose(trie.token_ig([d, end]), [h[0] + h[1], 0.0])
    assert trie.num_nodes == 1 + 2 + 2 + 2 + 1  # root, a, ab, ab$, ac, ac$, d, d$


@pytest.mark.parametrize("seed", range(6))
def test_scores_and_ig_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    for _ in range(15):
        seqs, freqs = _random_catalog(rng)
        trie = ItemTrie(seqs, freqs)
        scores, _ = _brute_scores(seqs, freqs)
        assert trie.num_nodes == len(scores)
        assert trie.root_score == pytest.approx(scores[()], abs=1e-12)
        for seq in seqs:
            nodes = trie.path_nodes(seq)
            for d in range(1, len(seq) + 1):
                assert trie.node_score[nodes[d - 1]] == pytest.approx(scores[tuple(seq[:d])])
            ref = [
                scores[tuple(seq[: d - 1])] - scores[tuple(seq[:d])] for d in range(1, len(seq) + 1)
            ]
            np.testing.assert_allclose(trie.token_ig(seq), ref, atol=1e-12)
        # Every prefix of a catalog item (also one that is not itself an item) walks the tree.
        probe = seqs[0][: max(1, len(seqs[0]) - 1)]
        assert trie.path_nodes(probe) is not None


def test_invariants_on_random_catalogs_with_prefix_items():
    rng = np.random.default_rng(7)
    for _ in range(30):
        seqs, freqs = _random_catalog(rng, vocab=3, len_max=5)
        seqs.append(list(seqs[0][:1]))  # a title that is a prefix of another
        freqs.append(3)
        trie = ItemTrie(seqs, freqs)
        _, item = _brute_scores(seqs, freqs)
        assert np.all(trie.node_ig >= 0)
        n_children = np.diff(trie.row_ptr)
        ends = np.bincount(trie.item_node, minlength=trie.num_nodes)
        for seq in seqs:
            nodes = trie.path_nodes(seq)
            ig = trie.token_ig(seq)
            end = nodes[-1]
            # IG telescopes: sum along the path = root.score - score(end node); at a leaf the
            # end node holds only this item (and its duplicates).
            assert ig.sum() == pytest.approx(trie.root_score - trie.node_score[end], abs=1e-12)
            if n_children[end] == 0:
                same = [j for j, s in enumerate(seqs) if s == seq]
                own = sum(item[j] for j in same)
                assert ig.sum() == pytest.approx(trie.root_score - own, abs=1e-12)
            # Exactly zero at forced tokens: the parent has one child and no item ends there.
            parents = np.concatenate([[0], nodes[:-1]])
            forced = (n_children[parents] == 1) & (ends[parents] == 0)
            assert np.all(ig[forced] == 0.0)
            positive_mass = [
                trie.node_score[p] - trie.node_score[n] > 1e-12 for p, n in zip(parents, nodes)
            ]
            assert np.all(ig[np.array(positive_mass)] > 0)


def test_unknown_sequences_get_zero_ig():
    trie = ItemTrie([[1, 2, 3], [1, 4, 3]], [1, 1])
    np.testing.assert_array_equal(trie.token_ig([1, 5, 3]), np.zeros(3))
    np.testing.assert_array_equal(trie.token_ig([7]), np.zeros(1))
    assert trie.path_nodes([1, 5]) is None
    assert trie.child(0, 1) > 0 and trie.child(0, 2) == -1


def test_csr_children_sorted_and_consistent():
    rng = np.random.default_rng(3)
    seqs, freqs = _random_catalog(rng, n_max=60, vocab=6)
    trie = ItemTrie(seqs, freqs)
    arr = trie.device_arrays()
    assert arr.row_ptr[-1] == trie.num_nodes - 1 == arr.child_node.shape[0]
    for n in range(trie.num_nodes):
        tok, kids, ig = trie.children(n)
        assert np.all(np.diff(tok) > 0)
        assert np.all(trie.node_parent[kids] == n)
        np.testing.assert_allclose(ig, trie.node_score[n] - trie.node_score[kids], atol=1e-12)
    assert arr.max_children == np.diff(arr.row_ptr).max()
    np.testing.assert_allclose(arr.child_ig, trie.node_ig[arr.child_node].astype(np.float32))


def test_zero_ig_fraction_is_frequency_weighted():
    a, b, c, end = 1, 2, 3, 9
    trie = ItemTrie([[a, b, end], [a, c, end]], [3, 1])
    # Tokens per item: a (IG 0: the only root child), b/c (IG > 0), end (IG 0).
    assert trie.zero_ig_fraction() == pytest.approx((3 * 2 + 1 * 2) / (3 * 3 + 1 * 3))


def test_validation_errors():
    with pytest.raises(ValueError, match="frequencies"):
        ItemTrie([[1]], [1, 2])
    with pytest.raises(ValueError, match="empty token sequence"):
        ItemTrie([[1], []], [1, 1])
    with pytest.raises(ValueError, match="total_frequency"):
        ItemTrie([[1], [2]], [1, 2], total_frequency=4)
    with pytest.raises(ValueError, match="empty"):
        ItemTrie([], [])


def test_from_titles_inserts_title_newline_eos():
    titles = {"Red Fox Saga Vol. 1": 3, "Red Fox Saga Vol. 2": 1, "Blue Owl": 2}
    tok = build_tiny_tokenizer(list(titles), vocab_size=120)
    trie, order = ItemTrie.from_titles(titles, tok, total_frequency=6)
    assert order == list(titles)
    for title in titles:
        ids = tok(item_text(title, tok.eos_token), add_special_tokens=False)["input_ids"]
        assert ids[-1] == tok.eos_token_id
        assert trie.path_nodes(ids) is not None
        assert trie.token_ig(ids)[-1] == 0.0  # EOS after "\n" is forced


def test_builds_40k_catalog_quickly():
    import time

    rng = np.random.default_rng(0)
    prefixes = [list(rng.integers(0, 30000, size=int(rng.integers(2, 8)))) for _ in range(3000)]
    seqs = [
        prefixes[int(rng.integers(0, 3000))]
        + list(rng.integers(0, 30000, size=int(rng.integers(1, 15))))
        + [198, 151643]
        for _ in range(40000)
    ]
    t0 = time.perf_counter()
    trie = ItemTrie(seqs, rng.zipf(1.5, size=40000).clip(max=10000))
    assert time.perf_counter() - t0 < 10.0
    assert trie.num_items == 40000
    np.testing.assert_allclose(
        trie.token_ig(seqs[5]).sum(), trie.root_score - trie.node_score[trie.item_node[5]]
    )
