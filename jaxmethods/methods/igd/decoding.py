"""IGD-Decoding: information-gain rescaling of log-probs inside trie-constrained beam search.

At every step, for a beam at trie node n with allowed children c (authors'
`TrieLogitsProcessor`, paper eq. 9-10):

    IG_c  = score(n) - score(c)
    IG~_c = (IG_c - min IG) / (max IG - min IG + 1e-7)     min/max over the siblings of n
    s(c)  = (log p(c) - 1e-7) * (1 - alpha * IG~_c)         if max IG > min IG
    s(c)  = (log p(c) - 1e-7)                                if all siblings tie (multiplier 1)
    s(other tokens) = -inf

Since log p < 0, a high-IG (decisive) token gets a less negative score. alpha = 0 only shifts
every candidate by the same -1e-7, so the beams equal plain constrained beam search. The tie case
follows `code/LogitProcesser.py`, which sets the multiplier itself to 1 ("mask = 1").

The processor plugs into `jaxmethods.generate` beam search through its logits-processor hook; it
delegates trie-node tracking to `PrefixTrieConstraint`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmethods.generate.beam_search import BeamSearchOutput, beam_search
from jaxmethods.generate.constraints import PrefixTrieConstraint, TrieState
from jaxmethods.generate.processors import DecodeState
from jaxmethods.methods.igd.trie import ItemTrie

LOGP_SHIFT = 1e-7  # the authors' "keep log-probs strictly negative" shift
IG_EPS = 1e-7  # the authors' min-max denominator epsilon


def item_trie_constraint(trie: ItemTrie, vocab_size: int) -> PrefixTrieConstraint:
    """The shared `PrefixTrieConstraint` over the catalog, with the same node ids as `trie`."""
    arrays = trie.device_arrays()
    if arrays.child_token.size and int(arrays.child_token.max()) >= vocab_size:
        raise ValueError(
            f"item_trie_constraint: the catalog uses token {int(arrays.child_token.max())} but "
            f"vocab_size={vocab_size}"
        )
    return PrefixTrieConstraint(
        children_start=jnp.asarray(arrays.row_ptr[:-1]),
        children_end=jnp.asarray(arrays.row_ptr[1:]),
        child_token=jnp.asarray(arrays.child_token),
        child_node=jnp.asarray(arrays.child_node),
        vocab_size=int(vocab_size),
        max_children=int(arrays.max_children),
    )


def ig_rescale(
    logp: jax.Array, ig: jax.Array, valid: jax.Array, alpha: jax.Array | float
) -> jax.Array:
    """The IGD step score of each allowed child (eq. 10); -inf on padding entries.

    Args:
      logp: [N, C] log-probs of the children tokens.
      ig: [N, C] IG of each child (parent score - child score).
      valid: [N, C] bool, real children (False = padding of the fan-out).
      alpha: decoding strength.
    Returns:
      [N, C] float32 processed scores.
    """
    ig = ig.astype(jnp.float32)
    lo = jnp.min(jnp.where(valid, ig, jnp.inf), axis=-1, keepdims=True)
    hi = jnp.max(jnp.where(valid, ig, -jnp.inf), axis=-1, keepdims=True)
    spread = hi > lo
    scaled = (ig - lo) / jnp.where(spread, hi - lo + IG_EPS, 1.0)
    multiplier = jnp.where(spread, 1.0 - alpha * scaled, 1.0)
    return jnp.where(valid, (logp.astype(jnp.float32) - LOGP_SHIFT) * multiplier, -jnp.inf)


@struct.dataclass
class IGDLogitsProcessor:
    """Trie constraint + IG rescaling, as one stateful processor of the shared beam search.

    Attributes:
      constraint: the catalog `PrefixTrieConstraint` (tracks each beam's node).
      node_ig: [num_nodes] float32 IG of the edge into each node (aligned with the constraint).
      alpha: float32 scalar (a traced value: changing it does not recompile).
    """

    constraint: PrefixTrieConstraint
    node_ig: jax.Array
    alpha: jax.Array

    @classmethod
    def from_trie(cls, trie: ItemTrie, *, vocab_size: int, alpha: float) -> IGDLogitsProcessor:
        return cls(
            constraint=item_trie_constraint(trie, vocab_size),
            node_ig=jnp.asarray(trie.node_ig.astype(np.float32)),
            alpha=jnp.float32(alpha),
        )

    def with_alpha(self, alpha: float) -> IGDLogitsProcessor:
        return self.replace(alpha=jnp.float32(alpha))

    def init_state(self, num_rows: int) -> TrieState:
        return self.constraint.init_state(num_rows)

    def update_state(self, proc_state: TrieState, tokens: jax.Array) -> TrieState:
        return self.constraint.update_state(proc_state, tokens)

    def __call__(self, scores: jax.Array, state: DecodeState) -> jax.Array:
        """scores [N, V] log-softmax log-probs -> [N, V] IGD scores (-inf off the trie)."""
        if scores.shape[-1] != self.constraint.vocab_size:
            raise ValueError(
                f"IGDLogitsProcessor: built for vocab_size={self.constraint.vocab_size}, scores "
                f"have V={scores.shape[-1]}"
            )
        tokens, nodes, valid = self.constraint.children(state.processor_state.node)
        logp = jnp.take_along_axis(scores, tokens, axis=-1)
        processed = ig_rescale(logp, self.node_ig[nodes], valid, self.alpha)
        rows = jnp.broadcast_to(jnp.arange(scores.shape[0])[:, None], tokens.shape)
        cols = jnp.where(valid, tokens, scores.shape[-1])  # padding: dropped
        out = jnp.full(scores.shape, -jnp.inf, jnp.float32)
        return out.at[rows, cols].set(processed, mode="drop")


def igd_beam_search(
    model,
    input_ids,
    attention_mask,
    processor: IGDLogitsProcessor | PrefixTrieConstraint,
    *,
    eos_token_id: int,
    pad_token_id: int,
    num_beams: int = 10,
    num_return_sequences: int = 10,
    max_new_tokens: int = 72,
    length_penalty: float = 0.0,
) -> BeamSearchOutput:
    """The authors' generation call: HF-semantics beam search (no early stopping) over left-padded
    prompts with the IGD processor (or a bare `PrefixTrieConstraint` for plain constrained search).

    length_penalty: 0.0 for D3-style decoding, 1.0 for BIGRec-style decoding.
    Returns BeamSearchOutput(sequences [B, R, M], scores [B, R], lengths [B, R]), best first.
    """
    return beam_search(
        model,
        input_ids,
        attention_mask,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        num_return_sequences=num_return_sequences,
        length_penalty=length_penalty,
        early_stopping=False,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        logits_processor=processor,
    )
