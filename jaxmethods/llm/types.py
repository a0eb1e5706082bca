"""Requests, completions and the request-failure error shared by every LLM backend.

A `Request` is chat messages plus sampling settings; a `Completion` is one choice with its token
counts. `request_key` is the cache key: a SHA-256 of the canonical JSON of the request and the
backend's identity (model name), never of the endpoint or the API key.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

ROLES = ("system", "user", "assistant", "developer", "tool")
FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls", "function_call")


@dataclasses.dataclass(frozen=True)
class Request:
    """One chat request.

    Attributes:
      messages: `({"role": ..., "content": str}, ...)` in order (roles from `ROLES`). A content
        may also be OpenAI's list of parts, `[{"type": "text", "text": ...}, {"type":
        "image_url", "image_url": {"url": "data:image/png;base64,..."}}]`, for multimodal
        endpoints (`image_part` builds an image part); backends without image input reject it.
      max_tokens: most new tokens (> 0).
      temperature: 0 = greedy (the default: deterministic, so caching it is exact); > 0 samples.
      top_p: nucleus mass in (0, 1].
      seed: sampling seed (None: the backend's choice). The local engine makes a seeded row's
        tokens independent of the other rows in its batch.
      stop: strings that end the completion (not included in the text).
      ignore_eos: keep generating past EOS up to `max_tokens` (a vLLM extension; local backend
        and benchmarks only).
    """

    messages: tuple[Mapping[str, Any], ...]
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False

    def __post_init__(self):
        msgs = tuple(_check_message(m, i) for i, m in enumerate(self.messages))
        if not msgs:
            raise ValueError("Request.messages is empty")
        object.__setattr__(self, "messages", msgs)
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        if any(not isinstance(s, str) or not s for s in stop):
            raise ValueError(f"Request.stop must hold non-empty strings, got {stop!r}")
        object.__setattr__(self, "stop", stop)
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise ValueError(f"Request.max_tokens must be an int, got {self.max_tokens!r}")
        if self.max_tokens < 1:
            raise ValueError(f"Request.max_tokens must be >= 1, got {self.max_tokens}")
        if not self.temperature >= 0:
            raise ValueError(f"Request.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"Request.top_p must be in (0, 1], got {self.top_p}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValueError(f"Request.seed must be an int or None, got {self.seed!r}")

    @classmethod
    def from_prompt(cls, prompt: str, *, system: str | None = None, **settings: Any) -> Request:
        """A one-turn request: an optional system message, then `prompt` as the user message."""
        msgs = ([{"role": "system", "content": system}] if system is not None else []) + [
            {"role": "user", "content": prompt}
        ]
        return cls(messages=tuple(msgs), **settings)

    def canonical(self) -> dict[str, Any]:
        """The JSON-able content that defines the request (the cache hashes this)."""
        return {
            "messages": [dict(m) for m in self.messages],
            "max_tokens": self.max_tokens,
            "temperature": float(self.temperature),
            "top_p": float(self.top_p),
            "seed": self.seed,
            "stop": list(self.stop),
            "ignore_eos": self.ignore_eos,
        }

    def preview(self, chars: int = 60) -> str:
        """The last message's first `chars` characters, for error messages."""
        text = " ".join(content_text(self.messages[-1]["content"]).split())
        return text if len(text) <= chars else text[: chars - 3] + "..."


PART_TYPES = ("text", "image_url")


def _check_part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, Mapping) or part.get("type") not in PART_TYPES:
        raise ValueError(f"{where} must be a mapping with type in {PART_TYPES}, got {part!r:.80}")
    if part["type"] == "text":
        if not isinstance(part.get("text"), str):
            raise ValueError(f"{where}.text must be a string")
        return {"type": "text", "text": part["text"]}
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else None
    if not isinstance(url, str) or not url:
        raise ValueError(f"{where}.image_url.url must be a non-empty string")
    return {"type": "image_url", "image_url": {k: image[k] for k in sorted(image)}}


def _check_message(message: Any, index: int) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise ValueError(f"Request.messages[{index}] must be a mapping, got {type(message)}")
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise ValueError(f"Request.messages[{index}].role={role!r} is not one of {ROLES}")
    if isinstance(content, (list, tuple)) and content:
        where = f"Request.messages[{index}].content"
        parts = [_check_part(p, f"{where}[{j}]") for j, p in enumerate(content)]
        return {"role": role, "content": parts}
    if not isinstance(content, str):
        raise ValueError(
            f"Request.messages[{index}].content must be a string or a non-empty list of parts, "
            f"got {type(content).__name__}"
        )
    return {"role": role, "content": content}


def content_text(content: str | Sequence[Mapping[str, Any]]) -> str:
    """The text of a message content: the string itself, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in content if p["type"] == "text")


def has_images(request: Request) -> bool:
    """True when any message carries an image part."""
    return any(
        not isinstance(m["content"], str) and any(p["type"] == "image_url" for p in m["content"])
        for m in request.messages
    )


def image_part(png: bytes, *, detail: str | None = None, mime: str = "image/png") -> dict[str, Any]:
    """An OpenAI `image_url` content part holding `png` as a base64 data URL."""
    url = f"data:{mime};base64,{base64.b64encode(png).decode('ascii')}"
    image = {"url": url} if detail is None else {"url": url, "detail": detail}
    return {"type": "image_url", "image_url": image}


def as_request(request: Request | Mapping[str, Any] | str) -> Request:
    """A `Request`, a mapping of its fields (`{"messages": [...], "max_tokens": 8}`) or a plain
    string (one user message with default settings) -> `Request`."""
    if isinstance(request, Request):
        return request
    if isinstance(request, str):
        return Request.from_prompt(request)
    if isinstance(request, Mapping):
        fields = {f.name for f in dataclasses.fields(Request)}
        unknown = sorted(set(request) - fields)
        if unknown:
            raise ValueError(f"request fields {unknown} are unknown; known: {sorted(fields)}")
        return Request(**{**request, "messages": tuple(request.get("messages", ()))})
    raise TypeError(f"a request must be a Request, a mapping or a string, got {type(request)}")


def request_key(request: Request, identity: Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of `request` plus the backend `identity` (e.g.
    `{"model": "gpt-4o-mini"}`): the same request to the same model has the same key on any
    endpoint, and any setting that changes the output changes the key."""
    payload = {"request": request.canonical(), "backend": dict(identity)}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class Completion:
    """One completion.

    Attributes:
      text: the generated text (stop string excluded).
      finish_reason: "stop" (EOS or a stop string), "length" (max_tokens) or what the server
        sent ("content_filter", ...).
      prompt_tokens, completion_tokens: token counts as reported by the backend.
      cached: True when read from the on-disk cache (no call was made, no cost).
      model: the model that answered.
      key: the request's cache key (`request_key`).
      attempts: HTTP attempts it took (1 = no retry; 0 when cached or local).
      latency_s: seconds from the first attempt to the answer (0 when cached).
    """

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False
    model: str = ""
    key: str = ""
    attempts: int = 0
    latency_s: float = 0.0

    def to_record(self) -> dict[str, Any]:
        """The cache record (no `cached`, `attempts` or `latency_s`: those describe one call)."""
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "model": self.model,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], key: str) -> Completion:
        return cls(
            text=str(record["text"]),
            finish_reason=str(record["finish_reason"]),
            prompt_tokens=int(record["prompt_tokens"]),
            completion_tokens=int(record["completion_tokens"]),
            model=str(record.get("model", "")),
            cached=True,
            key=key,
        )


class LLMRequestError(RuntimeError):
    """A request that failed for good (after the last retry, or a non-retryable error).

    Attributes: index (position in the `complete` call), key (cache key), preview (start of the
    last message), attempts, cause (the last exception).
    """

    def __init__(self, index: int, request: Request, key: str, attempts: int, cause: Any):
        self.index, self.key, self.attempts, self.cause = index, key, attempts, cause
        self.preview = request.preview()
        super().__init__(
            f"LLM request #{index} (key {key[:12]}, last message {self.preview!r}) failed after "
            f"{attempts} attempt{'s' if attempts != 1 else ''}: {cause}"
        )
