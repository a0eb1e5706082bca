"""OpenAI-compatible HTTP backend (OpenAI, vLLM, `jaxmethods.serve`, ...) through `openai`.

Requests run on a thread pool of `max_concurrency` workers sharing one `openai.OpenAI` client
(its httpx pool is thread-safe). The package's own retries are off: each request is retried
here on 429, 408, 409, 5xx, connection errors, timeouts and malformed responses (bad JSON, no
choices), waiting `min(backoff_max_s, backoff_s * 2**attempt) * U(0.5, 1)` or the server's
`Retry-After` when longer. Other 4xx fail at once. After the last attempt the error names the
request (`LLMRequestError`: index, key, preview).

The API key is read from the environment variable named in the config and handed to `openai`;
it is never stored on this object, logged, put in a repr or written to a file.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import threading
import time
from typing import Any

from jaxmethods.llm.accounting import NO_PRICES, Prices
from jaxmethods.llm.client import Item, LLMClient
from jaxmethods.llm.types import Completion, LLMRequestError, Request

RETRY_STATUS = frozenset({408, 409, 429})


class MalformedResponse(ValueError):
    """A 200 answer without the fields of a chat completion."""


def backoff_delay(
    attempt: int, base: float, cap: float, rng: random.Random, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry `attempt` (0 = the first retry): exponential with jitter
    in [0.5, 1] of `min(cap, base * 2**attempt)`, or `retry_after` when that is longer (capped)."""
    delay = min(cap, base * 2.0**attempt) * (0.5 + 0.5 * rng.random())
    if retry_after is not None:
        delay = max(delay, min(cap, retry_after))
    return delay


def _retry_after(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    value = None if response is None else response.headers.get("retry-after")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date; the exponential backoff applies


def _is_retryable(error: Exception) -> bool:
    import openai

    if isinstance(error, (openai.APIConnectionError, MalformedResponse, ValueError)):
        return True  # ValueError: json.JSONDecodeError of a garbled body
    if isinstance(error, openai.APIResponseValidationError):
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code in RETRY_STATUS or error.status_code >= 500
    return False


def _describe(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    text = " ".join(str(error).split())[:200]
    return f"{type(error).__name__}{f' (HTTP {status})' if status else ''}: {text}"


class OpenAIClient(LLMClient):
    """`complete(requests)` against an OpenAI-compatible `/v1/chat/completions`.

    Args:
      model: the model name the endpoint serves.
      base_url: e.g. "http://127.0.0.1:8000/v1" ("" = api.openai.com).
      api_key_env: the environment variable holding the key ("" = none; sends "EMPTY").
      max_concurrency: requests in flight at once.
      timeout_s: per-attempt timeout.
      max_retries: retries after the first attempt.
      backoff_s, backoff_max_s: first backoff and its cap (seconds).
      max_tokens_field: "max_tokens" or "max_completion_tokens".
      seed: seed of the backoff jitter.
      cache_dir, metrics_dir, prices: see `LLMClient`.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "",
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        backoff_max_s: float = 60.0,
        max_tokens_field: str = "max_tokens",
        seed: int = 0,
        cache_dir: str = "",
        metrics_dir: str = "",
        prices: Prices = NO_PRICES,
    ):
        import openai

        super().__init__(
            {"model": model}, cache_dir=cache_dir, metrics_dir=metrics_dir, prices=prices
        )
        if api_key_env and not os.environ.get(api_key_env):
            raise ValueError(
                f"OpenAIClient: environment variable {api_key_env!r} (config field "
                "api_key_env) is not set or empty; export the API key there, or set "
                "api_key_env='' for a server without keys"
            )
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.max_tokens_field = max_tokens_field
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._client = openai.OpenAI(
            api_key=os.environ[api_key_env] if api_key_env else "EMPTY",
            base_url=base_url or None,
            timeout=timeout_s,
            max_retries=0,
        )

    def __repr__(self) -> str:
        cache = self.cache.path if self.cache is not None else None
        return (
            f"OpenAIClient(model={self.model_name!r}, base_url={self.base_url!r}, "
            f"api_key_env={self.api_key_env!r}, cache={cache!r})"
        )

    def close(self) -> None:
        super().close()
        self._client.close()

    def _complete_missing(self, items: list[Item]) -> list[Completion | LLMRequestError]:
        if len(items) == 1:
            return [self._complete_one(*items[0])]
        workers = min(self.max_concurrency, len(items))
        with concurrent.futures.ThreadPoolExecutor(workers, "llm-request") as pool:
            return list(pool.map(lambda item: self._complete_one(*item), items))

    def _body(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": [dict(m) for m in request.messages],
            self.max_tokens_field: request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "n": 1,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if request.ignore_eos:
            body["extra_body"] = {"ignore_eos": True}
        return body

    def _complete_one(self, index: int, request: Request, key: str) -> Completion | LLMRequestError:
        body = self._body(request)
        start = time.perf_counter()
        attempts = 0
        while True:
            attempts += 1
            try:
                response = self._client.chat.completions.create(**body)
                return self._parse(response, key, attempts, time.perf_counter() - start)
            except Exception as e:  # classified below; anything unexpected fails the request
                if not _is_retryable(e) or attempts > self.max_retries:
                    return LLMRequestError(index, request, key, attempts, _describe(e))
                with self._rng_lock:
                    delay = backoff_delay(
                        attempts - 1, self.backoff_s, self.backoff_max_s, self._rng,
                        _retry_after(e),
                    )  # fmt: skip
                time.sleep(delay)

    def _parse(self, response: Any, key: str, attempts: int, latency: float) -> Completion:
        try:
            choice = response.choices[0]
            text = choice.message.content
            finish = choice.finish_reason
            usage = response.usage
            prompt, completion = int(usage.prompt_tokens), int(usage.completion_tokens)
        except (AttributeError, IndexError, TypeError, ValueError) as e:
            raise MalformedResponse(f"not a chat completion ({type(e).__name__}: {e})") from e
        if not isinstance(text, str) or not isinstance(finish, str):
            raise MalformedResponse(
                f"choice without text or finish_reason: content={text!r}, finish={finish!r}"
            )
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt,
            completion_tokens=completion,
            model=str(getattr(response, "model", "") or self.model_name),
            key=key,
            attempts=attempts,
            latency_s=latency,
        )
