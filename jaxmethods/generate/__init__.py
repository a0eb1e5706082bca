"""Jitted generation with a KV cache: greedy / sampling, beam search, constrained decoding.

    from jaxmethods.generate import generate, beam_search, PrefixTrieConstraint
    out = generate(model, ids, mask, max_new_tokens=32, eos_token_id=tok.eos_token_id)

See docs/generation.md.
"""

from jaxmethods.generate.beam_search import BeamSearchOutput, beam_search, build_beam_search
from jaxmethods.generate.constraints import PrefixTrieConstraint, TrieState
from jaxmethods.generate.processors import DecodeState, StatefulProcessor
from jaxmethods.generate.sampling import (
    GenerationOutput,
    build_generate,
    generate,
    per_request_keys,
)
from jaxmethods.generate.warpers import apply_temperature, apply_top_k, apply_top_p, warp_logits

__all__ = [
    "BeamSearchOutput",
    "DecodeState",
    "GenerationOutput",
    "PrefixTrieConstraint",
    "StatefulProcessor",
    "TrieState",
    "apply_temperature",
    "apply_top_k",
    "apply_top_p",
    "beam_search",
    "build_beam_search",
    "build_generate",
    "generate",
    "per_request_keys",
    "warp_logits",
]
