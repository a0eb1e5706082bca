"""DEP's train step (frozen base LLM, trainable SAE + alignment MLPs) against a full fine-tune step
of the same base on the same batch, with the same loss.

"dep" differentiates only the adapter's `DEPParam` leaves: the LLM is a read-only constant, so it
has no weight gradient and no optimizer state (backward still runs through it, down to the soft
tokens). "full" trains every parameter of the same model (LLM + adapter). Both are the full
jitted step of the shared trainer (forward, backward, clipping, AdamW, state donated), timed
after AOT compilation and warm-up in interleaved rounds. Peak memory comes from the compiled
executables' memory analysis: arguments + outputs - donated aliases + temporaries.

Target (issue 16): dep <= 0.6 x full.

    python benchmarks/dep_step.py                 # CPU-sized defaults
    python benchmarks/dep_step.py --preset gpu    # ~1B-parameter Llama-style base, bf16, E=1024
Writes JSON to --out (default runs/bench/dep_step.json).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks.timing import (
    compile_jitted,
    environment,
    interleaved_samples,
    memory_bytes,
    preset_decoder_config,
    train_step_call,
    write_json,
)
from jaxmethods.methods.dep.model import DEPAdapterConfig, DEPModel
from jaxmethods.methods.dep.model_train import make_dep_loss_fn, split_dep
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES as RULES
from jaxmethods.train.mesh import data_sharding, make_mesh
from jaxmethods.train.optim import OptimConfig, make_optimizer
from jaxmethods.train.trainer import compile_step, create_state, shard_and_place

PRESETS = {
    "smoke": dict(hidden=32, inter=64, layers=1, heads=2, kv=2, vocab=128, batch=2, seq=32,
                  embed=32, code=16, dtype="float32", remat=False, chunk=0, warmup=1, iters=2,
                  rounds=1),
    "cpu": dict(hidden=128, inter=344, layers=2, heads=4, kv=4, vocab=2048, batch=4, seq=128,
                embed=128, code=64, dtype="float32", remat=False, chunk=0, warmup=2, iters=5,
                rounds=3),
    "gpu": dict(hidden=2048, inter=5504, layers=16, heads=16, kv=16, vocab=32000, batch=4,
                seq=512, embed=1024, code=512, dtype="bfloat16", remat="full", chunk=128,
                warmup=2, iters=10, rounds=3),
}  # fmt: skip
VARIANTS = ("full", "dep")


def make_batch(p: dict, his: tuple, diff: tuple, rng: np.random.Generator) -> dict:
    """B prompts with the 16 placeholders, the second half of every row as the target."""
    b, t, v = p["batch"], p["seq"], p["vocab"]
    ids = rng.integers(3, v - 16, (b, t)).astype(np.int32)
    ids[:, 8:24] = np.array(his + diff)
    labels = ids.copy()
    labels[:, : t // 2] = -100
    emb = rng.normal(size=(b, 16, p["embed"])).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)  # unit-norm, like bge-m3 CLS vectors
    return {"input_ids": ids, "attention_mask": np.ones((b, t), np.int32), "labels": labels,
            "his_diff_emb": emb}  # fmt: skip


def peak_bytes(mem: dict | None) -> int | None:
    """arguments + outputs - donated aliases + temporaries (None without a memory analysis)."""
    if not mem:
        return None
    return (
        mem.get("argument_size_in_bytes", 0) + mem.get("output_size_in_bytes", 0)
        - mem.get("alias_size_in_bytes", 0) + mem.get("temp_size_in_bytes", 0)
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--out", default="runs/bench/dep_step.json")
    args = ap.parse_args(argv)
    p = PRESETS[args.preset]
    mesh = make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    cfg = preset_decoder_config(p, param_dtype=p["dtype"])
    his = tuple(range(p["vocab"] - 16, p["vocab"] - 8))
    diff = tuple(range(p["vocab"] - 8, p["vocab"]))
    adapter = DEPAdapterConfig(embed_size=p["embed"], code_size=p["code"])
    model = DEPModel(DecoderLM(cfg), his, diff, adapter, rngs=nnx.Rngs(1))
    batch = jax.device_put(make_batch(p, his, diff, np.random.default_rng(0)), data_sharding(mesh))
    tx = make_optimizer(OptimConfig(lr=1e-5, weight_decay=0.025, warmup_steps=10), 1000)

    dep_def, dep_params, frozen = split_dep(model)
    full_def, full_params, rest = nnx.split(model, nnx.Param, ...)  # DEPParam is a Param too
    counts = {
        "full": sum(x.size for x in jax.tree.leaves(full_params)),
        "dep": sum(x.size for x in jax.tree.leaves(dep_params)),
    }
    setups = {
        "full": (full_def, full_params, rest, RULES),
        "dep": (dep_def, dep_params, frozen, ()),
    }
    runners, compile_s, memory, peak = {}, {}, {}, {}
    for name, (graphdef, params, constants, rules) in setups.items():
        constants, c_shard = shard_and_place(constants, mesh, RULES)
        # A copy: the state is donated, and the variants share the model's arrays.
        state, shardings = create_state(jax.tree.map(jnp.copy, params), tx, mesh, rules=rules)
        loss_fn = make_dep_loss_fn(graphdef, chunk_size=p["chunk"])
        step = compile_step(tx, mesh, shardings, loss_fn=loss_fn, constants_shardings=c_shard)
        compiled, compile_s[name] = compile_jitted(step, state, constants, batch)
        memory[name] = memory_bytes(compiled)
        peak[name] = peak_bytes(memory[name])
        runners[name] = train_step_call(compiled, state, constants, batch)
        print(f"compiled {name} in {compile_s[name]:.1f}s", flush=True)

    samples = interleaved_samples(runners, rounds=p["rounds"], warmup=p["warmup"], iters=p["iters"])
    median = {k: float(np.median(v)) for k, v in samples.items()}
    ratio = median["dep"] / median["full"]
    peak_ratio = None if None in peak.values() else peak["dep"] / peak["full"]
    result = {
        "benchmark": "dep_step",
        "preset": args.preset,
        "config": p,
        "trainable_params": counts,
        "median_step_s": median,
        "p10_step_s": {k: float(np.percentile(v, 10)) for k, v in samples.items()},
        "p90_step_s": {k: float(np.percentile(v, 90)) for k, v in samples.items()},
        "tokens_per_s": {k: p["batch"] * p["seq"] / v for k, v in median.items()},
        "dep_over_full": ratio,
        "dep_within_0_6x": ratio <= 0.6,
        "memory_bytes": memory,
        "peak_bytes": peak,
        "peak_dep_over_full": peak_ratio,
        "compile_s": compile_s,
        "environment": environment(mesh),
    }
    write_json(args.out, result)
    for k in VARIANTS:
        mb = None if peak[k] is None else peak[k] / 2**20
        print(f"{k:5s} median {median[k] * 1e3:9.2f} ms  peak {mb:.1f} MiB  params {counts[k]:,}")
    print(f"dep / full: step x{ratio:.3f}, peak memory x{peak_ratio:.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
