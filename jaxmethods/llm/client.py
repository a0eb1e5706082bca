"""The one client interface: `complete(requests) -> list[Completion]`, order preserved.

`LLMClient` does what every backend shares: request normalisation, the on-disk cache, token and
cost accounting (`client.usage`, `metrics.jsonl`) and failure handling. A backend implements
`_complete_missing(items)` for the requests the cache could not answer.

    client = make_client({"backend": "openai", "model": "gpt-4o-mini", "cache_dir": "cache"})
    [c] = client.complete([Request.from_prompt("Rate this reply from 1 to 5: ...", max_tokens=8)])
    c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens, c.cached
"""

from __future__ import annotations

import abc
import concurrent.futures
import time
from collections.abc import Mapping, Sequence
from typing import Any

from jaxmethods.llm.accounting import NO_PRICES, Prices, Usage, UsageLog, summarize
from jaxmethods.llm.cache import CompletionCache
from jaxmethods.llm.config import LLMConfig, llm_config
from jaxmethods.llm.types import Completion, LLMRequestError, Request, as_request, request_key

# (index in the call, request, cache key)
Item = tuple[int, Request, str]


class LLMClient(abc.ABC):
    """Base class of the backends (abstract: each implements `_complete_missing`).

    Args:
      identity: what, besides the request, determines the answer (e.g. `{"model": name}`); it
        goes into every cache key. Never put the endpoint or a key here.
      cache_dir: folder of the JSONL cache ("" = no cache).
      metrics_dir: folder of `metrics.jsonl` ("" = none).
      prices: USD per 1M input / output tokens.
    """

    def __init__(
        self,
        identity: Mapping[str, Any],
        *,
        cache_dir: str = "",
        metrics_dir: str = "",
        prices: Prices = NO_PRICES,
    ):
        self.identity = dict(identity)
        self.cache = CompletionCache(cache_dir) if cache_dir else None
        self.prices = prices
        self._usage = UsageLog(metrics_dir)
        self.last_usage = Usage()
        self._background: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def usage(self) -> Usage:
        """Running totals over every `complete` call of this client."""
        return self._usage.total

    @property
    def model_name(self) -> str:
        return str(self.identity.get("model", ""))

    def key(self, request: Request | Mapping[str, Any] | str) -> str:
        """The cache key of a request for this backend."""
        return request_key(as_request(request), self.identity)

    def complete(
        self, requests: Sequence[Request | Mapping[str, Any] | str], *, step: int | None = None
    ) -> list[Completion]:
        """Answers every request (cache first), in the order given.

        Args:
          requests: `Request`s, mappings of their fields, or plain strings (one user message).
          step: the `step` of this call's `metrics.jsonl` row (default: a call counter).
        Returns:
          One `Completion` per request.
        Raises:
          LLMRequestError: a request failed for good (naming its index, key and a preview); the
            requests that succeeded in the same call are cached first, so a rerun redoes only
            the failed ones.
        """
        start = time.perf_counter()
        reqs = [as_request(r) for r in requests]
        keys = [request_key(r, self.identity) for r in reqs]
        out: list[Completion | None] = [None] * len(reqs)
        missing: list[Item] = []
        first_index: dict[str, int] = {}
        duplicates: list[tuple[int, int]] = []
        for i, (req, key) in enumerate(zip(reqs, keys)):
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                out[i] = hit
            elif key in first_index:  # the same request twice in one call: answer it once
                duplicates.append((i, first_index[key]))
            else:
                first_index[key] = i
                missing.append((i, req, key))
        errors: list[LLMRequestError] = []
        if missing:
            results = self._complete_missing(missing)
            for (i, _, key), result in zip(missing, results):
                if isinstance(result, LLMRequestError):
                    errors.append(result)
                    continue
                out[i] = result
                if self.cache is not None:
                    self.cache.put(key, result)
        for i, j in duplicates:
            if out[j] is not None:
                out[i] = Completion.from_record(out[j].to_record(), keys[i])
        done = [c for c in out if c is not None]
        usage = summarize(
            done, self.prices, failures=len(errors), seconds=time.perf_counter() - start
        )
        self.last_usage = usage
        self._usage.record(usage, step)
        if errors:
            first = errors[0]
            if len(errors) > 1:
                first.args = (f"{first.args[0]} ({len(errors) - 1} more requests failed)",)
            raise first
        return done

    def submit(
        self, requests: Sequence[Request | Mapping[str, Any] | str], *, step: int | None = None
    ) -> concurrent.futures.Future:
        """`complete(requests)` on a background thread: a Future of the completions (or of the
        `LLMRequestError`). Calls run one after another, in submission order, so judges can
        score a batch while the caller generates the next one."""
        if self._background is None:
            self._background = concurrent.futures.ThreadPoolExecutor(1, "llm-submit")
        return self._background.submit(self.complete, list(requests), step=step)

    @abc.abstractmethod
    def _complete_missing(self, items: list[Item]) -> list[Completion | LLMRequestError]:
        """Answers uncached requests: one `Completion` or `LLMRequestError` per item, in order."""

    def close(self) -> None:
        """Waits for submitted calls, then releases what the backend holds."""
        if self._background is not None:
            self._background.shutdown(wait=True)
            self._background = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        cache = self.cache.path if self.cache is not None else None
        return f"{type(self).__name__}(model={self.model_name!r}, cache={cache!r})"


def make_client(config: LLMConfig | Mapping[str, Any] | Any, **overrides: Any) -> LLMClient:
    """The backend named by `config.backend` ("openai" or "local"), built from an `LLMConfig`,
    a dict or an ml_collections ConfigDict (see `jaxmethods.llm.config.LLMConfig`).

    `overrides` replace config fields (e.g. `cache_dir=os.path.join(workdir, "llm_cache")`).
    """
    cfg = llm_config(config)
    if overrides:
        import dataclasses

        cfg = llm_config(dataclasses.replace(cfg, **overrides))
    prices = Prices(cfg.price_input_per_1m, cfg.price_output_per_1m)
    common = dict(cache_dir=cfg.cache_dir, metrics_dir=cfg.metrics_dir, prices=prices)
    if cfg.backend == "openai":
        from jaxmethods.llm.openai_backend import OpenAIClient

        return OpenAIClient(
            cfg.model,
            base_url=cfg.base_url,
            api_key_env=cfg.api_key_env,
            max_concurrency=cfg.max_concurrency,
            timeout_s=cfg.timeout_s,
            max_retries=cfg.max_retries,
            backoff_s=cfg.backoff_s,
            backoff_max_s=cfg.backoff_max_s,
            max_tokens_field=cfg.max_tokens_field,
            seed=cfg.seed,
            **common,
        )
    from jaxmethods.llm.local_backend import LocalClient

    return LocalClient.from_pretrained(
        cfg.model,
        dtype=cfg.dtype or None,
        max_batch_size=cfg.max_batch_size,
        seed=cfg.seed,
        **common,
    )
