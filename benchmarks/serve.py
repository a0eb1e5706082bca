"""Serving benchmark: tokens/s of `jaxmethods.serve` under 1, 8 and 32 concurrent clients,
against the in-process `GenerationEngine` on the same model and the same requests.

For one random decoder (saved with `save_pretrained` next to a tiny chat tokenizer) and
fixed-length greedy requests (`ignore_eos`, so every request generates exactly `--max-tokens`):
  1. in process: `engine.generate` on batches of 1, 8 and 32 requests (the ideal the server
     can reach at that concurrency): median seconds and completion tokens/s;
  2. served: uvicorn on 127.0.0.1 in this process; a separate client process with C threads
     (C = 1, 8, 32), each sending `--rounds` chat requests one after another through the
     `openai` client; completion tokens/s over the wall time, request latency p50/p90, and the
     batch sizes the server ran.
Every padded shape is compiled before timing (the batch buckets 1..32 of the engine).

    python benchmarks/serve.py --size tiny --out runs/bench/serve_tiny.json     # CPU
    python benchmarks/serve.py --size small --max-tokens 128 --out runs/bench/serve_small.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks.timing import environment, time_calls, write_json
from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.hf import save_pretrained
from jaxmethods.llm import EngineRequest, GenerationEngine
from jaxmethods.models.decoder import DecoderConfig, DecoderLM

SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4,
                 num_kv_heads=2, head_dim=16),
    "small": dict(hidden_size=256, intermediate_size=768, num_layers=4, num_heads=8,
                  num_kv_heads=4, head_dim=32),
}  # fmt: skip
CONCURRENCY = (1, 8, 32)
WORDS = ["the", "judge", "reads", "a", "reply", "and", "gives", "a", "score", "from", "one", "to",
         "five", "about", "a", "movie"]  # fmt: skip


def build_checkpoint(size: str, folder: str) -> None:
    """A random decoder of `size` and a tiny chat tokenizer, saved as an HF folder."""
    corpus = [" ".join(np.random.default_rng(i).permutation(WORDS)) for i in range(64)]
    tok = build_tiny_tokenizer(corpus, vocab_size=256)
    config = DecoderConfig(
        family="llama", vocab_size=len(tok), max_position_embeddings=1024,
        dtype="float32" if jax.default_backend() == "cpu" else "bfloat16", param_dtype="float32",
        scan_layers=True, eos_token_id=tok.eos_token_id, **SIZES[size],
    )  # fmt: skip
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: DecoderLM(config, rngs=nnx.Rngs(0))))
    rng = np.random.default_rng(0)
    state = jax.tree_util.tree_map_with_path(
        lambda p, x: (
            jnp.ones(x.shape, x.dtype)
            if "norm" in jax.tree_util.keystr(p)
            else jnp.asarray(rng.normal(0, 0.05, x.shape).astype(x.dtype))
        ),
        abstract,
    )
    save_pretrained(nnx.merge(graphdef, state), folder, tokenizer=tok)


def prompts(n: int) -> list[str]:
    rng = np.random.default_rng(1)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(8, 24)))) for _ in range(n)]


def bench_inprocess(engine: GenerationEngine, texts: list[str], c: int, max_tokens: int) -> dict:
    """`engine.generate` on one batch of c requests: median seconds and completion tokens/s."""
    reqs = [
        EngineRequest(tuple(engine.encode_chat([{"role": "user", "content": t}])),
                      max_tokens=max_tokens, ignore_eos=True)
        for t in texts[:c]
    ]  # fmt: skip
    stats = time_calls(lambda: engine.generate(reqs), warmup=1, iters=3)
    return {"median_s": stats["median_s"], "tokens_per_s": c * max_tokens / stats["median_s"]}


def run_clients(base_url: str, concurrency: int, rounds: int, max_tokens: int) -> dict:
    """C client threads, each sending `rounds` chat requests one after another (runs in its own
    process, so the clients do not share the server's interpreter lock)."""
    import openai

    texts = prompts(max(CONCURRENCY) * rounds)
    clients = [openai.OpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=600)
               for _ in range(concurrency)]  # fmt: skip
    latencies: list[float] = []
    tokens = [0] * concurrency
    barrier = threading.Barrier(concurrency + 1)

    def worker(i: int) -> None:
        barrier.wait()
        for r in range(rounds):
            t0 = time.perf_counter()
            resp = clients[i].chat.completions.create(
                model="bench", max_tokens=max_tokens, temperature=0.0,
                messages=[{"role": "user", "content": texts[(i + r * concurrency) % len(texts)]}],
                extra_body={"ignore_eos": True},
            )  # fmt: skip
            latencies.append(time.perf_counter() - t0)
            tokens[i] += resp.usage.completion_tokens

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "requests": concurrency * rounds,
        "tokens_per_s": sum(tokens) / wall,
        "latency_p50_s": statistics.median(latencies),
        "latency_p90_s": float(np.percentile(latencies, 90)),
    }


def bench_server(base: str, c: int, args) -> dict:
    """One client process with c threads against the running server."""
    import httpx

    before = len(httpx.get(f"{base}/stats").json()["batch_sizes"])
    cmd = [sys.executable, os.path.abspath(__file__), "--client-of", f"{base}/v1",
           "--concurrency", str(c), "--rounds", str(args.rounds),
           "--max-tokens", str(args.max_tokens)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    sizes = httpx.get(f"{base}/stats").json()["batch_sizes"][before:]
    out.update(mean_batch_size=float(np.mean(sizes)), batches=len(sizes))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4, help="requests per client")
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--out", default="runs/bench/serve.json")
    parser.add_argument("--client-of", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_of:  # the load-generator process
        print(json.dumps(run_clients(args.client_of, args.concurrency, args.rounds,
                                     args.max_tokens)))  # fmt: skip
        return

    from jaxmethods.serve import build_server, parse_args

    folder = tempfile.mkdtemp(prefix="serve_bench_")
    build_checkpoint(args.size, folder)
    engine = GenerationEngine.from_pretrained(
        folder, name="bench", max_batch_size=max(CONCURRENCY),
        new_token_buckets=(args.max_tokens,), prompt_buckets=(64,),
    )  # fmt: skip
    texts = prompts(max(CONCURRENCY) * args.rounds)
    start = time.perf_counter()
    for b in engine.batch_buckets:  # compile every padded shape the server may run
        warm = [EngineRequest((1, 5, 7), max_tokens=args.max_tokens, ignore_eos=True)] * b
        engine.generate(warm)
    compile_s = time.perf_counter() - start

    server_args = parse_args(
        ["--model", folder, "--served-model-name", "bench", "--port", "0", "--max-batch-size",
         str(max(CONCURRENCY)), "--max-wait-ms", str(args.max_wait_ms), "--log-level", "warning"]
    )  # fmt: skip
    server = build_server(server_args, engine=engine)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    inprocess, served = {}, {}
    for c in CONCURRENCY:  # interleaved, so both see the same machine load
        inprocess[str(c)] = bench_inprocess(engine, texts, c, args.max_tokens)
        served[str(c)] = bench_server(base, c, args)
    server.should_exit = True
    thread.join(timeout=30)

    result = {
        "environment": environment(),
        "size": args.size,
        "model": SIZES[args.size],
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "max_wait_ms": args.max_wait_ms,
        "compile_s": compile_s,
        "loadavg_1m_end": os.getloadavg()[0],  # the CPU benchmark machine may be shared
        "programs": sorted(list(p) for p in engine.programs),
        "inprocess": inprocess,
        "server": served,
        "server_over_inprocess": {
            c: served[c]["tokens_per_s"] / inprocess[c]["tokens_per_s"] for c in served
        },
    }
    write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("inprocess", "server", "server_over_inprocess")},
                     indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
