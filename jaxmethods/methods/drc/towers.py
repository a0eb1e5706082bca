"""DRC's dual-tower disentangler: StyleTower and SemTower, one cross-attention + one FFN each.

    Tower(q, kv) = FFN(LN(q + MHA(q, kv, kv)))        (spec §3; identical architecture for both)

    F_sty^a = StyleTower(q=E_a, kv=E_s)   F_sty^s = StyleTower(q=E_s, kv=E_a)   (swap q and kv)
    F_sem^a = SemTower(q=E_a, kv=E_m)     F_sem^m = SemTower(q=E_m, kv=E_a)

E_* are visual-token embeddings [B, N, H] (the LM's input embeddings of the visual ids). The
sizes are unknown [reconstruction: verify]; `TowerConfig` keeps them small: the towers work in
`dim` (default the LM hidden size H; a smaller `dim` adds an H -> dim input projection), 4 heads,
FFN width 2 dim with GELU. The FFN output is the tower output (no second residual, as the
formula reads).

Each tower's weights are `TowerParam` (a Variable type of its own), so `nnx.split(model,
TowerParam, ...)` selects them for the optimizer while the LM stays frozen.

Masking: `kv_mask` [B, Nk] (True = a real key). A row whose keys are *all* masked is handled
explicitly: its attention term is 0, so the tower returns FFN(LN(q)) for it (finite, no NaN);
`check_kv_mask` is the host-side check that raises instead, naming the row.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.models.linear import Dense


class TowerParam(nnx.Param):
    """A trainable weight of the StyleTower / SemTower."""


@dataclass(frozen=True)
class TowerConfig:
    """dim: working width (None = the LM hidden size H); num_heads: of the cross-attention (must
    divide dim); ffn_mult: FFN width = ffn_mult * dim; ln_eps: LayerNorm epsilon; init_std:
    std of the normal kernel init (None = 1 / sqrt(fan_in), so features keep unit scale through
    the tower; biases 0, LN scale 1); param_dtype / dtype: storage / compute."""

    dim: int | None = None
    num_heads: int = 4
    ffn_mult: int = 2
    ln_eps: float = 1e-5
    init_std: float | None = None
    param_dtype: str = "float32"
    dtype: str = "float32"


def typed_dense(
    n_in: int,
    n_out: int,
    param_type: type[nnx.Param],
    *,
    init_std: float | None,
    rngs: nnx.Rngs,
    use_bias: bool = True,
    param_dtype: str = "float32",
    dtype: str = "float32",
) -> Dense:
    """The shared `Dense` with its kernel (and bias) re-typed as `param_type`; `init_std` None =
    1 / sqrt(n_in) (variance-preserving, like torch's default Linear init up to sqrt(3))."""
    std = 1.0 / np.sqrt(n_in) if init_std is None else init_std
    d = Dense(
        n_in, n_out, use_bias=use_bias, dtype=jnp.dtype(dtype),
        param_dtype=jnp.dtype(param_dtype), init_std=float(std), rngs=rngs,
    )  # fmt: skip
    d.kernel = param_type(d.kernel[...])
    if use_bias:
        d.bias = param_type(d.bias[...])
    return d


class LayerNorm(nnx.Module):
    """LayerNorm over the last axis (statistics in float32), scale/bias of `param_type`."""

    def __init__(self, dim: int, param_type: type[nnx.Param], *, eps: float = 1e-5):
        self.scale = param_type(jnp.ones((dim,), jnp.float32))
        self.bias = param_type(jnp.zeros((dim,), jnp.float32))
        self.eps = eps

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        xf = x.astype(jnp.float32)
        mu = jnp.mean(xf, -1, keepdims=True)
        var = jnp.mean((xf - mu) ** 2, -1, keepdims=True)
        y = (xf - mu) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]
        return y.astype(x.dtype)


class CrossAttention(nnx.Module):
    """Multi-head attention MHA(q, kv, kv) with q/k/v/o projections (bias), softmax in float32.

    Call: q [B, Nq, D], kv [B, Nk, D], kv_mask [B, Nk] bool | None -> [B, Nq, D]; rows whose kv
    is all masked get 0.
    """

    def __init__(
        self, dim: int, num_heads: int, param_type: type[nnx.Param], *, init_std: float | None,
        rngs: nnx.Rngs, param_dtype: str = "float32", dtype: str = "float32",
    ):  # fmt: skip
        if dim % num_heads:
            raise ValueError(f"CrossAttention: num_heads={num_heads} must divide dim={dim}")
        kw = dict(init_std=init_std, rngs=rngs, param_dtype=param_dtype, dtype=dtype)
        self.q_proj = typed_dense(dim, dim, param_type, **kw)
        self.k_proj = typed_dense(dim, dim, param_type, **kw)
        self.v_proj = typed_dense(dim, dim, param_type, **kw)
        self.o_proj = typed_dense(dim, dim, param_type, **kw)
        self.num_heads = num_heads

    def __call__(self, q, kv, kv_mask=None):
        b, nq, d = q.shape
        nk = kv.shape[1]
        h = self.num_heads
        qh = self.q_proj(q).reshape(b, nq, h, d // h)
        kh = self.k_proj(kv).reshape(b, nk, h, d // h)
        vh = self.v_proj(kv).reshape(b, nk, h, d // h)
        s = jnp.einsum("bqhd,bkhd->bhqk", qh, kh, preferred_element_type=jnp.float32)
        s = s / np.sqrt(d // h)
        if kv_mask is None:
            p = jax.nn.softmax(s, axis=-1)
            out = jnp.einsum("bhqk,bkhd->bqhd", p.astype(vh.dtype), vh)
            return self.o_proj(out.reshape(b, nq, d))
        m = kv_mask.astype(bool)[:, None, None, :]
        p = jax.nn.softmax(jnp.where(m, s, -1e30), axis=-1)
        p = jnp.where(m, p, 0.0)  # an all-masked row: uniform over nothing -> all zeros
        out = jnp.einsum("bhqk,bkhd->bqhd", p.astype(vh.dtype), vh)
        out = self.o_proj(out.reshape(b, nq, d))
        has_keys = jnp.any(kv_mask.astype(bool), axis=-1)[:, None, None]
        return jnp.where(has_keys, out, 0.0).astype(out.dtype)  # o_proj's bias removed too


class Tower(nnx.Module):
    """One tower: Tower(q, kv) = FFN(LN(q + MHA(q, kv, kv))).

    Args:
      cfg: sizes. in_dim: width of the input embeddings (the LM hidden size H).
      rngs: init randomness.
    Call: q [B, Nq, H], kv [B, Nk, H], kv_mask [B, Nk] | None -> [B, Nq, dim] (one feature per
    query token).
    """

    def __init__(self, cfg: TowerConfig, in_dim: int, *, rngs: nnx.Rngs):
        dim = cfg.dim or in_dim
        kw = dict(init_std=cfg.init_std, rngs=rngs, param_dtype=cfg.param_dtype, dtype=cfg.dtype)
        self.in_proj = nnx.data(
            typed_dense(in_dim, dim, TowerParam, **kw) if dim != in_dim else None
        )
        self.attn = CrossAttention(dim, cfg.num_heads, TowerParam, **kw)
        self.norm = LayerNorm(dim, TowerParam, eps=cfg.ln_eps)
        self.ffn_in = typed_dense(dim, cfg.ffn_mult * dim, TowerParam, **kw)
        self.ffn_out = typed_dense(cfg.ffn_mult * dim, dim, TowerParam, **kw)
        self.dim = dim
        self.dtype = jnp.dtype(cfg.dtype)

    def __call__(self, q, kv, kv_mask=None):
        if q.ndim != 3 or kv.ndim != 3 or q.shape[0] != kv.shape[0] or q.shape[2] != kv.shape[2]:
            raise ValueError(
                f"Tower: q must be [B, Nq, H] and kv [B, Nk, H], got {q.shape}, {kv.shape}"
            )
        if kv_mask is not None and kv_mask.shape != kv.shape[:2]:
            raise ValueError(
                f"Tower: kv_mask must be [B, Nk] = {kv.shape[:2]}, got {kv_mask.shape}"
            )
        q = q.astype(self.dtype)
        kv = kv.astype(self.dtype)
        if self.in_proj is not None:
            q, kv = self.in_proj(q), self.in_proj(kv)
        h = self.norm(q + self.attn(q, kv, kv_mask))
        return self.ffn_out(jax.nn.gelu(self.ffn_in(h), approximate=False))


class DualTower(nnx.Module):
    """StyleTower and SemTower: two `Tower`s of identical architecture, separate weights."""

    def __init__(self, cfg: TowerConfig, in_dim: int, *, rngs: nnx.Rngs):
        self.style = Tower(cfg, in_dim, rngs=rngs)
        self.sem = Tower(cfg, in_dim, rngs=rngs)


def check_kv_mask(kv_mask: np.ndarray, what: str = "kv") -> None:
    """Host-side: raises ValueError naming the first row of `kv_mask` [B, Nk] with no real key
    (a tower would otherwise fall back to FFN(LN(q)) for it)."""
    m = np.asarray(kv_mask).astype(bool)
    empty = ~m.reshape(m.shape[0], -1).any(axis=1)
    if empty.any():
        row = int(np.argmax(empty))
        raise ValueError(
            f"{what}: every key of row {row} is masked ({int(empty.sum())} such rows); a tower "
            "needs at least one real key/value token per row"
        )
