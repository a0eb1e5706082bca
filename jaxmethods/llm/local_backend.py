"""In-process backend: the requests go through a `GenerationEngine` on this machine's devices.

    client = LocalClient.from_pretrained("runs/sft/export", cache_dir="runs/cache/local")
    client.complete([Request.from_prompt("Summarize: ...", max_tokens=64)])

The chat template of the checkpoint's tokenizer is applied; every uncached request of one
`complete` call is generated in as few jitted calls as the batch size allows. Token counts are
exact; the cost is whatever the config's prices say (0 by default).
"""

from __future__ import annotations

import time
from typing import Any

from jaxmethods.llm.accounting import NO_PRICES, Prices
from jaxmethods.llm.batching import EngineRequest
from jaxmethods.llm.client import Item, LLMClient
from jaxmethods.llm.engine import GenerationEngine
from jaxmethods.llm.types import Completion, LLMRequestError, Request, content_text, has_images


def engine_request(engine: GenerationEngine, request: Request) -> EngineRequest:
    """A chat `Request` tokenised with the engine's chat template (text parts joined; the local
    decoders have no image input, so a request with an image part is refused)."""
    if has_images(request):
        raise ValueError(
            "the local backend's decoder has no image input; send image parts to a multimodal "
            "OpenAI-compatible endpoint (llm.backend='openai') or describe the image in text"
        )
    messages = [
        {"role": m["role"], "content": content_text(m["content"])} for m in request.messages
    ]
    return EngineRequest(
        prompt_ids=tuple(engine.encode_chat(messages)),
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        seed=request.seed,
        stop=request.stop,
        ignore_eos=request.ignore_eos,
    )


class LocalClient(LLMClient):
    """`complete(requests)` with jaxmethods' own batched generation.

    Args:
      engine: the shared `GenerationEngine` (also what `jaxmethods.serve` runs).
      cache_dir, metrics_dir, prices: see `LLMClient`.
    """

    def __init__(
        self,
        engine: GenerationEngine,
        *,
        cache_dir: str = "",
        metrics_dir: str = "",
        prices: Prices = NO_PRICES,
    ):
        super().__init__(
            {"backend": "local", "model": engine.name},
            cache_dir=cache_dir,
            metrics_dir=metrics_dir,
            prices=prices,
        )
        self.engine = engine

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str,
        *,
        dtype: Any = None,
        max_batch_size: int = 32,
        seed: int = 0,
        cache_dir: str = "",
        metrics_dir: str = "",
        prices: Prices = NO_PRICES,
    ) -> LocalClient:
        engine = GenerationEngine.from_pretrained(
            path_or_id, dtype=dtype, max_batch_size=max_batch_size, seed=seed
        )
        return cls(engine, cache_dir=cache_dir, metrics_dir=metrics_dir, prices=prices)

    def _complete_missing(self, items: list[Item]) -> list[Completion | LLMRequestError]:
        results: list[Completion | LLMRequestError | None] = [None] * len(items)
        runnable: list[tuple[int, EngineRequest]] = []
        for pos, (index, request, key) in enumerate(items):
            try:
                er = engine_request(self.engine, request)
                self.engine.check(er)
            except ValueError as e:
                results[pos] = LLMRequestError(index, request, key, 0, e)
                continue
            runnable.append((pos, er))
        start = time.perf_counter()
        outs = self.engine.generate([er for _, er in runnable]) if runnable else []
        seconds = time.perf_counter() - start
        for (pos, _), out in zip(runnable, outs):
            results[pos] = Completion(
                text=out.text,
                finish_reason=out.finish_reason,
                prompt_tokens=out.prompt_tokens,
                completion_tokens=out.completion_tokens,
                model=self.engine.name,
                key=items[pos][2],
                attempts=1,
                latency_s=seconds,
            )
        return results  # type: ignore[return-value]
