"""Prefix-trie constrained decoding: a trie of allowed token sequences held as device arrays.

Generative retrieval / recommendation (e.g. IGD, TIGER-style semantic ids) must only produce
valid items. The trie is stored in CSR form, so it is a pytree of small int32 arrays that enters
the jitted decoding loop as an argument:

  node ids 0..num_nodes-1, root = 0; the children of node n are the edges
  `children_start[n] <= e < children_end[n]`, edge e carries `child_token[e]` -> `child_node[e]`
  (edges of a node sorted by token). Node -1 means "off the trie" (a finished row).

Each decoding row carries `TrieState(node=[N])`. Per step the processor keeps only the children
of that node (-inf elsewhere) and, once a token is chosen, moves the row to the child node. A
custom processor (IGD rescales log-probs by information gain over the allowed children) reads
`state.processor_state.node` and calls `children(node)` to get the allowed tokens and their node
ids, keeping a `PrefixTrieConstraint` as a field and delegating `init_state`/`update_state` to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmethods.generate.processors import DecodeState


@struct.dataclass
class TrieState:
    """node: [N] int32 current trie node of each row (-1 once off the trie)."""

    node: jax.Array


@struct.dataclass
class PrefixTrieConstraint:
    """Restricts every step to the children of the row's trie node (a stateful processor).

    Attributes:
      children_start, children_end: [num_nodes] int32 CSR ranges into the edge arrays.
      child_token, child_node: [num_edges] int32 token and target node of each edge.
      vocab_size: static V of the scores it masks.
      max_children: static largest fan-out (the width of `children`).
    """

    children_start: jax.Array
    children_end: jax.Array
    child_token: jax.Array
    child_node: jax.Array
    vocab_size: int = struct.field(pytree_node=False)
    max_children: int = struct.field(pytree_node=False)

    @classmethod
    def from_sequences(
        cls,
        sequences: Iterable[Sequence[int]],
        *,
        vocab_size: int,
        eos_token_id: int | None = None,
    ) -> PrefixTrieConstraint:
        """Builds the trie of `sequences` (host side, NumPy).

        Args:
          sequences: the allowed token sequences (e.g. the semantic ids of every item).
          vocab_size: V of the model's scores.
          eos_token_id: if given, appended to every sequence that does not end with it, so a
            completed item can only be followed by EOS and decoding stops there. Without it,
            a row at a leaf has no allowed token: generate exactly the item length then.
        """
        children: list[dict[int, int]] = [{}]
        count = 0
        for seq in sequences:
            seq = [int(t) for t in seq]
            if eos_token_id is not None and (not seq or seq[-1] != eos_token_id):
                seq.append(int(eos_token_id))
            if not seq:
                raise ValueError(f"PrefixTrieConstraint: sequence #{count} is empty")
            node = 0
            for tok in seq:
                if not 0 <= tok < vocab_size:
                    raise ValueError(
                        f"PrefixTrieConstraint: sequence #{count} has token {tok} outside "
                        f"[0, vocab_size={vocab_size})"
                    )
                nxt = children[node].get(tok)
                if nxt is None:
                    nxt = len(children)
                    children[node][tok] = nxt
                    children.append({})
                node = nxt
            count += 1
        if count == 0:
            raise ValueError("PrefixTrieConstraint: no sequences given")
        fanout = np.array([len(c) for c in children], np.int32)
        end = np.cumsum(fanout).astype(np.int32)
        start = end - fanout
        tokens = np.array([t for c in children for t in sorted(c)], np.int32)
        nodes = np.array([c[t] for c in children for t in sorted(c)], np.int32)
        return cls(
            children_start=jnp.asarray(start),
            children_end=jnp.asarray(end),
            child_token=jnp.asarray(tokens),
            child_node=jnp.asarray(nodes),
            vocab_size=int(vocab_size),
            max_children=int(fanout.max()),
        )

    @property
    def num_nodes(self) -> int:
        return self.children_start.shape[0]

    def lookup(self, prefix: Sequence[int]) -> int:
        """Host-side: node id reached by `prefix` from the root, -1 if it leaves the trie."""
        start, end = np.asarray(self.children_start), np.asarray(self.children_end)
        tokens, nodes = np.asarray(self.child_token), np.asarray(self.child_node)
        node = 0
        for tok in prefix:
            edges = np.arange(start[node], end[node])
            hit = edges[tokens[edges] == tok]
            if hit.size == 0:
                return -1
            node = int(nodes[hit[0]])
        return node

    def children(self, node: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Allowed next tokens of each row: node [N] -> tokens, child nodes, valid [N, C].

        C = `max_children`; entries with `valid` False are padding (token and node 0).
        """
        on_trie = node >= 0
        safe = jnp.where(on_trie, node, 0)
        start, end = self.children_start[safe], self.children_end[safe]
        edge = start[:, None] + jnp.arange(self.max_children, dtype=jnp.int32)[None, :]
        valid = (edge < end[:, None]) & on_trie[:, None]
        edge = jnp.where(valid, edge, 0)
        tokens = jnp.where(valid, self.child_token[edge], 0)
        nodes = jnp.where(valid, self.child_node[edge], 0)
        return tokens, nodes, valid

    def allowed_mask(self, node: jax.Array) -> jax.Array:
        """[N] nodes -> [N, V] bool, True on the children tokens of each row's node."""
        tokens, _, valid = self.children(node)
        rows = jnp.broadcast_to(jnp.arange(node.shape[0])[:, None], tokens.shape)
        cols = jnp.where(valid, tokens, self.vocab_size)  # out of range: dropped
        mask = jnp.zeros((node.shape[0], self.vocab_size), bool)
        return mask.at[rows, cols].set(True, mode="drop")

    def advance(self, node: jax.Array, token: jax.Array) -> jax.Array:
        """Child of `node` along `token` per row; -1 when `token` is not a child (or node is -1)."""
        tokens, nodes, valid = self.children(node)
        hit = valid & (tokens == token[:, None])
        return jnp.where(hit.any(-1), jnp.sum(jnp.where(hit, nodes, 0), -1), -1).astype(jnp.int32)

    # --- processor interface -------------------------------------------------------------
    def init_state(self, num_rows: int) -> TrieState:
        return TrieState(node=jnp.zeros((num_rows,), jnp.int32))

    def __call__(self, scores: jax.Array, state: DecodeState) -> jax.Array:
        if scores.shape[-1] != self.vocab_size:
            raise ValueError(
                f"PrefixTrieConstraint: built for vocab_size={self.vocab_size}, scores have "
                f"V={scores.shape[-1]}"
            )
        allowed = self.allowed_mask(state.processor_state.node)
        return jnp.where(allowed, scores, -jnp.inf)

    def update_state(self, proc_state: TrieState, tokens: jax.Array) -> TrieState:
        return TrieState(node=self.advance(proc_state.node, tokens))
