"""OpenAI request bodies (pydantic) and response payloads of `jaxmethods.serve`.

Fields this server cannot honour are rejected with a 400 naming them when set to anything but
their neutral value (tools, logit_bias, penalties, logprobs, echo, ...); unknown extra fields
are ignored, as OpenAI-compatible servers do.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class APIError(Exception):
    """An error answered as OpenAI's `{"error": {message, type, param, code}}`."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def payload(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {
            "error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        }


# The values of unsupported settings that mean "off" (anything else is a 400).
NEUTRAL: dict[str, tuple] = {
    "presence_penalty": (0.0, 0),
    "frequency_penalty": (0.0, 0),
    "logit_bias": (None, {}),
    "logprobs": (None, False, 0),
    "best_of": (None, 1),
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "top_logprobs": (None, 0),
    "echo": (False,),
    "suffix": (None, ""),
}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class _Sampling(BaseModel):
    """Settings shared by chat and text completions (OpenAI defaults)."""

    model_config = ConfigDict(extra="allow")
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=64)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False  # vLLM extension
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    logprobs: Any = None
    best_of: int | None = None

    def stop_strings(self) -> tuple[str, ...]:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if any(not s for s in stop):
            raise APIError(400, "stop strings must be non-empty", param="stop")
        return tuple(stop)

    def reject_unsupported(self, names: tuple[str, ...]) -> None:
        """400 for settings this server cannot honour (never silently ignored)."""
        for name in ("presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "best_of",
                     *names):  # fmt: skip
            got = getattr(self, name, None)
            if not any(got == v and type(got) is type(v) for v in NEUTRAL[name]):
                raise APIError(400, f"{name}={got!r} is not supported by jaxmethods.serve", name)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[Any] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    top_logprobs: int | None = None

    def check(self) -> None:
        self.reject_unsupported(("tools", "tool_choice", "top_logprobs"))
        if self.response_format not in (None, {"type": "text"}):
            raise APIError(
                400, f"response_format={self.response_format!r} is not supported", "response_format"
            )

    def plain_messages(self) -> list[dict[str, str]]:
        """Messages with text content (content parts of type "text" are joined)."""
        out = []
        for i, m in enumerate(self.messages):
            content = m.content
            if isinstance(content, list):
                parts = []
                for part in content:
                    if part.get("type") != "text":
                        raise APIError(
                            400, f"messages[{i}]: content part {part.get('type')!r} is not "
                            "supported (text only)", f"messages[{i}].content",
                        )  # fmt: skip
                    parts.append(str(part.get("text", "")))
                content = "".join(parts)
            out.append({"role": m.role, "content": content or ""})
        if not out:
            raise APIError(400, "messages is empty", "messages")
        return out


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    suffix: str | None = None

    def check(self) -> None:
        self.reject_unsupported(("echo", "suffix"))


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_response(model: str, choices: list[dict], prompt_tokens: int, completion: int) -> dict:
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(prompt_tokens, completion),
    }


def text_response(model: str, choices: list[dict], prompt_tokens: int, completion: int) -> dict:
    return {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(prompt_tokens, completion),
    }
