"""An OpenAI-compatible server over jaxmethods' batched generation.

    python -m jaxmethods.serve --model PATH_OR_ID --port 8000 [--max-batch-size 32 --max-wait-ms 10]

Endpoints: `/v1/chat/completions`, `/v1/completions`, `/v1/models` (OpenAI schemas, usage
counts included), `/health`, `/stats`. See docs/llm.md.
"""

from jaxmethods._exports import lazy_exports

_EXPORTS = {
    "create_app": "app",
    "Batcher": "batcher",
    "build_server": "cli",
    "main": "cli",
    "parse_args": "cli",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
