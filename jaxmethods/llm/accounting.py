"""Token and cost accounting: one summary per `complete` call, running totals, `metrics.jsonl`.

Cost = prompt_tokens * price_input_per_1m / 1e6 + completion_tokens * price_output_per_1m / 1e6,
counted for answered (not cached) requests only: a cached completion cost nothing this time.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any

from jaxmethods.llm.types import Completion


@dataclasses.dataclass(frozen=True)
class Prices:
    """USD per 1M prompt (input) and completion (output) tokens."""

    input_per_1m: float = 0.0
    output_per_1m: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1e6


NO_PRICES = Prices()


@dataclasses.dataclass
class Usage:
    """Counts of one `complete` call (or running totals).

    requests: completions returned; cache_hits: of those, read from the cache; calls: backend
    attempts made (HTTP requests, or rows generated locally); retries: attempts beyond the
    first; failures: requests that failed for good; prompt_tokens / completion_tokens / cost_usd:
    of the answered (uncached) requests; seconds: wall time of the call.
    """

    requests: int = 0
    cache_hits: int = 0
    calls: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0

    def add(self, other: Usage) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_metrics(self, prefix: str = "llm/") -> dict[str, Any]:
        return {prefix + k: v for k, v in dataclasses.asdict(self).items()}


def summarize(
    completions: Sequence[Completion], prices: Prices, *, failures: int, seconds: float
) -> Usage:
    """The `Usage` of one call from its completions (cached ones add to `cache_hits` only)."""
    fresh = [c for c in completions if not c.cached]
    prompt = sum(c.prompt_tokens for c in fresh)
    completion = sum(c.completion_tokens for c in fresh)
    calls = sum(max(c.attempts, 1) for c in fresh)
    return Usage(
        requests=len(completions),
        cache_hits=len(completions) - len(fresh),
        calls=calls,
        retries=sum(max(c.attempts - 1, 0) for c in fresh),
        failures=failures,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_usd=prices.cost(prompt, completion),
        seconds=seconds,
    )


class UsageLog:
    """Running totals plus an optional `MetricWriter`: `record(usage, step)` writes
    `{"step": s, "llm/requests": ..., ..., "llm/total_cost_usd": ...}` to `metrics.jsonl`."""

    def __init__(self, metrics_dir: str = ""):
        self.total = Usage()
        self._lock = threading.Lock()
        self._writer = None
        self._calls = 0
        if metrics_dir:
            from jaxmethods.train.metrics import MetricWriter

            self._writer = MetricWriter(metrics_dir)

    @property
    def path(self) -> str | None:
        return None if self._writer is None else self._writer.path

    def record(self, usage: Usage, step: int | None = None) -> None:
        with self._lock:
            self.total.add(usage)
            step = self._calls if step is None else step
            self._calls += 1
            if self._writer is not None:
                row = usage.as_metrics()
                row["llm/total_cost_usd"] = self.total.cost_usd
                row["llm/total_requests"] = self.total.requests
                self._writer.write(step, row)
