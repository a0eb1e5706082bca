"""Helpers of the LLM and server tests: a tiny chat checkpoint on disk, and a real scripted
HTTP server that plays an unreliable OpenAI endpoint (tests/serve imports this module too)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.hf import save_pretrained
from jaxmethods.models.decoder import DecoderConfig, DecoderLM

CORPUS = [
    "the judge reads the reply and gives a score from one to five",
    "a kind reply names the feeling and offers help",
    "Score: 4. The reply is warm, clear and specific.",
    "user asks about a movie; the assistant recommends three films",
] * 4


def make_tiny_checkpoint(folder: str) -> str:
    """A random 2-layer decoder (hidden 32) + the tiny chat tokenizer, saved as an HF folder."""
    tok = build_tiny_tokenizer(CORPUS, vocab_size=160)
    config = DecoderConfig.tiny(
        vocab_size=len(tok), initializer_range=0.2, scan_layers=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    # Weights drawn with NumPy into the abstract model: eager NNX init would compile dozens of
    # small ops (seconds on a busy 2-core machine).
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: DecoderLM(config, rngs=nnx.Rngs(0))))
    rng = np.random.default_rng(0)

    def draw(path, leaf):
        if "norm" in jax.tree_util.keystr(path):
            return jnp.ones(leaf.shape, leaf.dtype)
        return jnp.asarray(rng.normal(0.0, 0.2, leaf.shape).astype(leaf.dtype))

    model = nnx.merge(graphdef, jax.tree_util.tree_map_with_path(draw, abstract))
    save_pretrained(model, folder, tokenizer=tok)
    return folder


def chat_completion_json(text: str, model: str = "fake-model") -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        }
    ).encode()


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 whose behaviour is chosen by the first path segment:

      /ok/v1/...       200 with "echo: <last message>"
      /500then200/...  500 on the first hit of each distinct body, then 200
      /429/...         429 (Retry-After: 0) on the first two hits of a body, then 200
      /garbled/...     200 with broken JSON on the first hit of a body, then 200
      /slow/...        sleeps `slow_s` before answering 200 (past the client's timeout)
      /always500/...   always 500
      /400/...         always 400 (not retried)
    and on any path, a last message starting with "FAIL" always gets a 500.

    `hits[scenario]` counts requests; `times[scenario]` their arrival times; `bodies` the JSON
    bodies; `auth` the Authorization headers received.
    """

    def __init__(self, slow_s: float = 1.0):
        self.hits: dict[str, int] = {}
        self.times: dict[str, list[float]] = {}
        self.bodies: list[dict] = []
        self.auth: list[str] = []
        self._per_body: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("content-length", 0)))
                scenario = self.path.strip("/").split("/")[0]
                body = json.loads(data)
                with owner._lock:
                    owner.hits[scenario] = owner.hits.get(scenario, 0) + 1
                    owner.times.setdefault(scenario, []).append(time.monotonic())
                    owner.bodies.append(body)
                    owner.auth.append(self.headers.get("authorization", ""))
                    k = (scenario, json.dumps(body["messages"], sort_keys=True))
                    owner._per_body[k] = seen = owner._per_body.get(k, 0) + 1
                last = body["messages"][-1]["content"]
                if isinstance(last, list):  # OpenAI content parts: echo the text parts
                    last = "".join(p.get("text", "") for p in last if p.get("type") == "text")
                text = "echo: " + last
                if last.startswith("FAIL"):
                    return self._send(500, b'{"error": {"message": "this one always fails"}}')
                if scenario == "500then200" and seen == 1:
                    return self._send(500, b'{"error": {"message": "boom"}}')
                if scenario == "429" and seen <= 2:
                    return self._send(429, b'{"error": {"message": "slow down"}}', retry=True)
                if scenario == "garbled" and seen == 1:
                    return self._send(200, b'{"id": "x", "choices": [ {garbled')
                if scenario == "always500":
                    return self._send(500, b'{"error": {"message": "down"}}')
                if scenario == "400":
                    return self._send(400, b'{"error": {"message": "bad request"}}')
                if scenario == "slow":
                    time.sleep(owner.slow_s)
                return self._send(200, chat_completion_json(text, body["model"]))

            def _send(self, status: int, payload: bytes, retry: bool = False):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                if retry:
                    self.send_header("retry-after", "0")
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)  # the client may have timed out

            def log_message(self, *args):
                pass

        self.slow_s = slow_s
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, scenario: str) -> str:
        return f"http://127.0.0.1:{self.port}/{scenario}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def files_containing(folder: str, needle: str) -> list[str]:
    """Paths under `folder` whose bytes contain `needle`."""
    hits = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                if needle.encode() in f.read():
                    hits.append(path)
    return hits


# One padded shape for every engine in the tests (llm and serve): one compiled program each for
# greedy and sampled batches, shared across model instances of the same structure.
BUCKETS = dict(batch_buckets=(8,), prompt_buckets=(64,), new_token_buckets=(16,))
