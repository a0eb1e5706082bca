"""DRC's stage-1 train step against a plain LM step on the same visual-token batch, and the host
overhead of the difficulty-aware importance sampler.

The batch is B triplets (anchor, positive-style, positive-semantic) of N visual codes each.
"drc" is the stage-1 step (`model.make_stage1_loss_fn`): the LM is frozen (a read-only
constant), the towers + FusionNetwork are trained, and every triplet is reconstructed twice
(composed and cross-composed: 2B rows of K latents + `<img>` + N codes + end; "drc_split"
reconstructs each triplet once, B rows). "lm" is a plain causal-LM step that fine-tunes every
LM weight on the same 3B images (`<img> codes <end>`). All are the shared trainer's jitted step
(forward, backward, clipping, AdamW, donated state), AOT-compiled and timed in interleaved
rounds. The sampler overhead is the host time of `sample` + `observe` (+ gathering the codes)
per step, measured over `sampler_steps` steps, as a fraction of the drc step.

Targets (issue 18): drc <= 1.3 x lm; sampler overhead < 1 % of the step.

    python benchmarks/drc_step.py                 # CPU-sized defaults
    python benchmarks/drc_step.py --preset gpu    # ~1B-parameter Llama-style LM, LaVIT sizes
Writes JSON to --out (default runs/bench/drc_step.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dataclasses

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
from jaxmethods.methods.drc.fusion import FusionConfig
from jaxmethods.methods.drc.image_lm import VisualVocab
from jaxmethods.methods.drc.model import DRCConfig, DRCModel
from jaxmethods.methods.drc.model_train import make_stage1_loss_fn, split_drc
from jaxmethods.methods.drc.sampler import ImportanceSampler, SamplerConfig
from jaxmethods.methods.drc.towers import TowerConfig
from jaxmethods.models.causal_lm import causal_lm_loss
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES as RULES
from jaxmethods.train.mesh import data_sharding, make_mesh
from jaxmethods.train.optim import OptimConfig, make_optimizer
from jaxmethods.train.trainer import compile_step, create_state, shard_and_place

PRESETS = {
    "smoke": dict(hidden=32, inter=64, layers=1, heads=2, kv=2, codebook=64, tokens=16,
                  latents=4, batch=4, dtype="float32", remat=False, warmup=1, iters=2,
                  rounds=1, triplets=256, sampler_steps=20,
                  variants=("lm", "drc")),  # the suite's smoke tier: fewer compiles
    "cpu": dict(hidden=128, inter=344, layers=2, heads=4, kv=4, codebook=1024, tokens=64,
                latents=8, batch=8, dtype="float32", remat=False, warmup=2, iters=5,
                rounds=3, triplets=30000, sampler_steps=200),
    "gpu": dict(hidden=2048, inter=5504, layers=16, heads=16, kv=16, codebook=16384,
                tokens=256, latents=32, batch=16, dtype="bfloat16", remat="full", warmup=2,
                iters=10, rounds=3, triplets=30000, sampler_steps=500),
}  # fmt: skip
VARIANTS = ("lm", "drc", "drc_split")  # a preset's "variants" may name fewer


def make_triplets(p: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    b, n, k = p["batch"], p["tokens"], p["codebook"]
    return {name: rng.integers(0, k, (b, n)).astype(np.int32)
            for name in ("anchor", "pos_style", "pos_sem")}  # fmt: skip


def lm_batch(vocab: VisualVocab, trip: dict) -> dict[str, np.ndarray]:
    """The plain LM's batch: the 3B images of the triplets as `<img> codes <end>` rows."""
    codes = np.concatenate([trip["anchor"], trip["pos_style"], trip["pos_sem"]])
    ids = np.asarray(vocab.image_ids(codes))
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": ids}


def sampler_overhead(p: dict, codes: np.ndarray, step_loss: jax.Array) -> dict[str, float]:
    """Host seconds per step of `sample` + gather + `observe` (device-array losses)."""
    sampler = ImportanceSampler(p["triplets"], SamplerConfig(formula="softmax"), seed=0)
    trip = np.random.default_rng(1).integers(0, len(codes), (p["triplets"], 3))
    losses = jnp.broadcast_to(step_loss, (p["batch"],))
    times = []
    for _ in range(p["sampler_steps"]):
        t0 = time.perf_counter()
        idx, w = sampler.sample(p["batch"])
        a, s, m = trip[idx].T
        _ = (codes[a], codes[s], codes[m], w)
        sampler.observe(idx, losses + 0.0)
        times.append(time.perf_counter() - t0)
    return {"median_s": float(np.median(times)), "p90_s": float(np.percentile(times, 90))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--out", default="runs/bench/drc_step.json")
    args = ap.parse_args(argv)
    p = PRESETS[args.preset]
    mesh = make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    vocab = VisualVocab(text_vocab_size=32000 if args.preset == "gpu" else 8,
                        codebook_size=p["codebook"])  # fmt: skip
    cfg = preset_decoder_config({**p, "vocab": vocab.vocab_size}, param_dtype=p["dtype"])
    lm = DecoderLM(cfg, rngs=nnx.Rngs(0))
    trip = make_triplets(p, np.random.default_rng(0))
    tx = make_optimizer(OptimConfig(lr=1e-4, warmup_steps=10), 1000)
    mcfg = DRCConfig(
        tower=TowerConfig(dtype=p["dtype"]), fusion=FusionConfig(num_latents=p["latents"])
    )
    runners, compile_s, counts = {}, {}, {}
    batch_trip = jax.device_put(trip, data_sharding(mesh))
    variants = p.get("variants", VARIANTS)
    for name in variants:
        if name == "lm":
            graphdef, params = nnx.split(lm)
            constants, c_shard, rules = None, None, RULES

            def loss_fn(prm, _, batch, rng, graphdef=graphdef):
                return causal_lm_loss(nnx.merge(graphdef, prm), batch)[0], {}

            batch = jax.device_put(lm_batch(vocab, trip), data_sharding(mesh))
        else:
            mode = "split" if name == "drc_split" else "both"
            model = DRCModel(lm, vocab, dataclasses.replace(mcfg, cross_mode=mode),
                             rngs=nnx.Rngs(1))  # fmt: skip
            graphdef, params, frozen = split_drc(model)
            constants, c_shard = shard_and_place(frozen, mesh, RULES)
            rules, batch = (), batch_trip
            loss_fn = make_stage1_loss_fn(graphdef, model.cfg)
        counts[name] = sum(x.size for x in jax.tree.leaves(params))
        state, shardings = create_state(jax.tree.map(jnp.copy, params), tx, mesh, rules=rules)
        step = compile_step(tx, mesh, shardings, loss_fn=loss_fn, constants_shardings=c_shard)
        compiled, compile_s[name] = compile_jitted(step, state, constants, batch)
        runners[name] = train_step_call(compiled, state, constants, batch)
        print(f"compiled {name} in {compile_s[name]:.1f}s", flush=True)
    samples = interleaved_samples(runners, rounds=p["rounds"], warmup=p["warmup"], iters=p["iters"])
    median = {k: float(np.median(v)) for k, v in samples.items()}
    codes = np.random.default_rng(2).integers(0, p["codebook"], (4096, p["tokens"]), np.int32)
    host = sampler_overhead(p, codes, runners["drc"]())
    ratio = median["drc"] / median["lm"]
    frac = host["median_s"] / median["drc"]
    result = {
        "benchmark": "drc_step",
        "preset": args.preset,
        "config": p,
        "trainable_params": counts,
        "median_step_s": median,
        "p10_step_s": {k: float(np.percentile(v, 10)) for k, v in samples.items()},
        "p90_step_s": {k: float(np.percentile(v, 90)) for k, v in samples.items()},
        "drc_over_lm": ratio,
        "drc_split_over_lm": median["drc_split"] / median["lm"] if "drc_split" in median else None,
        "drc_within_1_3x": ratio <= 1.3,
        "sampler_host_s": host,
        "sampler_fraction_of_step": frac,
        "sampler_under_1pct": frac < 0.01,
        "compile_s": compile_s,
        "environment": environment(mesh),
    }
    write_json(args.out, result)
    for k in variants:
        print(f"{k:9s} median {median[k] * 1e3:9.2f} ms  trainable params {counts[k]:,}")
    print(f"drc / lm: x{ratio:.3f}; sampler host {host['median_s'] * 1e6:.0f} us/step "
          f"= {100 * frac:.2f}% of the drc step; wrote {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
