"""BERT / RoBERTa / XLM-RoBERTa / DistilBERT encoders in Flax NNX (one module, per-family config).

Parameter paths (generic across families; `jaxmethods.hf.encoder_keys` maps each family's HF
names onto them):
  model/embeddings/{word_embeddings,position_embeddings,token_type_embeddings}/embedding
  model/embeddings/layer_norm/{scale,bias}
  model/layers/<i>/attention/{query,key,value,output}/{kernel,bias}
  model/layers/<i>/attention_norm/{scale,bias}
  model/layers/<i>/{intermediate,output}/{kernel,bias}
  model/layers/<i>/output_norm/{scale,bias}
  pooler/{kernel,bias}        BERT pooler / RoBERTa classifier.dense / DistilBERT pre_classifier
  classifier/{kernel,bias}    the label projection (RoBERTa classifier.out_proj)
With `scan_layers=True` the `<i>` level disappears and layer leaves gain a leading [L] axis.

Layer (post-LN, Vaswani et al. 2017 / Devlin et al. 2019):
  h = LN(h + Attn(h));  h = LN(h + W2 act(W1 h)).
Embeddings: LN(word[ids] + pos[positions] (+ type[token_type_ids])).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.models.dropout import dropout
from jaxmethods.models.encoder_config import EncoderConfig
from jaxmethods.models.linear import Dense, Embed
from jaxmethods.models.mlp import ACTIVATION_FNS

_ACTIVATIONS = {**ACTIVATION_FNS, "relu": jax.nn.relu, "tanh": jnp.tanh}


def _layer_norm(config: EncoderConfig, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # Two-pass variance, statistics in float32, like torch.nn.LayerNorm.
    return nnx.LayerNorm(
        config.hidden_size,
        epsilon=config.layer_norm_eps,
        dtype=config.compute_dtype,
        param_dtype=config.weight_dtype,
        use_fast_variance=False,
        rngs=rngs,
    )


def encoder_positions(input_ids: jnp.ndarray, config: EncoderConfig) -> jnp.ndarray:
    """Position ids [B, T] int32: 0..T-1 (BERT, DistilBERT), or RoBERTa's
    pad + cumsum(ids != pad) at real tokens and pad at pad tokens (HF
    `create_position_ids_from_input_ids`, which reads the ids, not the attention mask)."""
    b, t = input_ids.shape
    if not config.traits.roberta_positions:
        return jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    real = (input_ids != config.pad_token_id).astype(jnp.int32)
    return jnp.cumsum(real, axis=-1) * real + config.pad_token_id


class EncoderEmbeddings(nnx.Module):
    """ids [B, T] (+ token types) -> LN(word + position (+ type)) [B, T, H]."""

    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
        kw = dict(**config.init_kwargs, rngs=rngs)
        h = config.hidden_size
        self.config = config
        self.word_embeddings = Embed(config.vocab_size, h, **kw)
        self.position_embeddings = Embed(config.max_position_embeddings, h, **kw)
        self.token_type_embeddings = nnx.data(
            Embed(config.type_vocab_size, h, **kw) if config.type_vocab_size else None
        )
        self.layer_norm = _layer_norm(config, rngs)

    def __call__(self, input_ids, token_type_ids=None, *, dropout_key=None) -> jnp.ndarray:
        h = self.word_embeddings(input_ids)
        h = h + self.position_embeddings(encoder_positions(input_ids, self.config))
        if self.token_type_embeddings is not None:
            types = jnp.zeros_like(input_ids) if token_type_ids is None else token_type_ids
            h = h + self.token_type_embeddings(types)
        return dropout(self.layer_norm(h), self.config.hidden_dropout, dropout_key)


class EncoderSelfAttention(nnx.Module):
    """Bidirectional multi-head attention over the non-padding keys: [B, T, H] -> [B, T, H]."""

    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
        kw = dict(use_bias=True, **config.init_kwargs, rngs=rngs)
        h = config.hidden_size
        self.query, self.key, self.value = (Dense(h, h, **kw) for _ in range(3))
        self.output = Dense(h, h, **kw)
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        self.impl, self.prob_dropout = config.attention_impl, config.attention_dropout

    def __call__(self, x, key_valid, *, dropout_key=None) -> jnp.ndarray:
        """x [B, T, H], key_valid [B, T] bool -> [B, T, H]."""
        b, t, _ = x.shape
        split = lambda y: y.reshape(b, t, self.num_heads, self.head_dim)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scale = self.head_dim**-0.5
        mask = key_valid[:, None, None, :]  # [B, 1, 1, S]
        if self.impl == "einsum" or (dropout_key is not None and self.prob_dropout > 0):
            scores = jnp.einsum("btnd,bsnd->bnts", q, k, preferred_element_type=jnp.float32)
            scores = jnp.where(mask, scores * scale, jnp.finfo(jnp.float32).min)
            probs = dropout(jax.nn.softmax(scores, axis=-1), self.prob_dropout, dropout_key)
            out = jnp.einsum("bnts,bsnd->btnd", probs.astype(v.dtype), v)
        else:
            out = jax.nn.dot_product_attention(
                q, k, v, mask=mask, scale=scale, implementation=self.impl
            )
        return self.output(out.reshape(b, t, self.num_heads * self.head_dim))


class EncoderLayer(nnx.Module):
    """Post-LN block: h = LN(h + Attn(h)); h = LN(h + W2 act(W1 h))."""

    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
        kw = dict(use_bias=True, **config.init_kwargs, rngs=rngs)
        self.attention = EncoderSelfAttention(config, rngs=rngs)
        self.attention_norm = _layer_norm(config, rngs)
        self.intermediate = Dense(config.hidden_size, config.intermediate_size, **kw)
        self.output = Dense(config.intermediate_size, config.hidden_size, **kw)
        self.output_norm = _layer_norm(config, rngs)
        self.act_name, self.rate = config.hidden_act, config.hidden_dropout

    def __call__(self, h, key_valid, dropout_key=None) -> jnp.ndarray:
        keys = [None] * 3 if dropout_key is None else list(jax.random.split(dropout_key, 3))
        attn = self.attention(h, key_valid, dropout_key=keys[0])
        h = self.attention_norm(h + dropout(attn, self.rate, keys[1]))
        ff = self.output(_ACTIVATIONS[self.act_name](self.intermediate(h)))
        return self.output_norm(h + dropout(ff, self.rate, keys[2]))


def _stacked_layers(config: EncoderConfig, rngs: nnx.Rngs) -> EncoderLayer:
    """L layers whose params are stacked on a leading [L] axis (for `lax.scan`)."""
    layers = [EncoderLayer(config, rngs=rngs) for _ in range(config.num_layers)]
    graphdef, _ = nnx.split(layers[0])
    states = [nnx.split(layer)[1] for layer in layers]
    return nnx.merge(graphdef, jax.tree.map(lambda *xs: jnp.stack(xs), *states))


class Encoder(nnx.Module):
    """Embeddings -> L post-LN layers (HF `BertModel` etc. without the pooler).

    Call: (input_ids [B, T], attention_mask [B, T] | None, token_type_ids [B, T] | None)
    -> last hidden states [B, T, H] in the compute dtype.
    """

    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.embeddings = EncoderEmbeddings(config, rngs=rngs)
        if config.scan_layers:
            self.layers = _stacked_layers(config, rngs)
        else:
            self.layers = nnx.List(
                [EncoderLayer(config, rngs=rngs) for _ in range(config.num_layers)]
            )

    def __call__(
        self,
        input_ids: jnp.ndarray,
        attention_mask: jnp.ndarray | None = None,
        token_type_ids: jnp.ndarray | None = None,
        *,
        dropout_rng: jax.Array | None = None,
    ) -> jnp.ndarray:
        cfg = self.config
        valid = jnp.ones(input_ids.shape, bool) if attention_mask is None else attention_mask > 0
        keys = [None] * (cfg.num_layers + 1)
        if dropout_rng is not None:
            keys = list(jax.random.split(dropout_rng, cfg.num_layers + 1))
        h = self.embeddings(input_ids, token_type_ids, dropout_key=keys[0])
        if cfg.scan_layers:
            graphdef, state = nnx.split(self.layers)
            layer_keys = None if dropout_rng is None else jnp.stack(keys[1:])

            def body(h, xs):
                layer_state, key = xs
                return nnx.merge(graphdef, layer_state)(h, valid, key), None

            h, _ = jax.lax.scan(body, h, (state, layer_keys))
        else:
            for layer, key in zip(self.layers, keys[1:]):
                h = layer(h, valid, key)
        return h


class EncoderModel(nnx.Module):
    """An encoder with an optional pooler and an optional classification head.

    Args:
      config: the architecture.
      pooler: build the [H, H] pooler (BERT `pooler.dense`, or the pre-classifier of a head).
      num_labels: build a `classifier` [H, num_labels] (sequence classification); None = none.
      rngs: init randomness (default nnx.Rngs(0)).
    Call: `model(input_ids, attention_mask, token_type_ids)` -> last hidden states [B, T, H];
    `pooled(...)` -> act(pooler(h[:, 0])) [B, H]; `logits(...)` -> [B, num_labels] float32.
    """

    def __init__(
        self,
        config: EncoderConfig,
        *,
        pooler: bool = False,
        num_labels: int | None = None,
        rngs: nnx.Rngs | None = None,
    ):
        rngs = nnx.Rngs(0) if rngs is None else rngs
        if num_labels is not None and num_labels <= 0:
            raise ValueError(f"EncoderModel: num_labels must be positive, got {num_labels}")
        if num_labels is not None and not pooler:
            raise ValueError("EncoderModel: a classification head needs its pooler")
        self.config = config
        self.num_labels = num_labels
        kw = dict(use_bias=True, **config.init_kwargs, rngs=rngs)
        self.model = Encoder(config, rngs=rngs)
        h = config.hidden_size
        self.pooler = nnx.data(Dense(h, h, **kw) if pooler else None)
        self.classifier = nnx.data(Dense(h, num_labels, **kw) if num_labels else None)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, *, dropout_rng=None):
        return self.model(input_ids, attention_mask, token_type_ids, dropout_rng=dropout_rng)

    def pooled_from_hidden(self, hidden: jnp.ndarray, dropout_key=None) -> jnp.ndarray:
        """act(pooler(h[:, 0])) [B, H] (RoBERTa's head drops out h[:, 0] first)."""
        if self.pooler is None:
            raise ValueError("this EncoderModel has no pooler (checkpoint without pooler weights)")
        act = _ACTIVATIONS[self.config.traits.head_activation]
        first = hidden[:, 0]
        if self.config.traits.roberta_positions:  # RobertaClassificationHead
            first = dropout(first, self.config.hidden_dropout, dropout_key)
        return act(self.pooler(first))

    def pooled(self, input_ids, attention_mask=None, token_type_ids=None) -> jnp.ndarray:
        """The pooler output [B, H] (HF `pooler_output` of BertModel)."""
        return self.pooled_from_hidden(self(input_ids, attention_mask, token_type_ids))

    def logits(
        self, input_ids, attention_mask=None, token_type_ids=None, *, dropout_rng=None
    ) -> jnp.ndarray:
        """Sequence-classification logits [B, num_labels] float32 (HF *ForSequenceClassification):
        classifier(dropout(act(pooler(h[:, 0]))))."""
        if self.classifier is None:
            raise ValueError("this EncoderModel has no classification head (num_labels=None)")
        keys = [None] * 3 if dropout_rng is None else list(jax.random.split(dropout_rng, 3))
        hidden = self(input_ids, attention_mask, token_type_ids, dropout_rng=keys[0])
        pooled = self.pooled_from_hidden(hidden, keys[1])
        pooled = dropout(pooled, self.config.hidden_dropout, keys[2])
        return self.classifier(pooled).astype(jnp.float32)


__all__ = [
    "Encoder",
    "EncoderConfig",
    "EncoderEmbeddings",
    "EncoderLayer",
    "EncoderModel",
    "EncoderSelfAttention",
    "encoder_positions",
]
