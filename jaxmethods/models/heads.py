"""Sequence reward / value head on the decoder backbone (HF `*ForSequenceClassification`).

score(x) = W_score h_last, where h_last is the final-norm hidden state at the last real token
(the rightmost position with attention_mask == 1; with left padding that is position T - 1).
Checkpoints such as Skywork-Reward (LlamaForSequenceClassification, `score.weight` [1, H]) load
into `SequenceClassifier` via `jaxmethods.hf.load_pretrained(..., head="sequence_classification")`.

Note: HF pools at the rightmost token whose id differs from `pad_token_id`; we pool by the
attention mask, which agrees whenever the pad token does not also occur as a real token.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.models.decoder import Decoder, DecoderLM
from jaxmethods.models.decoder_config import DecoderConfig
from jaxmethods.models.linear import Dense


def last_token_index(input_ids: jnp.ndarray, attention_mask: jnp.ndarray | None) -> jnp.ndarray:
    """[B] int32 index of the last real token (T - 1 when there is no mask)."""
    b, t = input_ids.shape
    if attention_mask is None:
        return jnp.full((b,), t - 1, jnp.int32)
    positions = jnp.arange(t, dtype=jnp.int32)[None, :]
    return jnp.argmax(positions * (attention_mask > 0), axis=-1).astype(jnp.int32)


def gather_last(hidden: jnp.ndarray, index: jnp.ndarray) -> jnp.ndarray:
    """hidden [B, T, ...] at per-row positions index [B] -> [B, ...]."""
    return jnp.take_along_axis(hidden, index[:, None, None], axis=1)[:, 0]


def last_token_hidden(
    model: DecoderLM | SequenceClassifier,
    input_ids: jnp.ndarray,
    attention_mask: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """Final-layer (post-norm) hidden state at the last real token: [B, H].

    The sentence embedding HF code reads as `outputs.hidden_states[-1][:, -1]` on left-padded or
    unpadded input.
    """
    hidden = model.hidden_states(input_ids, attention_mask)
    return gather_last(hidden, last_token_index(input_ids, attention_mask))


class SequenceClassifier(nnx.Module):
    """Backbone + linear score head pooled at the last real token.

    Args:
      config: decoder architecture.
      num_labels: outputs per sequence (1 for a scalar reward / value).
      rngs: init randomness.
    Call: (input_ids [B, T], attention_mask [B, T] | None) -> scores [B, num_labels] float32.
    """

    def __init__(self, config: DecoderConfig, num_labels: int = 1, rngs: nnx.Rngs | None = None):
        rngs = nnx.Rngs(0) if rngs is None else rngs
        if num_labels <= 0:
            raise ValueError(f"SequenceClassifier: num_labels must be positive, got {num_labels}")
        self.config = config
        self.num_labels = num_labels
        self.model = Decoder(config, rngs=rngs)
        self.score = Dense(
            config.hidden_size, num_labels, use_bias=False, **config.init_kwargs, rngs=rngs
        )

    def hidden_states(
        self,
        input_ids: jnp.ndarray,
        attention_mask: jnp.ndarray | None = None,
        *,
        positions: jnp.ndarray | None = None,
        dropout_rng: jax.Array | None = None,
    ) -> jnp.ndarray:
        """Final-norm hidden states [B, T, H]."""
        h, _ = self.model(input_ids, attention_mask, positions=positions, dropout_rng=dropout_rng)
        return h

    def token_scores(self, input_ids, attention_mask=None, *, positions=None, dropout_rng=None):
        """Per-position scores [B, T, num_labels] float32 (a per-token value head)."""
        h = self.hidden_states(
            input_ids, attention_mask, positions=positions, dropout_rng=dropout_rng
        )
        return self.score(h).astype(jnp.float32)

    def __call__(
        self,
        input_ids: jnp.ndarray,
        attention_mask: jnp.ndarray | None = None,
        *,
        positions: jnp.ndarray | None = None,
        dropout_rng: jax.Array | None = None,
    ) -> jnp.ndarray:
        h = self.hidden_states(
            input_ids, attention_mask, positions=positions, dropout_rng=dropout_rng
        )
        last = gather_last(h, last_token_index(input_ids, attention_mask))
        return self.score(last).astype(jnp.float32)
