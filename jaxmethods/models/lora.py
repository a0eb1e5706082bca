"""LoRA (Hu et al., 2021) as its own NNX Variable type.

W x  ->  W x + (alpha / r) * B A x   (eq. 3; A: [in, r] uniform(+-1/sqrt(in)) like PEFT's
kaiming init, B: [r, out] zeros, so a fresh adapter is the identity).

Training selects the adapter by type, so optimizer state exists only for LoRA factors:
  graphdef, lora, rest = nnx.split(model, LoRAParam, ...)
(`LoRAParam` subclasses `nnx.Param`, so filter `LoRAParam` first.) `LoRAParam` *is*
`flax.nnx.LoRAParam`, so filters written for Flax's own `nnx.LoRA` (tunix, qwix) select our
adapters too: `nnx.state(model, nnx.LoRAParam)` is exactly the `lora_a` / `lora_b` factors.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
from flax import nnx

# A LoRA factor (`lora_a` or `lora_b` of a Dense): Flax's own Variable type, not a subclass.
LoRAParam = nnx.LoRAParam


def lora_delta(dense: nnx.Module) -> jnp.ndarray:
    """(alpha / r) A B of a Dense with LoRA factors: [..., in, out] float32."""
    a = dense.lora_a[...].astype(jnp.float32)
    b = dense.lora_b[...].astype(jnp.float32)
    return dense.lora_scale * jnp.einsum("...ir,...ro->...io", a, b)


@jax.jit
def _add_delta(kernel, a, b, scale):
    """kernel + sign-scaled A B in float32, cast back (one compiled program per shape)."""
    delta = jnp.einsum("...ir,...ro->...io", a.astype(jnp.float32), b.astype(jnp.float32))
    return (kernel.astype(jnp.float32) + scale * delta).astype(kernel.dtype)


def _fold(dense: nnx.Module, sign: float) -> None:
    dense.kernel[...] = _add_delta(
        dense.kernel[...], dense.lora_a[...], dense.lora_b[...], sign * dense.lora_scale
    )


@functools.partial(jax.jit, static_argnames=("shape", "dtype"))
def _uniform_init(key, bound, *, shape, dtype):
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound).astype(dtype)


def _path(key: tuple) -> str:
    return "/".join(str(k) for k in key)


def lora_modules(model: nnx.Module) -> list[tuple[str, nnx.Module]]:
    """(path, Dense) pairs of every Dense that carries LoRA factors."""
    return [
        (_path(p), m)
        for p, m in nnx.iter_graph(model)
        if isinstance(m, nnx.Module) and getattr(m, "lora_a", None) is not None
    ]


def apply_lora(
    model: nnx.Module,
    rank: int,
    alpha: float,
    dropout: float = 0.0,
    target_modules: str = r"(q_proj|v_proj)$",
    *,
    rngs: nnx.Rngs | None = None,
    param_dtype=jnp.float32,
) -> list[str]:
    """Adds LoRA factors (in place) to every Dense whose path `re.search`es `target_modules`.

    Args:
      model: a DecoderLM / SequenceClassifier (or any module built from `models.linear.Dense`).
      rank: r. alpha: the scale numerator (scale = alpha / r). dropout: on the LoRA input.
      target_modules: regex over module paths such as "model/layers/0/self_attn/q_proj";
        e.g. r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$" for all linears.
      rngs: init randomness for A (default nnx.Rngs(0)).
      param_dtype: storage dtype of the factors (fp32 master weights by default).
    Returns:
      The paths of the adapted modules.
    """
    from jaxmethods.models.linear import Dense

    if rank <= 0:
        raise ValueError(f"apply_lora: rank must be positive, got {rank}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"apply_lora: dropout must be in [0, 1), got {dropout}")
    rngs = nnx.Rngs(0) if rngs is None else rngs
    pattern = re.compile(target_modules)
    denses = [(_path(p), m) for p, m in nnx.iter_graph(model) if isinstance(m, Dense)]
    chosen = [(p, m) for p, m in denses if pattern.search(p)]
    if not chosen:
        names = sorted({p.rsplit("/", 1)[-1] for p, _ in denses})
        raise ValueError(
            f"apply_lora: target_modules {target_modules!r} matches no Dense layer; "
            f"Dense names are {names}"
        )
    for path, dense in chosen:
        if dense.lora_a is not None:
            raise ValueError(f"apply_lora: {path} already has LoRA factors")
        *lead, fan_in, fan_out = dense.kernel.shape
        bound = 1.0 / fan_in**0.5
        a = _uniform_init(rngs.params(), bound, shape=(*lead, fan_in, rank), dtype=param_dtype)
        dense.lora_a = LoRAParam(a)
        dense.lora_b = LoRAParam(jnp.zeros((*lead, rank, fan_out), param_dtype))
        dense.lora_scale = float(alpha) / rank
        dense.lora_dropout = float(dropout)
        dense.lora_merged = False
    return [p for p, _ in chosen]


def merge_lora(model: nnx.Module) -> None:
    """Folds (alpha / r) A B into each adapted kernel (in place); the LoRA branch is skipped
    until `unmerge_lora`. The forward pass is unchanged up to rounding."""
    for path, dense in lora_modules(model):
        if dense.lora_merged:
            raise ValueError(f"merge_lora: {path} is already merged")
        _fold(dense, +1.0)
        dense.lora_merged = True


def unmerge_lora(model: nnx.Module) -> None:
    """Subtracts the LoRA delta from merged kernels and re-enables the LoRA branch (in place)."""
    for path, dense in lora_modules(model):
        if not dense.lora_merged:
            raise ValueError(f"unmerge_lora: {path} is not merged")
        _fold(dense, -1.0)
        dense.lora_merged = False


def remove_lora(model: nnx.Module, *, merge: bool = True) -> None:
    """Drops the LoRA factors (merging them first unless `merge=False` or already merged)."""
    for _, dense in lora_modules(model):
        if merge and not dense.lora_merged:
            _fold(dense, +1.0)
        dense.lora_a = None
        dense.lora_b = None
        dense.lora_scale = 0.0
        dense.lora_dropout = 0.0
        dense.lora_merged = False


def lora_base_state(lora_state: nnx.State) -> nnx.State:
    """The adapter state with every `lora_b` factor zeroed.

    Merged with the frozen rest (`nnx.merge(graphdef, lora_base_state(lora), rest)`) it is the
    base model, since ΔW = (α/r)·A·0 = 0: the reference policy of DPO / GRPO with no second copy
    of the weights. Pure (usable inside jit); only for unmerged adapters (`merge_lora` folds the
    delta into the kernels, which zeroing B would not undo).
    """

    def zero_b(path, x):
        return jnp.zeros_like(x) if "lora_b" in jax.tree_util.keystr(path) else x

    return jax.tree_util.tree_map_with_path(zero_b, lora_state)
