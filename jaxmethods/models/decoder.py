"""One configurable decoder-only LM (Llama 2/3, Qwen2/2.5, Mistral, Gemma) in Flax NNX.

Parameter paths mirror Hugging Face names so key maps, LoRA targets and sharding rules read
naturally: `model/embed_tokens/embedding`, `model/layers/<i>/self_attn/q_proj/kernel`,
`model/layers/<i>/mlp/gate_proj/kernel`, `model/norm/scale`, `lm_head/kernel`. With
`scan_layers=True` the `<i>` level disappears and every layer leaf gains a leading [L] axis.

Block (pre-norm):  h += Attn(Norm(h));  h += MLP(Norm(h)).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.models.attention import Attention, attention_mask
from jaxmethods.models.decoder_config import DecoderConfig
from jaxmethods.models.kv_cache import KVCache
from jaxmethods.models.linear import Dense, Embed
from jaxmethods.models.lora import lora_delta
from jaxmethods.models.mlp import GatedMLP
from jaxmethods.models.norms import RMSNorm
from jaxmethods.models.rope import inverse_frequencies, rope_cos_sin

__all__ = ["Decoder", "DecoderBlock", "DecoderConfig", "DecoderLM", "KVCache", "default_positions"]

_NO_WINDOW = 2**30  # "window" of layers without sliding attention when windows are scanned


class DecoderBlock(nnx.Module):
    """Pre-norm transformer block: attention then gated MLP, each with a residual."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        norm = functools.partial(
            RMSNorm,
            config.hidden_size,
            eps=config.rms_norm_eps,
            plus_one=config.norm_plus_one,
            param_dtype=config.weight_dtype,
        )
        self.input_layernorm = norm()
        self.self_attn = Attention(config, rngs=rngs)
        self.post_attention_layernorm = norm()
        self.mlp = GatedMLP(config, rngs=rngs)

    def __call__(self, h, cos, sin, key_valid, query_slots, window, cache_kv, cache_index, key):
        """h [B, T, H] -> ([B, T, H], updated (k, v) cache buffers of this layer or None)."""
        keys = (None, None) if key is None else tuple(jax.random.split(key))
        mask = attention_mask(key_valid, query_slots, window)
        attn, new_kv = self.self_attn(
            self.input_layernorm(h),
            cos,
            sin,
            mask,
            cache_kv=cache_kv,
            cache_index=cache_index,
            dropout_key=keys[0],
        )
        h = h + attn
        h = h + self.mlp(self.post_attention_layernorm(h), dropout_key=keys[1])
        return h, new_kv


def _stacked_blocks(config: DecoderConfig, rngs: nnx.Rngs) -> DecoderBlock:
    """L blocks whose params are stacked on a leading [L] axis (for `lax.scan`)."""
    blocks = [DecoderBlock(config, rngs=rngs) for _ in range(config.num_layers)]
    graphdef, _ = nnx.split(blocks[0])
    states = [nnx.split(b)[1] for b in blocks]
    return nnx.merge(graphdef, jax.tree.map(lambda *xs: jnp.stack(xs), *states))


def default_positions(valid: jnp.ndarray, offset: jnp.ndarray | int = 0) -> jnp.ndarray:
    """RoPE positions under left padding: offset + cumsum(valid) - 1, clipped at 0. [B, T] int32."""
    offset = jnp.asarray(offset, jnp.int32)
    if offset.ndim == 1:
        offset = offset[:, None]
    return jnp.maximum(offset + jnp.cumsum(valid.astype(jnp.int32), axis=-1) - 1, 0)


def _token_shape(input_ids, inputs_embeds, hidden_size: int) -> tuple[int, int]:
    """(B, T) of a forward call given ids [B, T] and/or embeddings [B, T, H]."""
    if inputs_embeds is None:
        if input_ids is None:
            raise ValueError("Decoder: pass input_ids [B, T] or inputs_embeds [B, T, H]")
        return tuple(input_ids.shape)
    if inputs_embeds.ndim != 3 or inputs_embeds.shape[-1] != hidden_size:
        raise ValueError(
            f"Decoder: inputs_embeds must be [B, T, {hidden_size}], got {inputs_embeds.shape}"
        )
    if input_ids is not None and tuple(input_ids.shape) != inputs_embeds.shape[:2]:
        raise ValueError(
            f"Decoder: input_ids shape {input_ids.shape} != inputs_embeds [B, T] "
            f"{inputs_embeds.shape[:2]}"
        )
    return tuple(inputs_embeds.shape[:2])


def _remat(fn, policy: str):
    if policy == "none":
        return fn
    if policy == "full":
        return jax.checkpoint(fn)
    return jax.checkpoint(fn, policy=getattr(jax.checkpoint_policies, policy))


class Decoder(nnx.Module):
    """Embeddings -> L blocks -> final norm (HF `*Model`, the backbone without a head)."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.embed_tokens = Embed(
            config.vocab_size, config.hidden_size, **config.init_kwargs, rngs=rngs
        )
        if config.scan_layers:
            self.layers = _stacked_blocks(config, rngs)
        else:
            self.layers = nnx.List(
                [DecoderBlock(config, rngs=rngs) for _ in range(config.num_layers)]
            )
        self.norm = RMSNorm(
            config.hidden_size,
            eps=config.rms_norm_eps,
            plus_one=config.norm_plus_one,
            param_dtype=config.weight_dtype,
        )

    def __call__(
        self,
        input_ids: jnp.ndarray | None,
        attention_mask: jnp.ndarray | None = None,
        *,
        positions: jnp.ndarray | None = None,
        cache: KVCache | None = None,
        dropout_rng: jax.Array | None = None,
        inputs_embeds: jnp.ndarray | None = None,
    ) -> tuple[jnp.ndarray, KVCache | None]:
        """input_ids [B, T] -> (final-norm hidden states [B, T, H], updated cache or None).

        `inputs_embeds` [B, T, H] replaces the token-embedding lookup (HF `inputs_embeds`: the
        Gemma sqrt(H) scale is still applied); `input_ids` may then be None.
        """
        cfg = self.config
        shape = _token_shape(input_ids, inputs_embeds, cfg.hidden_size)
        t = shape[1]
        valid = jnp.ones(shape, bool) if attention_mask is None else attention_mask.astype(bool)
        if cache is None:
            index = None
            key_valid = valid
            query_slots = jnp.arange(t, dtype=jnp.int32)
            offset = 0
        else:
            if t > cache.max_len:
                raise ValueError(f"{t} new tokens do not fit a KV cache of {cache.max_len} slots")
            index = cache.index
            key_valid = jax.lax.dynamic_update_slice(
                cache.mask, valid, (jnp.zeros((), jnp.int32), index)
            )
            query_slots = index + jnp.arange(t, dtype=jnp.int32)
            offset = cache.lengths
        if positions is None:
            positions = default_positions(valid, offset)
        inv_freq = inverse_frequencies(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
        cos, sin = rope_cos_sin(positions, inv_freq)

        if inputs_embeds is None:
            h = self.embed_tokens(input_ids)
        else:
            h = inputs_embeds.astype(cfg.compute_dtype)
        if cfg.embed_scale_by_sqrt_dim:
            h = h * jnp.asarray(math.sqrt(cfg.hidden_size), h.dtype)
        layer_keys = None if dropout_rng is None else jax.random.split(dropout_rng, cfg.num_layers)
        kv = None if cache is None else (cache.k, cache.v)

        def run(block_state, h, window, kv_l, key_l, graphdef):
            block = nnx.merge(graphdef, block_state)
            return block(h, cos, sin, key_valid, query_slots, window, kv_l, index, key_l)

        windows = [cfg.layer_window(i) for i in range(cfg.num_layers)]
        if cfg.scan_layers:
            graphdef, state = nnx.split(self.layers)
            static_window = windows[0] if len(set(windows)) == 1 else None
            scanned_windows = None
            if len(set(windows)) > 1:
                scanned_windows = jnp.asarray([_NO_WINDOW if w is None else w for w in windows])

            def body(h, xs):
                layer_state, win, kv_l, key_l = xs
                win = static_window if win is None else win
                return run(layer_state, h, win, kv_l, key_l, graphdef)

            body = _remat(body, cfg.remat_policy)
            h, new_kv = jax.lax.scan(body, h, (state, scanned_windows, kv, layer_keys))
        else:
            new_ks, new_vs = [], []
            for i, layer in enumerate(self.layers):
                graphdef, state = nnx.split(layer)
                fn = _remat(functools.partial(run, graphdef=graphdef), cfg.remat_policy)
                kv_l = None if kv is None else (kv[0][i], kv[1][i])
                key_l = None if layer_keys is None else layer_keys[i]
                h, kv_l = fn(state, h, windows[i], kv_l, key_l)
                if kv_l is not None:
                    new_ks.append(kv_l[0])
                    new_vs.append(kv_l[1])
            new_kv = (jnp.stack(new_ks), jnp.stack(new_vs)) if kv is not None else None
        h = self.norm(h)
        if cache is None:
            return h, None
        new_cache = KVCache(k=new_kv[0], v=new_kv[1], mask=key_valid, index=index + t)
        return h, new_cache


class DecoderLM(nnx.Module):
    """Causal LM: `model(input_ids, attention_mask) -> logits [B, T, V]` (HF `*ForCausalLM`).

    Args:
      config: the architecture.
      rngs: init randomness (default nnx.Rngs(0)).
    """

    def __init__(self, config: DecoderConfig, rngs: nnx.Rngs | None = None):
        rngs = nnx.Rngs(0) if rngs is None else rngs
        self.config = config
        self.model = Decoder(config, rngs=rngs)
        self.lm_head = nnx.data(
            None
            if config.tie_word_embeddings
            else Dense(
                config.hidden_size,
                config.vocab_size,
                use_bias=False,
                **config.init_kwargs,
                rngs=rngs,
            )
        )

    def __call__(
        self,
        input_ids: jnp.ndarray,
        attention_mask: jnp.ndarray | None = None,
        *,
        positions: jnp.ndarray | None = None,
        cache: KVCache | None = None,
        dropout_rng: jax.Array | None = None,
        inputs_embeds: jnp.ndarray | None = None,
    ) -> jnp.ndarray | tuple[jnp.ndarray, KVCache]:
        """Logits for every position.

        Args:
          input_ids: [B, T] int32 (left padded for batched prompts); may be None when
            `inputs_embeds` is given.
          attention_mask: [B, T] (1 = real token); None = all real.
          positions: [B, T] RoPE positions; default cumsum(mask) - 1 (plus the cached length).
          cache: a KVCache to read and extend (decoding); the T tokens go to slots
            [cache.index, cache.index + T).
          dropout_rng: enables LoRA dropout (training); None = deterministic.
          inputs_embeds: [B, T, H] input embeddings used instead of `embed(input_ids)` (soft
            prompts: `embed(ids)` with some positions replaced); None = look the ids up.
        Returns:
          logits [B, T, V] in `config.logits_dtype`, or (logits, new_cache) when `cache` is given.
        """
        h, new_cache = self.model(
            input_ids, attention_mask, positions=positions, cache=cache,
            dropout_rng=dropout_rng, inputs_embeds=inputs_embeds,
        )  # fmt: skip
        logits = self.logits_from_hidden(h)
        return logits if cache is None else (logits, new_cache)

    def hidden_states(
        self,
        input_ids: jnp.ndarray | None,
        attention_mask: jnp.ndarray | None = None,
        *,
        positions: jnp.ndarray | None = None,
        dropout_rng: jax.Array | None = None,
        inputs_embeds: jnp.ndarray | None = None,
    ) -> jnp.ndarray:
        """Final-norm hidden states [B, T, H] (HF `hidden_states[-1]`), in the compute dtype."""
        h, _ = self.model(
            input_ids, attention_mask, positions=positions, dropout_rng=dropout_rng,
            inputs_embeds=inputs_embeds,
        )  # fmt: skip
        return h

    def embed(self, input_ids: jnp.ndarray) -> jnp.ndarray:
        """Token embeddings [B, T, H] in the compute dtype, before any Gemma sqrt(H) scale: the
        tensor `inputs_embeds` replaces (edit positions of it to inject soft prompts)."""
        return self.model.embed_tokens(input_ids)

    def lm_head_kernel(self) -> jnp.ndarray:
        """The LM head as a [H, V] matrix (transposed embeddings when tied; LoRA delta folded in)."""
        if self.lm_head is None:
            return self.model.embed_tokens.embedding[...].T
        kernel = self.lm_head.kernel[...]
        if self.lm_head.lora_a is not None and not self.lm_head.lora_merged:
            kernel = kernel + lora_delta(self.lm_head).astype(kernel.dtype)
        return kernel

    def logits_from_hidden(self, h: jnp.ndarray) -> jnp.ndarray:
        """h [..., H] -> logits [..., V], matmul in the compute dtype, output in logits_dtype."""
        dt = self.config.compute_dtype
        kernel = self.lm_head_kernel().astype(dt)
        return jnp.einsum(
            "...h,hv->...v",
            h.astype(dt),
            kernel,
            preferred_element_type=jnp.dtype(self.config.logits_dtype),
        )

    def init_cache(self, batch_size: int, max_len: int, dtype=None) -> KVCache:
        """An empty KVCache with `max_len` slots (dtype defaults to the compute dtype)."""
        cfg = self.config
        return KVCache.zeros(
            cfg.num_layers,
            batch_size,
            max_len,
            cfg.num_kv_heads,
            cfg.head_dim,
            cfg.compute_dtype if dtype is None else dtype,
        )
