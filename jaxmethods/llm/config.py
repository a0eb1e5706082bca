"""`LLMConfig`: the `llm` section of a method config (an ml_collections ConfigDict or a dict).

    llm = dict(backend="openai", model="gpt-4o-mini", api_key_env="OPENAI_API_KEY",
               cache_dir="runs/cache/llm", price_input_per_1m=0.15, price_output_per_1m=0.60)
    client = make_client(llm)        # jaxmethods.llm.make_client

The config holds the *name* of the environment variable with the API key, never the key, so
`config.json` of a run cannot leak it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from jaxmethods.train.config import ConfigError, check_choice, non_negative, positive, to_dataclass

BACKENDS = ("openai", "local")
MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")


@dataclasses.dataclass(frozen=True)
class LLMConfig:
    """Settings of `make_client`.

    Attributes:
      backend: "openai" (any OpenAI-compatible HTTP endpoint: OpenAI, vLLM, `jaxmethods.serve`)
        or "local" (in-process generation with jaxmethods' engine).
      model: the model name sent to the endpoint (openai), or a checkpoint folder / hub id (local).
      base_url: the endpoint, e.g. "http://127.0.0.1:8000/v1"; "" = OpenAI's default.
      api_key_env: name of the environment variable that holds the key; "" = no key (local
        servers; the client sends "EMPTY").
      max_concurrency: requests in flight at once (openai).
      timeout_s: per-attempt timeout in seconds (openai).
      max_retries: retries after the first attempt on 429 / 5xx / connection errors / timeouts /
        malformed responses, with exponential backoff and jitter (openai).
      backoff_s, backoff_max_s: first backoff and its cap; attempt k waits
        min(cap, backoff_s * 2**k) * U(0.5, 1), or the server's Retry-After if longer.
      max_tokens_field: "max_tokens" (vLLM, most servers) or "max_completion_tokens" (OpenAI's
        newer models require it).
      cache_dir: folder of the on-disk completion cache ("" = no cache).
      metrics_dir: folder whose `metrics.jsonl` gets one accounting row per `complete` call
        ("" = none).
      price_input_per_1m, price_output_per_1m: USD per 1M prompt / completion tokens.
      dtype: compute dtype of the local model ("" = float32 on CPU, bfloat16 on accelerators).
      max_batch_size: most rows per jitted generation call (local).
      seed: seed of the jitter (openai) and of unseeded sampled requests (local).
    """

    backend: str = "openai"
    model: str = ""
    base_url: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = positive(8)
    timeout_s: float = positive(60.0)
    max_retries: int = non_negative(5)
    backoff_s: float = non_negative(1.0)
    backoff_max_s: float = non_negative(60.0)
    max_tokens_field: str = "max_tokens"
    cache_dir: str = ""
    metrics_dir: str = ""
    price_input_per_1m: float = non_negative(0.0)
    price_output_per_1m: float = non_negative(0.0)
    dtype: str = ""
    max_batch_size: int = positive(32)
    seed: int = 0


def llm_config(config: LLMConfig | Mapping[str, Any] | Any, where: str = "config.llm") -> LLMConfig:
    """An `LLMConfig` from itself, a dict or a ConfigDict; errors name the field
    (`config.llm.backend: ...`)."""
    if isinstance(config, LLMConfig):
        cfg = config
    else:
        cfg = to_dataclass(LLMConfig, config, where)
    check_choice(cfg.backend, BACKENDS, f"{where}.backend")
    check_choice(cfg.max_tokens_field, MAX_TOKENS_FIELDS, f"{where}.max_tokens_field")
    if not cfg.model:
        raise ConfigError(
            f"{where}.model: required (a model name for backend 'openai', a checkpoint folder or "
            "hub id for backend 'local')"
        )
    return cfg
