"""Decoder LM benchmark: SFT train step and generation, JAX against PyTorch transformers.

For one decoder config and one random batch, in the same process:
  1. our supervised fine-tuning step (token-mean CE, AdamW, `jaxmethods.train.step`, jitted over
     a mesh with donated state): compile time, median / p90 step time, tokens/s, FLOPs, MFU;
  2. when torch is importable, the same model (our random weights exported with
     `jaxmethods.hf.save_pretrained` and loaded by `transformers`) and batch through a PyTorch
     AdamW step, and the step-time ratio torch / ours;
  3. generation tokens/s with the KV cache, greedy and beam search (and torch `generate`).

    python benchmarks/lm_step.py --size tiny --out runs/bench/lm_step_tiny.json     # CPU
    python benchmarks/lm_step.py --size 135m --torch-threads 1                         # CPU, 135M
    python benchmarks/lm_step.py --size bench --out runs/bench/lm_step_h100.json    # GPU, 1B

Sizes: tiny (CI-sized), small (a few M params), 135m (SmolLM-135M's shape: 30 layers, d = 576,
GQA 9/3; B = 4, T = 128), bench (the Llama-3.2-1B architecture).
On accelerators the compute dtype is bf16 with fp32 master weights (torch: bf16 autocast).
FLOPs: XLA's cost analysis of the compiled step when it has no loops (the default: unscanned
layers, full logits); otherwise the analytic 6·N·tokens + attention count (PaLM, app. B).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks.timing import (
    compile_jitted,
    environment,
    memory_bytes,
    mfu,
    parse_compiler_options,
    profile_ops,
    time_calls,
    write_json,
    xla_flops,
)
from jaxmethods.generate import build_beam_search, build_generate
from jaxmethods.losses import chunked_token_logprobs, masked_mean, token_logprobs
from jaxmethods.models.decoder import DecoderConfig, DecoderLM
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train.mesh import data_sharding, make_mesh
from jaxmethods.train.trainer import compile_step, create_state, shard_and_place

SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_layers=2,
                 num_heads=4, num_kv_heads=2, head_dim=16),
    "small": dict(vocab_size=8192, hidden_size=256, intermediate_size=768, num_layers=4,
                  num_heads=8, num_kv_heads=4, head_dim=32),
    # HuggingFaceTB/SmolLM-135M's shape (134.5 M parameters): Llama, 30 layers, d = 576,
    # GQA 9 query / 3 KV heads of 64, tied embeddings; random init (no download).
    "135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_layers=30,
                 num_heads=9, num_kv_heads=3, head_dim=64, rope_theta=10000.0,
                 rms_norm_eps=1e-5, tie_word_embeddings=True, max_position_embeddings=2048),
    # meta-llama/Llama-3.2-1B (1.24 B parameters, tied embeddings, llama3 RoPE scaling).
    "bench": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_layers=16,
                  num_heads=32, num_kv_heads=8, head_dim=64, rope_theta=500000.0,
                  rms_norm_eps=1e-5, tie_word_embeddings=True, max_position_embeddings=131072,
                  rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192}),
}  # fmt: skip
DEFAULTS = {  # batch, seq, steps, generation batch / prompt / new tokens
    "tiny": dict(batch=8, seq=128, steps=10, gen_batch=4, gen_prompt=32, gen_new=32),
    "small": dict(batch=8, seq=256, steps=10, gen_batch=4, gen_prompt=64, gen_new=64),
    "135m": dict(batch=4, seq=128, steps=5, gen_batch=8, gen_prompt=32, gen_new=32),
    "bench": dict(batch=4, seq=2048, steps=20, gen_batch=8, gen_prompt=256, gen_new=128),
}


def build_config(args: argparse.Namespace, accelerator: bool) -> DecoderConfig:
    return DecoderConfig(
        family="llama",
        dtype="bfloat16" if accelerator else "float32",
        param_dtype="float32",
        scan_layers=args.scan_layers,
        remat=args.remat,
        attention_impl=args.attention_impl,
        **SIZES[args.size],
    )


def analytic_flops(cfg: DecoderConfig, batch: int, seq: int) -> float:
    """Training FLOPs of one step: 6·N_matmul·tokens + 12·L·T·(heads·head_dim)·tokens."""
    h, q = cfg.hidden_size, cfg.num_heads * cfg.head_dim
    kv = cfg.num_kv_heads * cfg.head_dim
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * cfg.intermediate_size
    n_matmul = cfg.num_layers * per_layer + h * cfg.vocab_size  # + LM head
    tokens = batch * seq
    return 6.0 * n_matmul * tokens + 12.0 * cfg.num_layers * seq * q * tokens


def random_batch(cfg: DecoderConfig, batch: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cfg.vocab_size, size=(batch, seq)).astype(np.int32)
    labels = np.concatenate([ids[:, 1:], np.zeros((batch, 1), np.int32)], axis=1)
    loss_mask = np.ones((batch, seq), bool)
    loss_mask[:, -1] = False  # the last position has no next token (HF's shift drops it too)
    return dict(input_ids=ids, attention_mask=np.ones((batch, seq), np.int32), labels=labels,
                loss_mask=loss_mask)  # fmt: skip


def make_sft_loss(graphdef: Any, chunk: int):
    """loss_fn(params, rest, batch, rng): token-mean CE of next-token labels."""

    def loss_fn(params, rest, batch, rng):
        del rng
        model = nnx.merge(graphdef, params, rest)
        if chunk:
            hidden = model.hidden_states(batch["input_ids"], batch["attention_mask"])
            logp = chunked_token_logprobs(
                hidden, model.lm_head_kernel(), batch["labels"], chunk_size=chunk
            )
        else:
            logp = token_logprobs(
                model(batch["input_ids"], batch["attention_mask"]), batch["labels"]
            )
        loss = -masked_mean(logp, batch["loss_mask"])
        return loss, {}

    return loss_fn


def bench_jax_step(model: DecoderLM, batch_np: dict, args, mesh) -> dict[str, Any]:
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    # The step donates its state: train on a copy so `model` stays valid for the other runs.
    params = jax.tree.map(jnp.copy, params)
    tx = optax.adamw(args.lr, weight_decay=0.01)
    state, s_shard = create_state(params, tx, mesh, rules=DECODER_SHARDING_RULES)
    rest, r_shard = shard_and_place(rest, mesh, DECODER_SHARDING_RULES)
    batch = jax.device_put(batch_np, data_sharding(mesh))
    jitted = compile_step(
        tx, mesh, s_shard, loss_fn=make_sft_loss(graphdef, args.chunk), constants_shardings=r_shard
    )
    options = parse_compiler_options(args.xla_option)
    compiled, compile_s = compile_jitted(jitted, state, rest, batch, compiler_options=options)
    first_loss = []

    def call():
        nonlocal state
        state, metrics = compiled(state, rest, batch)
        if not first_loss:
            first_loss.append(float(metrics["loss"]))
        return metrics["loss"]

    stats = time_calls(call, warmup=args.warmup, iters=args.steps)
    b, t = batch_np["input_ids"].shape
    has_loops = args.scan_layers or bool(args.chunk)
    flops_xla = xla_flops(compiled)
    flops_analytic = analytic_flops(model.config, b, t)
    flops = flops_analytic if has_loops or flops_xla is None else flops_xla
    profile = profile_ops(call, compiled.as_text(), iters=args.profile) if args.profile else None
    return {
        "profile": profile,
        "compile_s": compile_s,
        "step": stats,
        "tokens_per_s": b * t / stats["median_s"],
        "flops_per_step_xla": flops_xla,
        "flops_per_step_analytic": flops_analytic,
        "flops_source": "analytic" if flops is flops_analytic else "xla_cost_analysis",
        "mfu": mfu(flops, stats["median_s"], mesh.devices.flatten().tolist()),
        "memory_bytes": memory_bytes(compiled),
        "first_loss": first_loss[0],
        "_flops": flops,
    }


def bench_jax_generation(model: DecoderLM, args, accelerator: bool) -> dict[str, Any]:
    """Greedy and beam-search tokens/s (no EOS: every row generates gen_new tokens)."""
    graphdef, state = nnx.split(model)
    if accelerator:  # inference weights in the compute dtype, as a serving copy would be
        state = jax.tree.map(
            lambda x: x.astype(jnp.bfloat16) if jnp.issubdtype(x.dtype, jnp.floating) else x,
            state,
        )
    gen_model = nnx.merge(graphdef, state)
    ids, mask = generation_prompts(model.config, args)
    out: dict[str, Any] = {}
    runs = {
        "greedy": build_generate(gen_model, ids, mask, max_new_tokens=args.gen_new),
        "beam": build_beam_search(
            gen_model, ids, mask, max_new_tokens=args.gen_new, num_beams=args.beams
        ),
    }
    for name, (fn, fn_args) in runs.items():
        compiled, compile_s = compile_jitted(fn, *fn_args)
        stats = time_calls(lambda c=compiled, a=fn_args: c(*a), warmup=1, iters=args.gen_iters)
        tokens = args.gen_batch * args.gen_new
        out[name] = {
            "compile_s": compile_s,
            "call": stats,
            "tokens_per_s": tokens / stats["median_s"],
        }
    out["beam"]["num_beams"] = args.beams
    return out


def generation_prompts(cfg: DecoderConfig, args) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded prompts: row i has `gen_prompt - 2*i` real tokens (at least half)."""
    rng = np.random.default_rng(1)
    b, p = args.gen_batch, args.gen_prompt
    ids = rng.integers(1, cfg.vocab_size, size=(b, p)).astype(np.int32)
    mask = np.ones((b, p), np.int32)
    for i in range(b):
        mask[i, : min(2 * i, p // 2)] = 0
    return np.where(mask == 1, ids, 0), mask


def bench_torch(model: DecoderLM, batch_np: dict, args, accelerator: bool) -> dict[str, Any] | None:
    """The same weights and batch through transformers (None when torch is not installed)."""
    try:
        import torch
        import transformers
    except ImportError:
        return None
    from jaxmethods.hf import save_pretrained

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    device = "cuda" if accelerator and torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with tempfile.TemporaryDirectory() as folder:
        save_pretrained(model, folder, dtype="float32")
        hf = transformers.AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.float32, attn_implementation="sdpa"
        ).to(device)
    hf.train()
    opt = torch.optim.AdamW(hf.parameters(), lr=args.lr, weight_decay=0.01, eps=1e-8)
    ids = torch.as_tensor(batch_np["input_ids"], dtype=torch.long, device=device)
    mask = torch.as_tensor(batch_np["attention_mask"], dtype=torch.long, device=device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = hf(input_ids=ids, attention_mask=mask, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), float("inf"))  # grad norm, like ours
        opt.step()
        losses.append(loss.detach())

    stats = torch_time(step, sync, warmup=args.warmup, iters=args.steps)
    b, t = ids.shape
    out: dict[str, Any] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": device,
        "threads": torch.get_num_threads(),
        "step": stats,
        "tokens_per_s": b * t / stats["median_s"],
        "first_loss": float(losses[0]),
    }
    hf.eval()
    if device == "cuda":
        hf = hf.to(torch.bfloat16)
    g_ids, g_mask = (
        torch.as_tensor(a, device=device) for a in generation_prompts(model.config, args)
    )
    for name, beams in (("greedy", 1), ("beam", args.beams)):

        def generate(beams=beams):
            with torch.no_grad():
                hf.generate(
                    input_ids=g_ids.long(), attention_mask=g_mask.long(), do_sample=False,
                    num_beams=beams, max_new_tokens=args.gen_new, min_new_tokens=args.gen_new,
                    pad_token_id=0,
                )  # fmt: skip

        g_stats = torch_time(generate, sync, warmup=1, iters=args.gen_iters)
        out[f"generate_{name}"] = {
            "call": g_stats,
            "tokens_per_s": args.gen_batch * args.gen_new / g_stats["median_s"],
        }
    return out


def torch_time(fn, sync, *, warmup: int, iters: int) -> dict[str, Any]:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return {"median_s": float(np.median(times)), "p90_s": float(np.percentile(times, 90)),
            "min_s": min(times), "iters": iters, "samples_s": times}  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="tiny")
    p.add_argument("--batch", type=int, help="sequences per step (default per size)")
    p.add_argument("--seq", type=int, help="tokens per sequence (default per size)")
    p.add_argument("--steps", type=int, help="timed steps (default per size)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--chunk", type=int, default=0, help="log-prob chunk (0: full logits)")
    p.add_argument("--scan-layers", action="store_true")
    p.add_argument("--remat", default=False, help="False, full or a checkpoint policy name")
    p.add_argument("--attention-impl", default="xla", choices=["xla", "cudnn", "einsum"])
    p.add_argument("--mesh", default="data=-1,fsdp=1,tensor=1")
    p.add_argument("--gen-batch", type=int)
    p.add_argument("--gen-prompt", type=int)
    p.add_argument("--gen-new", type=int)
    p.add_argument("--gen-iters", type=int, default=3)
    p.add_argument("--beams", type=int, default=4)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default); 1 avoids OpenMP spin-waiting on a busy host",
    )
    p.add_argument("--profile", type=int, default=0, help="profile N steps: op time by source file")
    p.add_argument(
        "--xla-option", action="append", default=[], metavar="NAME=VALUE",
        help="XLA debug option for the train step's compile (repeatable), e.g. "
        "xla_cpu_enable_fast_math=true; none is on by default (docs/performance.md)",
    )  # fmt: skip
    p.add_argument("--out", default="runs/bench/lm_step.json")
    args = p.parse_args(argv)
    for key, value in DEFAULTS[args.size].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.remat in ("False", "false", "none"):
        args.remat = False
    return args


def parse_mesh(spec: str) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in (part.split("=") for part in spec.split(","))}
    except ValueError as e:
        raise SystemExit(f"--mesh {spec!r}: expected name=size pairs like data=-1,fsdp=1") from e


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    accelerator = jax.devices()[0].platform != "cpu"
    mesh = make_mesh(parse_mesh(args.mesh))
    cfg = build_config(args, accelerator)
    model = DecoderLM(cfg, rngs=nnx.Rngs(0))
    batch_np = random_batch(cfg, args.batch, args.seq, seed=0)
    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    result: dict[str, Any] = {
        "benchmark": "lm_step",
        "size": args.size,
        "config": {k: v for k, v in vars(args).items()},
        "model": {
            "family": cfg.family,
            "params": int(n_params),
            "dtype": cfg.dtype,
            "param_dtype": cfg.param_dtype,
        },
        "env": environment(mesh),
    }
    print(f"[lm_step] {args.size}: {n_params / 1e6:.2f} M params on {result['env']['device_kind']}")
    jax_step = bench_jax_step(model, batch_np, args, mesh)
    flops = jax_step.pop("_flops")
    result["jax"] = {"train": jax_step, "generate": bench_jax_generation(model, args, accelerator)}
    torch_res = None if args.no_torch else bench_torch(model, batch_np, args, accelerator)
    result["torch"] = torch_res
    if torch_res is not None:
        torch_res["mfu"] = mfu(flops, torch_res["step"]["median_s"], jax.devices()[:1])
        ratio = torch_res["step"]["median_s"] / jax_step["step"]["median_s"]
        result["speedup_vs_torch"] = {
            "train_step": ratio,
            "generate_greedy": torch_res["generate_greedy"]["call"]["median_s"]
            / result["jax"]["generate"]["greedy"]["call"]["median_s"],
            "generate_beam": torch_res["generate_beam"]["call"]["median_s"]
            / result["jax"]["generate"]["beam"]["call"]["median_s"],
        }
    write_json(args.out, result)
    print_summary(result)
    return result


def print_summary(r: dict[str, Any]) -> None:
    tr = r["jax"]["train"]
    print(f"  compile {tr['compile_s']:.2f} s | step median {tr['step']['median_s'] * 1e3:.2f} ms"
          f" p90 {tr['step']['p90_s'] * 1e3:.2f} ms | {tr['tokens_per_s']:.0f} tok/s"
          f" | MFU {tr['mfu']}")  # fmt: skip
    if tr.get("profile"):
        for row in tr["profile"]["by_source"][:10]:
            print(f"  profile {row['source']:24s} {'bwd' if row['backward'] else 'fwd'} "
                  f"{row['s'] * 1e3:8.2f} ms {row['share']:6.1%}")  # fmt: skip
    for name, g in r["jax"]["generate"].items():
        print(f"  generate {name}: {g['tokens_per_s']:.0f} tok/s (compile {g['compile_s']:.2f} s)")
    if r["torch"] is not None:
        print(f"  torch step median {r['torch']['step']['median_s'] * 1e3:.2f} ms; "
              f"speedup vs torch: {r['speedup_vs_torch']}")  # fmt: skip


if __name__ == "__main__":
    main()
