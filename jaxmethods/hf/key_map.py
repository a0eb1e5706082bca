"""Checkpoint key <-> parameter path tables (data-driven, invertible).

Our parameter paths mirror the Hugging Face module names, so each table row is a pair of
templates plus whether the 2-D tensor is transposed (torch `nn.Linear.weight` is [out, in], our
`kernel` is [in, out]). `{i}` is a layer index, `{p}` a projection name, `{n}` a norm name.

Llama, Qwen2, Mistral and Gemma share one torch layout, so `TORCH_KEY_MAPS` maps every family to
the same rows; the HF Flax (linen) layout differs only in norm names (`weight` vs our `scale`).
Paths here are per layer ("model/layers/3/..."); stacked (`scan_layers`) models are handled by
`jaxmethods.hf.layout`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_PLACEHOLDERS = {
    "i": r"\d+",
    "p": r"(?:q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
    "n": r"(?:input_layernorm|post_attention_layernorm)",
    "a": r"(?:self_attn|mlp)",
}


class Rule(NamedTuple):
    checkpoint: str  # template of the checkpoint key ("." or "/" separated)
    param: str  # template of our parameter path ("/" separated)
    transpose: bool


_TORCH_DECODER = (
    Rule("model.embed_tokens.weight", "model/embed_tokens/embedding", False),
    Rule("model.layers.{i}.{a}.{p}.weight", "model/layers/{i}/{a}/{p}/kernel", True),
    Rule("model.layers.{i}.{a}.{p}.bias", "model/layers/{i}/{a}/{p}/bias", False),
    Rule("model.layers.{i}.{n}.weight", "model/layers/{i}/{n}/scale", False),
    Rule("model.norm.weight", "model/norm/scale", False),
    Rule("lm_head.weight", "lm_head/kernel", True),
    Rule("score.weight", "score/kernel", True),
    Rule("score.bias", "score/bias", False),
)

TORCH_KEY_MAPS: dict[str, tuple[Rule, ...]] = {
    family: _TORCH_DECODER for family in ("llama", "qwen2", "mistral", "gemma")
}

# HF Flax (linen) `flax_model.msgpack` layout of FlaxLlama/FlaxMistral/FlaxGemma *ForCausalLM.
FLAX_KEY_MAP: tuple[Rule, ...] = (
    Rule("model/embed_tokens/embedding", "model/embed_tokens/embedding", False),
    Rule("model/layers/{i}/{a}/{p}/kernel", "model/layers/{i}/{a}/{p}/kernel", False),
    Rule("model/layers/{i}/{a}/{p}/bias", "model/layers/{i}/{a}/{p}/bias", False),
    Rule("model/layers/{i}/{n}/weight", "model/layers/{i}/{n}/scale", False),
    Rule("model/norm/weight", "model/norm/scale", False),
    Rule("lm_head/kernel", "lm_head/kernel", False),
    Rule("score/kernel", "score/kernel", False),
)

# Checkpoint tensors that are derived buffers, not parameters (old Llama checkpoints store them).
IGNORED_CHECKPOINT_KEYS = (r"\.rotary_emb\.inv_freq$",)


def _compile(template: str) -> re.Pattern:
    out, pos = [], 0
    for m in re.finditer(r"\{(\w)\}", template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>{_PLACEHOLDERS[m.group(1)]})")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out) + r"\Z")


class KeyMap:
    """Maps checkpoint keys to parameter paths and back through a table of `Rule`s."""

    def __init__(self, rules: tuple[Rule, ...]):
        self.rules = rules
        self._forward = [(_compile(r.checkpoint), r) for r in rules]
        self._backward = [(_compile(r.param), r) for r in rules]

    def to_param(self, key: str) -> tuple[str, bool] | None:
        """Checkpoint key -> (parameter path, transpose) or None when no rule matches."""
        for pattern, rule in self._forward:
            m = pattern.match(key)
            if m:
                return rule.param.format(**m.groupdict()), rule.transpose
        return None

    def to_checkpoint(self, path: str) -> tuple[str, bool]:
        """Parameter path -> (checkpoint key, transpose); raises for a path no rule covers."""
        for pattern, rule in self._backward:
            m = pattern.match(path)
            if m:
                return rule.checkpoint.format(**m.groupdict()), rule.transpose
        raise KeyError(f"no checkpoint key is defined for parameter {path!r}")


def is_ignored(key: str) -> bool:
    return any(re.search(p, key) for p in IGNORED_CHECKPOINT_KEYS)
