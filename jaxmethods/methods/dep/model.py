"""DEP's model: a frozen decoder LM plus a trainable sparse autoencoder and two alignment MLPs.

As coded in the authors' `model/personal_model.py` (E = 1024 bge-m3 dims, D = 512 code units,
H = the LLM's hidden size, K = 16 soft tokens: 8 history then 8 difference):

    z      = GELU(x W_enc + b)                       # [B, K, D]   (SAE encoder)
    x_rec  = GELU(z W_dec + b)                       # [B, K, E]   (SAE decoder, GELU on output)
    soft_k = align_his(z_k)  for k < 8,  align_diff(z_k) for k >= 8     # Linear-GELU-Linear
    X      = embed(input_ids);  X[input_ids == placeholder_k] = soft_k  # every occurrence
    logits = LM(inputs_embeds = X)

GELU is the exact (erf) form, torch's default. The adapter's weights are `DEPParam`, their own
Variable type, so `nnx.split(model, DEPParam, ...)` gives the trainable subset (the optimizer state
exists only for it) and everything else, the LLM included, stays a read-only constant. The adapter
is fp32 by default while the LLM can be bf16 and sharded; the soft vectors are cast to the LLM's
compute dtype when injected (the authors cast to the embedding dtype too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.linear import Dense

NUM_HIS = 8
NUM_DIFF = 8


class DEPParam(nnx.Param):
    """A trainable weight of DEP's adapter (SAE and alignment MLPs); the LLM has plain Params."""


@dataclass(frozen=True)
class DEPAdapterConfig:
    """embed_size: E, the user-embedding width (bge-m3: 1024); code_size: D, the SAE code width
    (512); init_std: normal init of every kernel (HF `initializer_range`), biases zero;
    param_dtype / dtype: storage and compute dtype of the adapter (fp32 by default)."""

    embed_size: int = 1024
    code_size: int = 512
    init_std: float = 0.02
    param_dtype: str = "float32"
    dtype: str = "float32"


def _dense(n_in: int, n_out: int, cfg: DEPAdapterConfig, rngs: nnx.Rngs) -> Dense:
    """The shared `Dense`, its kernel and bias re-typed as `DEPParam`."""
    d = Dense(
        n_in, n_out, use_bias=True, dtype=jnp.dtype(cfg.dtype),
        param_dtype=jnp.dtype(cfg.param_dtype), init_std=cfg.init_std, rngs=rngs,
    )  # fmt: skip
    d.kernel = DEPParam(d.kernel[...])
    d.bias = DEPParam(d.bias[...])
    return d


def _gelu(x: jnp.ndarray) -> jnp.ndarray:
    return jax.nn.gelu(x, approximate=False)


class AlignMLP(nnx.Module):
    """Linear(D -> H) -> GELU -> Linear(H -> H)."""

    def __init__(self, code_size: int, hidden_size: int, cfg: DEPAdapterConfig, rngs: nnx.Rngs):
        self.fc1 = _dense(code_size, hidden_size, cfg, rngs)
        self.fc2 = _dense(hidden_size, hidden_size, cfg, rngs)

    def __call__(self, z: jnp.ndarray) -> jnp.ndarray:
        return self.fc2(_gelu(self.fc1(z)))


class DEPAdapter(nnx.Module):
    """The SAE and the two alignment MLPs: his_diff_emb [B, 16, E] -> soft tokens [B, 16, H]."""

    def __init__(self, cfg: DEPAdapterConfig, hidden_size: int, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.encoder = _dense(cfg.embed_size, cfg.code_size, cfg, rngs)
        self.decoder = _dense(cfg.code_size, cfg.embed_size, cfg, rngs)
        self.align_his = AlignMLP(cfg.code_size, hidden_size, cfg, rngs)
        self.align_diff = AlignMLP(cfg.code_size, hidden_size, cfg, rngs)

    def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        """x [B, 16, E] (rows 0-7 history, 8-15 difference embeddings) ->
        (soft [B, 16, H], z [B, 16, D], x_recon [B, 16, E]) in the adapter's dtype."""
        if x.ndim != 3 or x.shape[1] != NUM_HIS + NUM_DIFF or x.shape[2] != self.cfg.embed_size:
            raise ValueError(
                f"DEPAdapter: his_diff_emb must be [B, {NUM_HIS + NUM_DIFF}, "
                f"{self.cfg.embed_size}], got {x.shape}"
            )
        z = _gelu(self.encoder(x))
        x_recon = _gelu(self.decoder(z))
        soft = jnp.concatenate(
            [self.align_his(z[:, :NUM_HIS]), self.align_diff(z[:, NUM_HIS:])], axis=1
        )
        return soft, z, x_recon


def inject_soft_tokens(
    embeds: jnp.ndarray, input_ids: jnp.ndarray, soft: jnp.ndarray, placeholder_ids: Sequence[int]
) -> jnp.ndarray:
    """Replaces the embedding at every position holding placeholder k by soft[:, k].

    Args:
      embeds: [B, T, H] token embeddings.
      input_ids: [B, T] int.
      soft: [B, K, H] soft tokens, K = len(placeholder_ids).
      placeholder_ids: K distinct token ids (static).
    Returns:
      [B, T, H] in `embeds.dtype`; positions holding no placeholder are untouched.
    """
    ids = jnp.asarray(placeholder_ids, jnp.int32)
    match = input_ids[..., None] == ids  # [B, T, K]
    which = jnp.argmax(match, axis=-1)  # [B, T]
    picked = jnp.take_along_axis(soft, which[..., None], axis=1)  # [B, T, H]
    return jnp.where(jnp.any(match, -1)[..., None], picked.astype(embeds.dtype), embeds)


class DEPModel(nnx.Module):
    """A frozen `DecoderLM` with DEP's trainable adapter.

    Args:
      lm: the decoder (any dtype / sharding; its vocabulary must hold the placeholders).
      his_ids, diff_ids: the 8 `[HIS_TOKEN_k]` and 8 `[DIFF_TOKEN_k]` ids
        (`jaxmethods.methods.dep.prompts.placeholder_ids(tokenizer)`).
      cfg: the adapter's sizes, init and dtypes.
      rngs: the adapter's init randomness (default nnx.Rngs(0)).
    """

    def __init__(
        self,
        lm: DecoderLM,
        his_ids: Sequence[int],
        diff_ids: Sequence[int],
        cfg: DEPAdapterConfig = DEPAdapterConfig(),
        *,
        rngs: nnx.Rngs | None = None,
    ):
        ids = tuple(int(i) for i in his_ids) + tuple(int(i) for i in diff_ids)
        vocab = lm.config.vocab_size
        if len(his_ids) != NUM_HIS or len(diff_ids) != NUM_DIFF:
            raise ValueError(
                f"DEPModel: need {NUM_HIS} history and {NUM_DIFF} difference placeholder ids, "
                f"got {len(his_ids)} and {len(diff_ids)}"
            )
        if len(set(ids)) != len(ids) or min(ids) < 0 or max(ids) >= vocab:
            raise ValueError(
                f"DEPModel: placeholder ids {ids} must be distinct and in [0, vocab_size={vocab})"
            )
        self.lm = lm
        self.adapter = DEPAdapter(cfg, lm.config.hidden_size, rngs=rngs or nnx.Rngs(0))
        self.placeholder_ids = ids

    def input_embeddings(
        self, input_ids: jnp.ndarray, his_diff_emb: jnp.ndarray
    ) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        """input_ids [B, T], his_diff_emb [B, 16, E] -> (inputs_embeds [B, T, H] in the LM's
        compute dtype, z [B, 16, D], x_recon [B, 16, E])."""
        soft, z, x_recon = self.adapter(his_diff_emb)
        embeds = inject_soft_tokens(self.lm.embed(input_ids), input_ids, soft, self.placeholder_ids)
        return embeds, z, x_recon

    def __call__(
        self,
        input_ids: jnp.ndarray,
        attention_mask: jnp.ndarray | None,
        his_diff_emb: jnp.ndarray,
        *,
        dropout_rng: jax.Array | None = None,
    ) -> jnp.ndarray:
        """Logits [B, T, V] of the LM on the prompt with the 16 soft tokens injected."""
        embeds, _, _ = self.input_embeddings(input_ids, his_diff_emb)
        return self.lm(None, attention_mask, inputs_embeds=embeds, dropout_rng=dropout_rng)
