"""BalDRO step time: NPO against NPO+BalDRO-G and NPO+BalDRO-DV, same model/batch/optimizer.

Every variant is the full train step of `jaxmethods.methods.baldro` (forward on the paired
forget + retain micro-batch, backward, clipping, AdamW), jitted with the state donated, timed
after AOT compilation and warm-up; variants are timed in interleaved rounds so machine noise hits
them alike. Also timed: NPO with a frozen reference copy (the authors' per-step reference
forward) instead of reference NLLs precomputed once.

Targets (issue 4): DV <= 1.05 x NPO (the DV aggregate is a logsumexp over B numbers); G <= 1.5 x
NPO (one extra no-grad forward for the hardness, then forward/backward on k = B/2 forget and k
retain rows, so G is usually *cheaper* than NPO).

    python benchmarks/baldro_step.py                 # CPU-sized defaults
    python benchmarks/baldro_step.py --preset gpu    # ~1B-parameter Llama-style model, bf16
Writes JSON to --out (default runs/bench/baldro_step.json).
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
from jaxmethods.methods.baldro.assets import make_token_ce
from jaxmethods.methods.baldro.objective import ObjectiveConfig, objective
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES as RULES
from jaxmethods.train.mesh import data_sharding, make_mesh
from jaxmethods.train.optim import OptimConfig, make_optimizer
from jaxmethods.train.trainer import compile_step, create_state, shard_and_place

PRESETS = {
    "smoke": dict(hidden=32, inter=64, layers=1, heads=2, kv=2, vocab=128, batch=2, seq=16,
                  dtype="float32", remat=False, chunk=0, warmup=1, iters=2, rounds=1,
                  variants=("npo", "npo_group")),  # the suite's smoke tier: fewer compiles
    "cpu": dict(hidden=128, inter=344, layers=2, heads=4, kv=4, vocab=2048, batch=8, seq=128,
                dtype="float32", remat=False, chunk=0, warmup=2, iters=5, rounds=3),
    "gpu": dict(hidden=2048, inter=5504, layers=16, heads=16, kv=16, vocab=32000, batch=8,
                seq=512, dtype="bfloat16", remat="full", chunk=128, warmup=2, iters=10, rounds=3),
}  # fmt: skip

VARIANTS = {  # a preset's "variants" may name fewer
    "npo": ObjectiveConfig(loss="npo"),
    "npo_frozen_ref": ObjectiveConfig(loss="npo", reference="frozen"),
    "npo_group": ObjectiveConfig(loss="npo", variant="group"),
    "npo_dv": ObjectiveConfig(loss="npo", variant="dv", beta_dv=1.0),
}


def make_batch(p: dict, rng: np.random.Generator) -> dict:
    b, t, v = p["batch"], p["seq"], p["vocab"]

    def side():
        ids = rng.integers(3, v, (b, t)).astype(np.int32)
        labels = ids.copy()
        labels[:, : t // 4] = -100  # question tokens
        return {
            "input_ids": ids,
            "attention_mask": np.ones((b, t), np.int32),
            "labels": labels,
            "row_valid": np.ones((b,), bool),
        }

    forget = side() | {"ref_nll": rng.uniform(50, 100, b).astype(np.float32)}
    return {"forget": forget, "retain": side()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--out", default="runs/bench/baldro_step.json")
    args = ap.parse_args(argv)
    p = PRESETS[args.preset]
    mesh = make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    cfg = preset_decoder_config(p)
    graphdef, params = nnx.split(DecoderLM(cfg), nnx.Param)
    n_params = sum(x.size for x in jax.tree.leaves(params))
    token_ce = make_token_ce(graphdef, p["chunk"])
    tx = make_optimizer(OptimConfig(lr=1e-5, weight_decay=0.01, warmup_steps=10), 1000)
    batch = jax.device_put(make_batch(p, np.random.default_rng(0)), data_sharding(mesh))
    params, p_shard = shard_and_place(params, mesh, RULES)
    frozen = jax.tree.map(jnp.copy, params)

    variants = p.get("variants", tuple(VARIANTS))
    runners, compile_s = {}, {}
    for name in variants:
        obj = VARIANTS[name]
        loss_fn = lambda pr, fr, bt, k, obj=obj: objective(obj, token_ce, pr, fr, bt, k)
        state, shardings = create_state(jax.tree.map(jnp.copy, params), tx, mesh, rules=RULES)
        fr = frozen if obj.reference == "frozen" else None
        step = compile_step(
            tx, mesh, shardings, loss_fn=loss_fn,
            constants_shardings=p_shard if fr is not None else None,
        )  # fmt: skip
        compiled, compile_s[name] = compile_jitted(step, state, fr, batch)
        runners[name] = train_step_call(compiled, state, fr, batch)
        print(f"compiled {name} in {compile_s[name]:.1f}s", flush=True)

    samples = interleaved_samples(runners, rounds=p["rounds"], warmup=p["warmup"], iters=p["iters"])
    median = {k: float(np.median(v)) for k, v in samples.items()}
    ratios = {k: median[k] / median["npo"] for k in variants}
    tokens = 2 * p["batch"] * p["seq"]
    result = {
        "benchmark": "baldro_step",
        "preset": args.preset,
        "config": p,
        "num_params": int(n_params),
        "median_step_s": median,
        "p10_step_s": {k: float(np.percentile(v, 10)) for k, v in samples.items()},
        "p90_step_s": {k: float(np.percentile(v, 90)) for k, v in samples.items()},
        "tokens_per_s": {k: tokens / v for k, v in median.items()},
        "ratio_to_npo": ratios,
        "compile_s": compile_s,
        "dv_within_5pct": ratios["npo_dv"] <= 1.05 if "npo_dv" in ratios else None,
        "group_within_1_5x": ratios["npo_group"] <= 1.5 if "npo_group" in ratios else None,
        "environment": environment(mesh),
    }
    write_json(args.out, result)
    for k in variants:
        print(f"{k:16s} median {median[k] * 1e3:9.2f} ms   x{ratios[k]:.3f} of NPO")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
