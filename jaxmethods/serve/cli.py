"""Command line of `python -m jaxmethods.serve`: load the model, build the app, run uvicorn.

uvicorn handles SIGINT/SIGTERM gracefully: it stops accepting connections, lets in-flight
requests finish, then runs the app's shutdown (the batcher drains its queue) and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Sequence

log = logging.getLogger("jaxmethods.serve")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m jaxmethods.serve",
        description="OpenAI-compatible server (chat/completions, completions, models) over "
        "jaxmethods' batched KV-cache generation.",
    )
    p.add_argument("--model", required=True, help="checkpoint folder or Hugging Face hub id")
    p.add_argument(
        "--served-model-name",
        default=None,
        help="the name clients send as `model` (default: --model as given)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--dtype", default=None, help="compute dtype (default: fp32 on CPU, bf16 else)")
    p.add_argument(
        "--max-batch-size", type=int, default=32, help="most rows per jitted generation call"
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=10.0,
        help="how long a request waits for others to join its batch",
    )
    p.add_argument(
        "--default-max-tokens", type=int, default=256, help="max_tokens of a request that sets none"
    )
    p.add_argument(
        "--chat-template", default=None, help="a Jinja file replacing the tokenizer's chat template"
    )
    p.add_argument(
        "--mesh",
        default=None,
        help="split batches over devices, e.g. 'data=-1' (default: one device)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of unseeded sampled requests")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    for name in ("max_batch_size", "default_max_tokens"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_wait_ms < 0:
        p.error("--max-wait-ms must be >= 0")
    return args


def _mesh(spec: str | None):
    if not spec:
        return None
    from jaxmethods.train.mesh import make_mesh

    try:
        dims = {k.strip(): int(v) for k, v in (part.split("=") for part in spec.split(","))}
    except ValueError:
        raise SystemExit(
            f"--mesh {spec!r}: expected axis=size pairs like 'data=-1,tensor=1'"
        ) from None
    return make_mesh(dims)


def build_server(args: argparse.Namespace, engine=None):
    """The `uvicorn.Server` for `args` (the engine is loaded from `--model` unless given)."""
    import uvicorn

    from jaxmethods.llm.engine import GenerationEngine
    from jaxmethods.serve.app import create_app

    if engine is None:
        template = None
        if args.chat_template:
            with open(args.chat_template) as f:
                template = f.read()
        engine = GenerationEngine.from_pretrained(
            args.model,
            dtype=args.dtype,
            name=args.served_model_name or args.model,
            mesh=_mesh(args.mesh),
            chat_template=template,
            max_batch_size=args.max_batch_size,
            seed=args.seed,
        )
    app = create_app(
        engine,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        default_max_tokens=args.default_max_tokens,
    )
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level)
    return uvicorn.Server(config)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    if not os.path.isdir(os.path.expanduser(args.model)):
        log.info("%s is not a local folder: fetching it from the Hugging Face hub", args.model)
    server = build_server(args)
    log.info("serving %s on http://%s:%d/v1", args.model, args.host, args.port)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal under the
    # handler that was installed before it started; make that a clean exit (0), not a kill.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    server.run()
    log.info("shut down cleanly")
    return 0
