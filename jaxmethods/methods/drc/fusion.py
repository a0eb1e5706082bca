"""DRC's FusionNetwork: (style features, semantic features) -> K latent-instruction tokens.

The paper only says it "encodes combinations of style and semantic features into compact
latent-instruction tokens" [reconstruction: verify]. Built here as a one-block resampler
(Perceiver/Q-Former style), every choice a `FusionConfig` field:

    kv   = [F_sty + t_sty ; F_sem + t_sem]                    (t_*: learned type embeddings)
    x    = LN1(Z + MHA(Z, kv, kv))                            (Z: K learned latent queries)
    x    = LN2(x + FFN(x))
    out  = x W_out                                            [B, K, H_lm]

mode "joint" (default): every latent attends to both feature sets. mode "split": the first
K // 2 latents attend to the style features only and the rest to the semantic ones (a harder
disentanglement prior; K must be even). The weights are `FusionParam`. Kernels default to a
1 / sqrt(fan_in) init and the latent queries and type embeddings to N(0, 1), so at init the
features move the latents as much as the queries do (a 0.02 init drowns them under the LN).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.methods.drc.towers import CrossAttention, LayerNorm, typed_dense
from jaxmethods.models.linear import normal_init

FUSION_MODES = ("joint", "split")


class FusionParam(nnx.Param):
    """A trainable weight of the FusionNetwork."""


@dataclass(frozen=True)
class FusionConfig:
    """num_latents: K latent-instruction tokens (default 8); num_heads: of the resampler's
    attention; ffn_mult: FFN width = ffn_mult * dim; mode: "joint" or "split" (see module doc);
    ln_eps, init_std, param_dtype, dtype as in `TowerConfig`."""

    num_latents: int = 8
    num_heads: int = 4
    ffn_mult: int = 2
    mode: str = "joint"
    ln_eps: float = 1e-5
    init_std: float | None = None
    param_dtype: str = "float32"
    dtype: str = "float32"

    def __post_init__(self):
        if self.num_latents <= 0:
            raise ValueError(f"FusionConfig.num_latents: must be > 0, got {self.num_latents}")
        if self.mode not in FUSION_MODES:
            raise ValueError(f"FusionConfig.mode: {self.mode!r} is not one of {FUSION_MODES}")
        if self.mode == "split" and self.num_latents % 2:
            raise ValueError(
                f"FusionConfig: mode 'split' needs an even num_latents, got {self.num_latents}"
            )


class FusionNetwork(nnx.Module):
    """Args: cfg; dim: width of the tower features; out_dim: the LM hidden size; rngs.

    Call: f_sty [B, Ns, dim], f_sem [B, Nm, dim], sty_mask [B, Ns] | None, sem_mask [B, Nm] |
    None -> latents [B, K, out_dim].
    """

    def __init__(self, cfg: FusionConfig, dim: int, out_dim: int, *, rngs: nnx.Rngs):
        kw = dict(init_std=cfg.init_std, rngs=rngs, param_dtype=cfg.param_dtype, dtype=cfg.dtype)
        pdt = jnp.dtype(cfg.param_dtype)
        self.latents = FusionParam(
            normal_init(rngs.params(), 1.0, shape=(cfg.num_latents, dim), dtype=pdt)
        )
        self.type_embed = FusionParam(normal_init(rngs.params(), 1.0, shape=(2, dim), dtype=pdt))
        self.attn = CrossAttention(dim, cfg.num_heads, FusionParam, **kw)
        self.norm1 = LayerNorm(dim, FusionParam, eps=cfg.ln_eps)
        self.ffn_in = typed_dense(dim, cfg.ffn_mult * dim, FusionParam, **kw)
        self.ffn_out = typed_dense(cfg.ffn_mult * dim, dim, FusionParam, **kw)
        self.norm2 = LayerNorm(dim, FusionParam, eps=cfg.ln_eps)
        self.out_proj = typed_dense(dim, out_dim, FusionParam, **kw)
        self.mode = cfg.mode
        self.dtype = jnp.dtype(cfg.dtype)

    def __call__(self, f_sty, f_sem, sty_mask=None, sem_mask=None):
        if f_sty.ndim != 3 or f_sem.ndim != 3 or f_sty.shape[0] != f_sem.shape[0]:
            raise ValueError(
                f"FusionNetwork: f_sty [B, Ns, D] and f_sem [B, Nm, D], got {f_sty.shape}, "
                f"{f_sem.shape}"
            )
        b = f_sty.shape[0]
        te = self.type_embed[...].astype(self.dtype)
        sty = f_sty.astype(self.dtype) + te[0]
        sem = f_sem.astype(self.dtype) + te[1]
        z = jnp.broadcast_to(self.latents[...].astype(self.dtype), (b, *self.latents.shape))
        if self.mode == "joint":
            kv = jnp.concatenate([sty, sem], axis=1)
            if sty_mask is None and sem_mask is None:
                mask = None
            else:
                ones = lambda f: jnp.ones(f.shape[:2], bool)
                mask = jnp.concatenate(
                    [
                        ones(sty) if sty_mask is None else sty_mask.astype(bool),
                        ones(sem) if sem_mask is None else sem_mask.astype(bool),
                    ],
                    axis=1,
                )
            att = self.attn(z, kv, mask)
        else:
            k = z.shape[1] // 2
            att = jnp.concatenate(
                [self.attn(z[:, :k], sty, sty_mask), self.attn(z[:, k:], sem, sem_mask)], axis=1
            )
        x = self.norm1(z + att)
        x = self.norm2(x + self.ffn_out(jax.nn.gelu(self.ffn_in(x), approximate=False)))
        return self.out_proj(x)
