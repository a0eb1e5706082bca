"""`DecoderConfig`: one frozen dataclass describing every supported decoder family.

Families differ only in a few switches (HF names in brackets):
  llama   Llama 2 / Llama 3 (+ rope_scaling type "llama3"), SwiGLU, untied head [LlamaForCausalLM]
  qwen2   Qwen2 / Qwen2.5: bias on q/k/v only, often tied embeddings [Qwen2ForCausalLM]
  mistral Mistral: sliding-window attention [MistralForCausalLM]
  gemma   Gemma: embeddings scaled by sqrt(hidden), RMSNorm with (1 + w), GeGLU (gelu-tanh),
          explicit head_dim, tied embeddings [GemmaForCausalLM]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

FAMILIES = ("llama", "qwen2", "mistral", "gemma")
ATTENTION_IMPLS = ("xla", "cudnn", "einsum")
REMAT_POLICIES = ("none", "full", "dots_saveable", "dots_with_no_batch_dims_saveable")
ACTIVATIONS = ("silu", "gelu_pytorch_tanh", "gelu_new", "gelu", "gelu_tanh")


class ModelNumerics:
    """dtype / param_dtype / initializer_range as the arguments every `Dense` / `Embed` takes
    (a mixin of the decoder and encoder configs, which hold those three fields)."""

    dtype: str
    param_dtype: str
    initializer_range: float

    @property
    def compute_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.dtype)

    @property
    def weight_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.param_dtype)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """dtype, param_dtype and init_std of every `Dense` / `Embed` the model builds."""
        return dict(
            dtype=self.compute_dtype,
            param_dtype=self.weight_dtype,
            init_std=self.initializer_range,
        )


@dataclasses.dataclass(frozen=True)
class DecoderConfig(ModelNumerics):
    """Architecture and numerics of a decoder-only LM.

    Attributes:
      vocab_size, hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads, head_dim:
        shapes (GQA when num_kv_heads < num_heads; head_dim may differ from hidden/heads, Gemma).
      rope_theta: RoPE base. rope_scaling: None or a dict with "rope_type" in
        {"default", "linear", "llama3"} and that type's fields (HF `rope_parameters`).
      rms_norm_eps: RMSNorm epsilon. norm_plus_one: RMSNorm scales by (1 + w) (Gemma).
      tie_word_embeddings: the LM head is the transposed embedding table.
      attention_bias: bias on q/k/v. attention_out_bias: bias on o (Llama's attention_bias sets
        both; Qwen2 has q/k/v bias only). mlp_bias: bias on the MLP projections (Llama).
      sliding_window: attend only to the last `sliding_window` keys (Mistral), None for full.
      sliding_layers: per-layer flags for which layers use the window (Qwen2 `layer_types`);
        None means every layer when sliding_window is set.
      hidden_act: MLP gate activation. embed_scale_by_sqrt_dim: multiply embeddings by
        sqrt(hidden_size) (Gemma).
      dtype: compute dtype; param_dtype: storage dtype of the weights; logits_dtype: dtype of
        the returned logits (float32 keeps log-probs exact under bf16 compute). Each may be given
        as a name, a JAX/NumPy dtype or type (`jnp.bfloat16`) and is stored as its name.
      scan_layers: stack layer params on a leading [L] axis and run `lax.scan` (fast compiles).
      remat: activation checkpointing of each layer: False/"none", True/"full", or a
        `jax.checkpoint_policies` name ("dots_saveable", "dots_with_no_batch_dims_saveable").
      attention_impl: "xla" / "cudnn" (`jax.nn.dot_product_attention`) or "einsum" (plain jnp).
      initializer_range: std of the normal init of fresh weights.
      max_position_embeddings, bos/eos/pad_token_id: carried through to the exported config.
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    family: str = "llama"
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    rms_norm_eps: float = 1e-6
    norm_plus_one: bool = False
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    attention_out_bias: bool = False
    mlp_bias: bool = False
    sliding_window: int | None = None
    sliding_layers: tuple[bool, ...] | None = None
    hidden_act: str = "silu"
    embed_scale_by_sqrt_dim: bool = False
    dtype: str = "float32"
    param_dtype: str = "float32"
    logits_dtype: str = "float32"
    scan_layers: bool = False
    remat: bool | str = False
    attention_impl: str = "xla"
    initializer_range: float = 0.02
    max_position_embeddings: int = 4096
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None

    def __post_init__(self):
        def bad(field: str, why: str):
            raise ValueError(f"DecoderConfig.{field}: {why}")

        if self.family not in FAMILIES:
            bad("family", f"{self.family!r} is not one of {FAMILIES}")
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads"):
            if getattr(self, name) <= 0:
                bad(name, f"must be positive, got {getattr(self, name)}")
        if self.num_kv_heads <= 0 or self.num_heads % self.num_kv_heads:
            bad("num_kv_heads", f"{self.num_kv_heads} must divide num_heads={self.num_heads}")
        if self.head_dim <= 0 or self.head_dim % 2:
            bad("head_dim", f"must be a positive even number for RoPE, got {self.head_dim}")
        if self.attention_impl not in ATTENTION_IMPLS:
            bad("attention_impl", f"{self.attention_impl!r} is not one of {ATTENTION_IMPLS}")
        if self.hidden_act not in ACTIVATIONS:
            bad("hidden_act", f"{self.hidden_act!r} is not one of {ACTIVATIONS}")
        if self.remat_policy not in REMAT_POLICIES:
            bad("remat", f"{self.remat!r} is not a bool or one of {REMAT_POLICIES}")
        for name in ("dtype", "param_dtype", "logits_dtype"):
            try:  # jnp.bfloat16, np.float32, "torch.bfloat16" -> "bfloat16", "float32", ...
                object.__setattr__(self, name, dtype_name(getattr(self, name)))
            except TypeError:
                bad(name, f"{getattr(self, name)!r} is not a dtype")
        if self.sliding_window is not None and self.sliding_window <= 0:
            bad("sliding_window", f"must be positive or None, got {self.sliding_window}")
        if self.sliding_layers is not None and len(self.sliding_layers) != self.num_layers:
            bad(
                "sliding_layers",
                f"has {len(self.sliding_layers)} flags for {self.num_layers} layers",
            )
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type", "default"))
            if kind not in ("default", "linear", "llama3"):
                bad(
                    "rope_scaling", f"rope_type {kind!r} is not supported (default, linear, llama3)"
                )

    # Hashable even with the rope_scaling dict, so the config can be a static jit argument.
    def __hash__(self):
        return hash(_freeze([getattr(self, f.name) for f in dataclasses.fields(self)]))

    @property
    def remat_policy(self) -> str:
        if self.remat is True:
            return "full"
        if self.remat is False:
            return "none"
        return str(self.remat)

    def layer_window(self, layer: int) -> int | None:
        """The sliding window of layer `layer` (None = full causal attention)."""
        if self.sliding_window is None:
            return None
        if self.sliding_layers is None or self.sliding_layers[layer]:
            return self.sliding_window
        return None

    def replace(self, **changes: Any) -> DecoderConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def tiny(cls, vocab_size: int = 128, family: str = "llama", **overrides: Any) -> DecoderConfig:
        """A 2-layer, hidden-32 config of `family` for tests and CPU demos (GQA 4 heads / 2 kv)."""
        base: dict[str, Any] = dict(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_layers=2,
            num_heads=4,
            num_kv_heads=2,
            head_dim=8,
            family=family,
            max_position_embeddings=512,
        )
        base.update(FAMILY_DEFAULTS.get(family, {}))  # an unknown family fails in __post_init__
        base.update(overrides)
        return cls(**base)


def dtype_name(dtype: Any) -> str:
    """The canonical name ("bfloat16", "float32", ...) of a dtype given as a string (HF's
    "torch.bfloat16" too), a JAX scalar type (`jnp.bfloat16`), a NumPy type or a `np.dtype`.

    Configs store names so they stay JSON-serialisable and hashable. Raises TypeError otherwise.
    """
    if dtype is None:
        raise TypeError("dtype is None")
    if isinstance(dtype, str):
        dtype = dtype.removeprefix("torch.")
    elif type(dtype).__module__ == "torch":  # a torch.dtype, without importing torch
        dtype = str(dtype).removeprefix("torch.")
    return jnp.dtype(dtype).name


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


# The switches that make a family what it is (used by `tiny` and by the HF config parser).
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": dict(hidden_act="silu"),
    "qwen2": dict(hidden_act="silu", attention_bias=True, tie_word_embeddings=True),
    "mistral": dict(hidden_act="silu", sliding_window=4),
    "gemma": dict(
        hidden_act="gelu_pytorch_tanh",
        norm_plus_one=True,
        embed_scale_by_sqrt_dim=True,
        tie_word_embeddings=True,
        head_dim=16,
    ),
}
