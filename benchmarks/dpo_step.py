"""DPO step time against the SFT step on the same model and the same tokens.

SFT trains on the 2P rows [chosen; rejected] of P preference pairs (token cross-entropy); DPO
runs the policy on the same [2P, T] rows in one forward pass plus, without the cache, one
no-grad forward of a frozen reference copy (`jaxmethods.train.dpo`, reference "model"); with
cached reference log-probs the step has only the policy pass. Every variant is the full jitted
train step of the shared trainer (forward, backward, clipping, AdamW, state donated), timed
after AOT compilation and warm-up in interleaved rounds.

Targets (issue 13): DPO <= 2.1 x SFT without the cache (ideal ~1.33: a reference forward is about
a third of a forward + backward); DPO <= 1.1 x SFT with the cache.

    python benchmarks/dpo_step.py                 # CPU-sized defaults
    python benchmarks/dpo_step.py --preset gpu    # ~1B-parameter Llama-style model, bf16
Writes JSON to --out (default runs/bench/dpo_step.json).
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
    preset_decoder_config,
    train_step_call,
    write_json,
)
from jaxmethods.models.causal_lm import causal_lm_loss
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES as RULES
from jaxmethods.train.dpo import make_dpo_loss_fn
from jaxmethods.train.mesh import data_sharding, make_mesh
from jaxmethods.train.optim import OptimConfig, make_optimizer
from jaxmethods.train.trainer import compile_step, create_state, shard_and_place

PRESETS = {
    "smoke": dict(hidden=32, inter=64, layers=1, heads=2, kv=2, vocab=128, pairs=2, seq=16,
                  dtype="float32", remat=False, chunk=0, warmup=1, iters=2, rounds=1,
                  variants=("sft", "dpo")),  # the suite's smoke tier: fewer compiles
    "cpu": dict(hidden=128, inter=344, layers=2, heads=4, kv=4, vocab=2048, pairs=4, seq=128,
                dtype="float32", remat=False, chunk=0, warmup=2, iters=5, rounds=3),
    "gpu": dict(hidden=2048, inter=5504, layers=16, heads=16, kv=16, vocab=32000, pairs=4,
                seq=512, dtype="bfloat16", remat="full", chunk=128, warmup=2, iters=10, rounds=3),
}  # fmt: skip
VARIANTS = ("sft", "dpo", "dpo_cached")  # a preset's "variants" may name fewer


def make_batches(p: dict, rng: np.random.Generator) -> tuple[dict, dict]:
    """(DPO batch of P pairs, SFT batch of the same 2P rows)."""
    n, t, v = p["pairs"], p["seq"], p["vocab"]

    def side():
        ids = rng.integers(3, v, (n, t)).astype(np.int32)
        labels = ids.copy()
        labels[:, : t // 2] = -100  # the prompt
        return {"input_ids": ids, "attention_mask": np.ones((n, t), np.int32), "labels": labels}

    c, r = side(), side()
    dpo = {"chosen": c, "rejected": r, "pair_valid": np.ones((n,), bool),
           "ref_chosen": rng.uniform(-90, -60, n).astype(np.float32),
           "ref_rejected": rng.uniform(-90, -60, n).astype(np.float32)}  # fmt: skip
    sft = {k: np.concatenate([c[k], r[k]]) for k in c}
    return dpo, sft


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--out", default="runs/bench/dpo_step.json")
    args = ap.parse_args(argv)
    p = PRESETS[args.preset]
    mesh = make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    cfg = preset_decoder_config(p)
    graphdef, params, rest = nnx.split(DecoderLM(cfg), nnx.Param, ...)
    n_params = sum(x.size for x in jax.tree.leaves(params))
    tx = make_optimizer(OptimConfig(lr=1e-5, weight_decay=0.01, warmup_steps=10), 1000)
    dpo_batch, sft_batch = make_batches(p, np.random.default_rng(0))
    dpo_batch = jax.device_put(dpo_batch, data_sharding(mesh))
    sft_batch = jax.device_put(sft_batch, data_sharding(mesh))
    params, p_shard = shard_and_place(params, mesh, RULES)
    rest, r_shard = shard_and_place(rest, mesh, RULES)
    frozen = jax.tree.map(jnp.copy, params)

    def sft_loss(pr, rest, batch, rng):
        loss, _ = causal_lm_loss(nnx.merge(graphdef, pr, rest), batch, chunk_size=p["chunk"])
        return loss, {}

    setups = {
        "sft": (sft_loss, rest, r_shard, sft_batch),
        "dpo": (make_dpo_loss_fn(graphdef, reference="model", chunk_size=p["chunk"]),
                (rest, frozen), (r_shard, p_shard), dpo_batch),
        "dpo_cached": (make_dpo_loss_fn(graphdef, reference="cached", chunk_size=p["chunk"]),
                       rest, r_shard, dpo_batch),
    }  # fmt: skip
    variants = p.get("variants", VARIANTS)
    runners, compile_s = {}, {}
    for name in variants:
        loss_fn, constants, c_shard, batch = setups[name]
        state, shardings = create_state(jax.tree.map(jnp.copy, params), tx, mesh, rules=RULES)
        step = compile_step(tx, mesh, shardings, loss_fn=loss_fn, constants_shardings=c_shard)
        compiled, compile_s[name] = compile_jitted(step, state, constants, batch)
        runners[name] = train_step_call(compiled, state, constants, batch)
        print(f"compiled {name} in {compile_s[name]:.1f}s", flush=True)

    samples = interleaved_samples(runners, rounds=p["rounds"], warmup=p["warmup"], iters=p["iters"])
    median = {k: float(np.median(v)) for k, v in samples.items()}
    ratios = {k: median[k] / median["sft"] for k in variants}
    tokens = 2 * p["pairs"] * p["seq"]
    result = {
        "benchmark": "dpo_step",
        "preset": args.preset,
        "config": p,
        "num_params": int(n_params),
        "median_step_s": median,
        "p10_step_s": {k: float(np.percentile(v, 10)) for k, v in samples.items()},
        "p90_step_s": {k: float(np.percentile(v, 90)) for k, v in samples.items()},
        "tokens_per_s": {k: tokens / v for k, v in median.items()},
        "ratio_to_sft": ratios,
        "compile_s": compile_s,
        "dpo_within_2_1x": ratios["dpo"] <= 2.1 if "dpo" in ratios else None,
        "dpo_cached_within_1_1x": ratios["dpo_cached"] <= 1.1 if "dpo_cached" in ratios else None,
        "environment": environment(mesh),
    }
    write_json(args.out, result)
    for k in variants:
        print(f"{k:12s} median {median[k] * 1e3:9.2f} ms   x{ratios[k]:.3f} of SFT")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
