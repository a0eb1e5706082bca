"""Per-row sampling settings as a logits processor, so one batch mixes any requests.

`generate` takes one temperature / top-p and one key for the whole batch. A server batches
requests with different settings, so `RowSampler` does the sampling itself: with `generate` in
greedy mode, it returns `scores / T_i` filtered by top-p_i plus Gumbel noise from row i's own
key `fold_in(key_i, step)`; the argmax of that is a draw from softmax(top_p(scores / T_i))
(the Gumbel-max trick, the same draw `jax.random.categorical` makes). Rows with T_i = 0 keep
their raw scores (greedy). A row's tokens therefore depend only on its prompt and seed, not on
its batch neighbours. The processor also ends row i after `max_tokens_i` tokens (forcing an
EOS that the engine strips, finish_reason "length") and bans EOS before that for `ignore_eos`
rows, so the batch's shared `max_new_tokens` is only a bucket size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxmethods.generate import DecodeState, apply_top_p


@struct.dataclass
class RowSampler:
    """Logits processor with per-row settings; every field is a traced array, so one compiled
    program serves greedy, sampled and nucleus batches alike (the sampling and the nucleus sort
    sit behind `lax.cond`s that only run when some row needs them).

    Attributes:
      temperature: [N] float32, 0 = greedy.
      top_p: [N] float32 in (0, 1].
      keys: [N] typed PRNG keys (one per row).
      max_tokens: [N] int32; at step == max_tokens the row is forced to emit `eos_ids[0]`.
      ignore_eos: [N] bool; EOS ids are banned before max_tokens.
      eos_ids: [n_eos] int32 (at least one).
    """

    temperature: jax.Array
    top_p: jax.Array
    keys: jax.Array
    max_tokens: jax.Array
    ignore_eos: jax.Array
    eos_ids: jax.Array

    def _sample(self, scores: jax.Array, step: jax.Array) -> jax.Array:
        greedy = (self.temperature <= 0)[:, None]
        warped = scores / jnp.where(greedy, 1.0, self.temperature[:, None])
        nucleus = jnp.any((self.top_p < 1) & (self.temperature > 0))
        warped = jax.lax.cond(
            nucleus, lambda w: apply_top_p(w, self.top_p[:, None]), lambda w: w, warped
        )
        noise = jax.vmap(
            lambda k: jax.random.gumbel(jax.random.fold_in(k, step), scores.shape[-1:])
        )(self.keys)
        return jnp.where(greedy, scores, warped + noise)

    def __call__(self, scores: jax.Array, state: DecodeState) -> jax.Array:
        """scores [N, V] (raw logits) -> [N, V] whose argmax is the row's next token."""
        step = state.step
        vocab = jnp.arange(scores.shape[-1])
        is_eos = jnp.any(vocab[None, :] == self.eos_ids[:, None], axis=0)  # [V]
        ban = (self.ignore_eos & (step < self.max_tokens))[:, None] & is_eos[None, :]
        scores = jnp.where(ban, -jnp.inf, scores)
        scores = jax.lax.cond(
            jnp.any(self.temperature > 0), lambda s: self._sample(s, step), lambda s: s, scores
        )
        force = (step >= self.max_tokens)[:, None]
        forced = jnp.where(vocab == self.eos_ids[0], 0.0, -jnp.inf)[None, :]
        return jnp.where(force, forced, scores)
