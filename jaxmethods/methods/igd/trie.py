"""Catalog prefix tree with entropy scores and per-token information gain (IGD paper, §3.1).

Every catalog item is a token sequence (the tokenised `title + "\\n" + eos_text`) with a train
frequency f_I. With the GLOBAL prior p_I = f_I / F (not renormalised per node):

    node.score        = sum_{I under node} -p_I log p_I              ("H(y_<=t)" in the paper)
    IG(child | parent) = parent.score - child.score >= 0

so IG is zero exactly at forced tokens (the prefix has one continuation and no item ends there).

The tree is built without a Python node loop: sorting the sequences lexicographically lists the
trie in depth-first preorder, and the longest common prefix (LCP) of neighbouring rows says
which prefixes are new nodes. Everything is NumPy; `device_arrays()` exports the CSR child table
used by trie-constrained beam search.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class TrieArrays:
    """Flat arrays of an `ItemTrie` (host NumPy; `jax.device_put` them as a pytree).

    Children of node n are entries `row_ptr[n]:row_ptr[n+1]`, sorted by token id.

    Attributes:
      row_ptr: [num_nodes + 1] int32 CSR offsets.
      child_token: [num_edges] int32 token id of each child.
      child_node: [num_edges] int32 node id of each child.
      child_ig: [num_edges] float32 IG of each edge (parent.score - child.score).
      node_score: [num_nodes] float32 entropy score of each node.
      max_children: the largest fan-out (static shape for gathering one node's children).
    """

    row_ptr: np.ndarray
    child_token: np.ndarray
    child_node: np.ndarray
    child_ig: np.ndarray
    node_score: np.ndarray
    max_children: int


class ItemTrie:
    """Prefix tree over item token sequences with entropy scores and information gain.

    Args:
      token_sequences: N non-empty sequences of token ids, one per item (duplicates count as
        separate items, as repeated inserts do in the authors' code).
      frequencies: [N] non-negative train frequencies f_I.
      total_frequency: F; defaults to sum(frequencies). The authors hard-code F per category and
        assert it equals the JSON sum: pass it to get the same check.

    Attributes (node 0 is the root; nodes are numbered in depth-first preorder):
      node_parent, node_token, node_depth: [num_nodes] int (-1 / -1 / 0 for the root).
      node_score: [num_nodes] float64; `root_score` = node_score[0].
      node_ig: [num_nodes] float64 IG of the edge into each node (0 for the root).
      item_node: [N] node where each item's sequence ends; item_score: [N] -p log p.
      row_ptr, child_token, child_node: CSR children sorted by token.
    """

    def __init__(
        self,
        token_sequences: Sequence[Sequence[int]],
        frequencies: Sequence[float] | np.ndarray,
        *,
        total_frequency: float | None = None,
    ):
        seqs = [np.asarray(s, dtype=np.int64).reshape(-1) for s in token_sequences]
        freqs = np.asarray(frequencies, dtype=np.float64).reshape(-1)
        if len(seqs) != freqs.shape[0]:
            raise ValueError(
                f"ItemTrie: got {len(seqs)} token sequences but {freqs.shape[0]} frequencies"
            )
        if not seqs:
            raise ValueError("ItemTrie: the catalog is empty")
        lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
        if np.any(lengths == 0):
            raise ValueError(
                f"ItemTrie: item {int(np.argmin(lengths))} has an empty token sequence"
            )
        if np.any(freqs < 0) or not np.all(np.isfinite(freqs)):
            raise ValueError(f"ItemTrie: frequency of item {int(np.argmin(freqs))} is negative/NaN")
        if any(int(s.min()) < 0 for s in seqs):
            raise ValueError("ItemTrie: token ids must be non-negative")
        total = float(freqs.sum()) if total_frequency is None else float(total_frequency)
        if total_frequency is not None and not np.isclose(total, freqs.sum(), rtol=0, atol=1e-6):
            raise ValueError(
                f"ItemTrie: total_frequency={total_frequency} differs from the sum of the item "
                f"frequencies ({freqs.sum():g}); the paper's F must equal the JSON sum"
            )
        if total <= 0:
            raise ValueError("ItemTrie: the total frequency F must be positive")

        p = freqs / total
        with np.errstate(divide="ignore", invalid="ignore"):
            self.item_score = np.where(p > 0, -p * np.log(p), 0.0)
        self.frequencies = freqs
        self.total_frequency = total
        self.num_items = len(seqs)
        self._build(seqs, lengths)
        self._lookup = {tuple(s.tolist()): int(i) for i, s in enumerate(seqs)}

    def _build(self, seqs: list[np.ndarray], lengths: np.ndarray) -> None:
        n, max_len = len(seqs), int(lengths.max())
        mat = np.full((n, max_len), -1, dtype=np.int64)  # -1 pads: shorter prefixes sort first
        for i, s in enumerate(seqs):
            mat[i, : s.shape[0]] = s
        order = np.lexsort(mat.T[::-1])
        mat, lens = mat[order], lengths[order]

        lcp = np.zeros(n, dtype=np.int64)
        if n > 1:
            same = np.cumprod(mat[1:] == mat[:-1], axis=1)
            lcp[1:] = np.minimum(same.sum(axis=1), np.minimum(lens[1:], lens[:-1]))
        new_counts = lens - lcp
        first_new = 1 + np.concatenate([[0], np.cumsum(new_counts)[:-1]])  # id of depth lcp+1
        num_nodes = 1 + int(new_counts.sum())

        depth = np.arange(1, max_len + 1)[None, :]  # [1, L]
        is_new = (depth > lcp[:, None]) & (depth <= lens[:, None])
        new_id = first_new[:, None] + (depth - lcp[:, None] - 1)
        # Inherited prefixes take the id from the last row that created that depth's node.
        src_row = np.where(is_new, np.arange(n)[:, None], -1)
        src_row = np.maximum.accumulate(src_row, axis=0)
        valid = depth <= lens[:, None]
        node_of = np.where(valid, new_id[np.maximum(src_row, 0), np.arange(max_len)[None, :]], -1)

        parent = np.full(num_nodes, -1, dtype=np.int64)
        token = np.full(num_nodes, -1, dtype=np.int64)
        node_depth = np.zeros(num_nodes, dtype=np.int64)
        rows, cols = np.nonzero(is_new)
        created = node_of[rows, cols]
        parent[created] = np.where(cols == 0, 0, node_of[rows, np.maximum(cols - 1, 0)])
        token[created] = mat[rows, cols]
        node_depth[created] = cols + 1

        # Node score: sum of the item scores of every row through the node, in row order for
        # every node (so a forced child and its parent get bitwise-identical sums).
        item_score = self.item_score[order]
        flat_nodes = node_of[valid]
        flat_scores = np.broadcast_to(item_score[:, None], node_of.shape)[valid]
        score = np.bincount(flat_nodes, weights=flat_scores, minlength=num_nodes)
        score[0] = item_score.sum()

        end_node_sorted = node_of[np.arange(n), lens - 1]
        item_node = np.empty(n, dtype=np.int64)
        item_node[order] = end_node_sorted
        ends_here = np.bincount(end_node_sorted, minlength=num_nodes)

        num_children = np.bincount(parent[1:], minlength=num_nodes)
        ig = np.zeros(num_nodes, dtype=np.float64)
        ig[1:] = np.maximum(score[parent[1:]] - score[1:], 0.0)
        forced = (num_children[parent[1:]] == 1) & (ends_here[parent[1:]] == 0)
        ig[1:][forced] = 0.0

        # Preorder lists siblings in increasing token order, so a stable sort by parent is CSR.
        edge_order = 1 + np.argsort(parent[1:], kind="stable")
        self.row_ptr = np.concatenate([[0], np.cumsum(num_children)]).astype(np.int64)
        self.child_node = edge_order.astype(np.int64)
        self.child_token = token[edge_order]

        self.node_parent, self.node_token, self.node_depth = parent, token, node_depth
        self.node_score, self.node_ig = score, ig
        self.item_node = item_node
        self.num_nodes = num_nodes
        self._node_of_sorted, self._order = node_of, order
        self._row_of_item = np.argsort(order)

    @property
    def root_score(self) -> float:
        return float(self.node_score[0])

    @property
    def max_children(self) -> int:
        return int(np.diff(self.row_ptr).max())

    def children(self, node: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tokens, child nodes, IG) of `node`'s children, sorted by token."""
        lo, hi = self.row_ptr[node], self.row_ptr[node + 1]
        nodes = self.child_node[lo:hi]
        return self.child_token[lo:hi], nodes, self.node_ig[nodes]

    def child(self, node: int, token: int) -> int:
        """Child of `node` reached by `token`, or -1."""
        lo, hi = self.row_ptr[node], self.row_ptr[node + 1]
        j = lo + int(np.searchsorted(self.child_token[lo:hi], token))
        return int(self.child_node[j]) if j < hi and self.child_token[j] == token else -1

    def path_nodes(self, token_sequence: Sequence[int]) -> np.ndarray | None:
        """Nodes visited by `token_sequence` from the root ([T] int), or None if it leaves the tree."""
        seq = [int(t) for t in token_sequence]
        item = self._lookup.get(tuple(seq))
        if item is not None:
            row = int(self._row_of_item[item])
            return self._node_of_sorted[row, : len(seq)].copy()
        nodes, node = np.empty(len(seq), dtype=np.int64), 0
        for t, tok in enumerate(seq):
            node = self.child(node, tok)
            if node < 0:
                return None
            nodes[t] = node
        return nodes

    def token_ig(self, token_sequence: Sequence[int]) -> np.ndarray:
        """IG of each token given the previous ones: [T] float64.

        A sequence that leaves the tree gets all zeros (the authors' `ig_list[-1] == -inf` branch,
        so every token of an unseen target is weighted beta).
        """
        nodes = self.path_nodes(token_sequence)
        if nodes is None:
            return np.zeros(len(token_sequence), dtype=np.float64)
        return self.node_ig[nodes]

    def zero_ig_fraction(self) -> float:
        """Frequency-weighted share of zero-IG tokens over the items' paths.

        This is the authors' `freq_zero / total_frequency` statistic (paper: 55.96%-72.97%).
        """
        node_freq = np.bincount(
            self._node_of_sorted[self._node_of_sorted >= 0],
            weights=np.broadcast_to(
                self.frequencies[self._order][:, None], self._node_of_sorted.shape
            )[self._node_of_sorted >= 0],
            minlength=self.num_nodes,
        )
        total = node_freq[1:].sum()
        return float(node_freq[1:][self.node_ig[1:] == 0].sum() / total) if total > 0 else 0.0

    def device_arrays(self) -> TrieArrays:
        """The CSR child table and scores in device-friendly dtypes (int32 / float32)."""
        return TrieArrays(
            row_ptr=self.row_ptr.astype(np.int32),
            child_token=self.child_token.astype(np.int32),
            child_node=self.child_node.astype(np.int32),
            child_ig=self.node_ig[self.child_node].astype(np.float32),
            node_score=self.node_score.astype(np.float32),
            max_children=self.max_children,
        )

    @classmethod
    def from_titles(
        cls,
        title_frequency: Mapping[str, float],
        tokenizer,
        *,
        eos_text: str | None = None,
        total_frequency: float | None = None,
    ) -> tuple[ItemTrie, list[str]]:
        """Builds the trie from `{title: train frequency}` (the item_frequency JSON).

        Each title is inserted as `tokenizer(title + "\\n" + eos_text, add_special_tokens=False)`,
        exactly as the authors do (eos_text defaults to `tokenizer.eos_token`).
        Returns the trie and the titles in item order.
        """
        eos_text = tokenizer.eos_token if eos_text is None else eos_text
        if eos_text is None:
            raise ValueError("ItemTrie.from_titles: the tokenizer has no eos_token; pass eos_text")
        titles = list(title_frequency)
        ids = tokenizer([item_text(t, eos_text) for t in titles], add_special_tokens=False)[
            "input_ids"
        ]
        freqs = [title_frequency[t] for t in titles]
        return cls(ids, freqs, total_frequency=total_frequency), titles


def item_text(title: str, eos_text: str) -> str:
    """The text inserted into the trie for an item: `title + "\\n" + eos_text`."""
    return f"{title}\n{eos_text}"
