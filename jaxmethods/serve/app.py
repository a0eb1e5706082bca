"""The FastAPI app: OpenAI's `/v1/chat/completions`, `/v1/completions` and `/v1/models`, plus
`/health` and `/stats` (batch sizes and compiled shapes), over one `GenerationEngine`.

Every request's prompt(s) become `EngineRequest`s (n > 1 gives n rows, seeds seed, seed+1, ...)
that the `Batcher` merges with other clients' rows into one jitted call. `stream=true` is
answered in OpenAI's SSE chunk format once the completion is done (one content chunk, then the
finish chunk, the usage chunk when asked, and `[DONE]`); tokens are not streamed one by one.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from jaxmethods.llm.batching import EngineRequest, EngineResult
from jaxmethods.llm.engine import GenerationEngine
from jaxmethods.serve.batcher import Batcher
from jaxmethods.serve.schemas import (
    APIError,
    ChatCompletionRequest,
    CompletionRequest,
    chat_response,
    text_response,
)


def create_app(
    engine: GenerationEngine,
    *,
    max_batch_size: int | None = None,
    max_wait_ms: float = 10.0,
    default_max_tokens: int = 256,
) -> FastAPI:
    """The server for `engine`; the model is addressed by `engine.name`.

    Args:
      engine: the generation engine (model + tokenizer).
      max_batch_size: items per generation call (default: the engine's).
      max_wait_ms: how long the first queued request waits for others to join its batch.
      default_max_tokens: max_tokens of a request that sets none.
    """
    batcher = Batcher(
        engine.generate,
        max_batch_size=min(max_batch_size or engine.max_batch_size, engine.max_batch_size),
        max_wait_s=max_wait_ms / 1000.0,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="jaxmethods.serve", lifespan=lifespan)
    app.state.engine, app.state.batcher = engine, batcher
    created = int(time.time())

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(exc.payload(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        msg = f"{where}: {first.get('msg', 'invalid request')}" if where else str(exc)
        return JSONResponse(APIError(400, msg, where or None).payload(), status_code=400)

    def check_model(name: str) -> None:
        if name != engine.name:
            raise APIError(
                404, f"model {name!r} is not served here; this server has {engine.name!r}",
                "model", "model_not_found",
            )  # fmt: skip

    def rows(body, prompt_ids: list[int]) -> list[EngineRequest]:
        max_tokens = getattr(body, "max_completion_tokens", None) or body.max_tokens
        out = [
            EngineRequest(
                prompt_ids=tuple(prompt_ids),
                max_tokens=max_tokens or default_max_tokens,
                temperature=body.temperature,
                top_p=body.top_p,
                seed=None if body.seed is None else body.seed + i,
                stop=body.stop_strings(),
                ignore_eos=body.ignore_eos,
            )
            for i in range(body.n)
        ]
        try:
            engine.check(out[0])
        except ValueError as e:
            where = "messages" if hasattr(body, "messages") else "prompt"
            raise APIError(400, str(e), where) from None
        return out

    @app.get("/v1/models")
    async def models():
        card = {"id": engine.name, "object": "model", "created": created, "owned_by": "jaxmethods"}
        return {"object": "list", "data": [card]}

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/stats")
    async def stats():
        return {
            "model": engine.name,
            "batch_sizes": list(batcher.batch_sizes),
            "programs": sorted(list(p) for p in engine.programs),
            "max_batch_size": batcher.max_batch_size,
            "max_wait_ms": batcher.max_wait_s * 1000.0,
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest):
        check_model(body.model)
        body.check()
        try:
            prompt = engine.encode_chat(body.plain_messages())
        except APIError:
            raise
        except Exception as e:  # a template that rejects the roles or order
            raise APIError(
                400, f"the chat template rejected the messages: {e}", "messages"
            ) from None
        results = await batcher.submit(rows(body, prompt))
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": r.text},
                "finish_reason": r.finish_reason,
                "logprobs": None,
            }
            for i, r in enumerate(results)
        ]
        payload = chat_response(engine.name, choices, len(prompt), _completion_tokens(results))
        if body.stream:
            return _stream(payload, chat=True, include_usage=_include_usage(body))
        return payload

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        check_model(body.model)
        body.check()
        prompts = _prompt_ids(engine, body.prompt)
        batches = [rows(body, p) for p in prompts]
        flat = await batcher.submit([r for batch in batches for r in batch])
        choices = [
            {"index": i, "text": r.text, "finish_reason": r.finish_reason, "logprobs": None}
            for i, r in enumerate(flat)
        ]
        prompt_tokens = sum(len(p) for p in prompts) * body.n
        payload = text_response(engine.name, choices, prompt_tokens, _completion_tokens(flat))
        if body.stream:
            return _stream(payload, chat=False, include_usage=_include_usage(body))
        return payload

    return app


def _completion_tokens(results: list[EngineResult]) -> int:
    return sum(r.completion_tokens for r in results)


def _include_usage(body) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)


def _prompt_ids(engine: GenerationEngine, prompt) -> list[list[int]]:
    """str | [str] | [int] | [[int]] -> token id lists (text gets the tokenizer's BOS)."""
    if isinstance(prompt, str):
        return [engine.encode_text(prompt)]
    if prompt and all(isinstance(p, int) for p in prompt):
        return [list(prompt)]
    if not prompt:
        raise APIError(400, "prompt is empty", "prompt")
    return [engine.encode_text(p) if isinstance(p, str) else list(p) for p in prompt]


def _stream(payload: dict, *, chat: bool, include_usage: bool) -> StreamingResponse:
    """The finished completion as OpenAI SSE chunks."""
    base = {k: payload[k] for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk" if chat else "text_completion"

    def chunk(choices: list[dict], **extra) -> str:
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n"

    async def events() -> AsyncIterator[str]:
        for c in payload["choices"]:
            i = c["index"]
            if chat:
                delta = {"role": "assistant", "content": c["message"]["content"]}
                yield chunk([{"index": i, "delta": delta, "finish_reason": None}])
                yield chunk([{"index": i, "delta": {}, "finish_reason": c["finish_reason"]}])
            else:
                yield chunk([{"index": i, "text": c["text"], "finish_reason": c["finish_reason"]}])
        if include_usage:
            yield chunk([], usage=payload["usage"])
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
