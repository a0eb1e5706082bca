"""A backend that answers with a Python function: rule-based judges and mock teachers in tests
and demos, with the same cache and accounting as the real backends.

    judge = FunctionClient(lambda req: "Score: 4", model="rule-judge")
"""

from __future__ import annotations

from collections.abc import Callable

from jaxmethods.llm.accounting import NO_PRICES, Prices
from jaxmethods.llm.client import Item, LLMClient
from jaxmethods.llm.types import Completion, LLMRequestError, Request, content_text


class FunctionClient(LLMClient):
    """`complete(requests)` by `fn(request) -> str`; token counts are whitespace word counts.

    An exception from `fn` fails that request (`LLMRequestError` naming it).
    """

    def __init__(
        self,
        fn: Callable[[Request], str],
        *,
        model: str = "function",
        cache_dir: str = "",
        metrics_dir: str = "",
        prices: Prices = NO_PRICES,
    ):
        super().__init__(
            {"backend": "function", "model": model},
            cache_dir=cache_dir,
            metrics_dir=metrics_dir,
            prices=prices,
        )
        self.fn = fn

    def _complete_missing(self, items: list[Item]) -> list[Completion | LLMRequestError]:
        out: list[Completion | LLMRequestError] = []
        for index, request, key in items:
            try:
                text = self.fn(request)
                if not isinstance(text, str):
                    raise TypeError(f"the function returned {type(text).__name__}, not str")
            except Exception as e:  # the user's function: any failure fails this request
                out.append(LLMRequestError(index, request, key, 1, f"{type(e).__name__}: {e}"))
                continue
            prompt = sum(len(content_text(m["content"]).split()) for m in request.messages)
            out.append(
                Completion(text, "stop", prompt, len(text.split()), model=self.model_name,
                           key=key, attempts=1)
            )  # fmt: skip
        return out
