"""Four LoRA adapters resident on one base against one adapter: forward and train step time, and
memory from the compiled programs' memory analysis.

The adapters are Reason4Rec's four (summarizer r16, reasoner r16, predictor r8 + lm_head,
reward r8 + lm_head; all linears), built by `apply_multi_lora`. "multi4" holds all four, "multi1"
only the predictor (same spec), "multi4_r8" all four at the predictor's rank 8 (no rank
padding: the pure cost of residency); "plain" is the predictor's LoRA as an ordinary `apply_lora`
model (rank 8, without the head copy), the reference without any multi-adapter machinery. Measured for the predictor:
  * forward: jitted logits-loss of `MultiLoRA.merge(bank, base, index)` (index traced; one
    program for every adapter), batch [B, T];
  * train step: the shared trainer's step (`create_state` / `compile_step`: forward, backward,
    clipping, AdamW with weight decay, state donated) on `trainable(name)` with
    `constants(name)`.
Every variant is AOT-compiled, warmed up and timed in interleaved rounds (median and min of
all samples; on a shared machine the min is the contention-robust one). Memory: `compiled.memory_analysis()` argument/temp bytes per program, and resident
bytes (base + bank) per setup; the growth multi4 - multi1 is compared with the extra adapters'
own bytes (their factors at their own rank + head copies) and the rank padding.

Targets (issue 15): multi4 / multi1 <= 1.10 per step; memory growth = the adapter bytes.

    python benchmarks/multi_lora.py                  # CPU-sized defaults
    python benchmarks/multi_lora.py --preset gpu     # ~1B-parameter Llama-style model, bf16
Writes JSON to --out (default runs/bench/multi_lora.json).
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
from jaxmethods.models.causal_lm import causal_lm_loss
from jaxmethods.models.decoder import DecoderConfig, DecoderLM
from jaxmethods.models.lora import LoRAParam, apply_lora
from jaxmethods.models.multi_lora import apply_multi_lora
from jaxmethods.train.mesh import data_sharding, make_mesh
from jaxmethods.train.optim import OptimConfig, make_optimizer
from jaxmethods.train.trainer import compile_step, create_state

PRESETS = {
    "smoke": dict(hidden=32, inter=64, layers=1, heads=2, kv=2, vocab=128, batch=2, seq=16,
                  dtype="float32", remat=False, warmup=1, iters=2, rounds=1,
                  setups=("multi1", "multi4")),  # the suite's smoke tier: fewer compiles
    "cpu": dict(hidden=128, inter=344, layers=2, heads=4, kv=4, vocab=2048, batch=8, seq=128,
                dtype="float32", remat=False, warmup=2, iters=5, rounds=5),
    "gpu": dict(hidden=2048, inter=5504, layers=16, heads=16, kv=16, vocab=32000, batch=8,
                seq=512, dtype="bfloat16", remat="full", warmup=2, iters=10, rounds=3),
}  # fmt: skip
ALL = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
ADAPTERS = {  # name: (rank, alpha, dropout, head_trainable), Reason4Rec's four experts
    "summarizer": (16, 32.0, 0.0, False),
    "reasoner": (16, 32.0, 0.1, False),
    "predictor": (8, 16.0, 0.0, True),
    "reward": (8, 16.0, 0.0, True),
}
TRAINED = "predictor"
SETUPS = ("plain", "multi1", "multi4", "multi4_r8")  # a preset's "setups" may name fewer


def _nbytes(tree) -> int:
    return int(sum(x.nbytes for x in jax.tree.leaves(tree)))


def build(setup: str, cfg: DecoderConfig):
    """(forward fn, forward args, train (loss_fn, params, constants), resident bytes, extra)."""
    model = DecoderLM(cfg, rngs=nnx.Rngs(0))
    if setup == "plain":
        r, a, d, _ = ADAPTERS[TRAINED]
        apply_lora(model, r, a, d, ALL)
        graphdef, lora, rest = nnx.split(model, LoRAParam, ...)

        def forward(lora, rest, batch):
            return causal_lm_loss(nnx.merge(graphdef, lora, rest), batch)[0]

        def loss_fn(params, rest, batch, rng):
            return causal_lm_loss(nnx.merge(graphdef, params, rest), batch, dropout_rng=rng)[0], {}

        train = (loss_fn, jax.tree.map(jnp.copy, lora), rest)  # the train state is donated
        return forward, (lora, rest), train, _nbytes((lora, rest)), {}
    names = tuple(ADAPTERS) if setup.startswith("multi4") else (TRAINED,)
    specs = [ADAPTERS[n] for n in names]
    if setup == "multi4_r8":  # every adapter at the predictor's rank: no rank padding
        specs = [(ADAPTERS[TRAINED][0], ADAPTERS[TRAINED][1], *s[2:]) for s in specs]
    ml = apply_multi_lora(
        model, names, [s[0] for s in specs], [s[1] for s in specs], [s[2] for s in specs],
        ALL, head_trainable=[n for n, s in zip(names, specs) if s[3]],
    )  # fmt: skip

    def forward(bank, base, index, batch):
        return causal_lm_loss(ml.merge(bank, base, index), batch)[0]

    def loss_fn(params, constants, batch, rng):
        model = ml.merge_trainable(TRAINED, params, constants)
        return causal_lm_loss(model, batch, dropout_rng=rng)[0], {}

    own = {n: ml.adapter_nbytes(n) for n in names}
    extra = {"adapter_bytes": own, "bank_bytes": ml.adapter_nbytes(), "rank_max": ml.rank_max}
    args = (ml.bank, ml.base, ml.index(TRAINED))
    train = (loss_fn, ml.trainable(TRAINED), ml.constants(TRAINED))
    return forward, args, train, _nbytes((ml.bank, ml.base)), extra


def _temp(memory: dict, key: str) -> int:
    return (memory.get(key) or {}).get("temp_size_in_bytes") or 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--out", default="runs/bench/multi_lora.json")
    args = ap.parse_args(argv)
    p = PRESETS[args.preset]
    mesh = make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    cfg = preset_decoder_config(p)
    rng = np.random.default_rng(0)
    ids = rng.integers(3, p["vocab"], (p["batch"], p["seq"])).astype(np.int32)
    labels = ids.copy()
    labels[:, : p["seq"] // 2] = -100
    batch = {"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": labels}
    batch = jax.device_put(batch, data_sharding(mesh))
    tx = make_optimizer(OptimConfig(lr=1e-4, weight_decay=0.01, warmup_steps=10), 1000)

    runners, compile_s, memory, resident, extras = {}, {}, {}, {}, {}
    setups = p.get("setups", SETUPS)
    for setup in setups:
        forward, fwd_args, (loss_fn, params, constants), resident[setup], extras[setup] = build(
            setup, cfg
        )
        fwd, compile_s[f"{setup}/forward"] = compile_jitted(jax.jit(forward), *fwd_args, batch)
        state, shardings = create_state(params, tx, mesh)
        step = compile_step(tx, mesh, shardings, loss_fn=loss_fn)
        train, compile_s[f"{setup}/train"] = compile_jitted(step, state, constants, batch)
        memory[f"{setup}/forward"] = memory_bytes(fwd)
        memory[f"{setup}/train"] = memory_bytes(train)
        runners[f"{setup}/forward"] = lambda fwd=fwd, a=fwd_args: fwd(*a, batch)
        runners[f"{setup}/train"] = train_step_call(train, state, constants, batch)
        print(f"compiled {setup}", flush=True)

    samples = interleaved_samples(runners, rounds=p["rounds"], warmup=p["warmup"], iters=p["iters"])
    median = {k: float(np.median(v)) for k, v in samples.items()}
    fastest = {k: float(np.min(v)) for k, v in samples.items()}
    pairs = [("multi4", "multi1"), ("multi4_r8", "multi1"), ("multi4", "plain")]
    pairs = [(a, b) for a, b in pairs if a in setups and b in setups]
    ratio, ratio_min = {}, {}
    for a, b in pairs:
        for kind in ("forward", "train"):
            ratio[f"{a}_over_{b}/{kind}"] = median[f"{a}/{kind}"] / median[f"{b}/{kind}"]
            ratio_min[f"{a}_over_{b}/{kind}"] = fastest[f"{a}/{kind}"] / fastest[f"{b}/{kind}"]
    own4 = extras["multi4"]["adapter_bytes"]
    extra_adapters = sum(v for k, v in own4.items() if k != TRAINED)
    arg = {k: (m or {}).get("argument_size_in_bytes") for k, m in memory.items()}
    growth = {
        "resident_bytes": resident["multi4"] - resident["multi1"],
        "forward_argument_bytes": (arg["multi4/forward"] or 0) - (arg["multi1/forward"] or 0),
        "train_argument_bytes": (arg["multi4/train"] or 0) - (arg["multi1/train"] or 0),
        "forward_temp_bytes": _temp(memory, "multi4/forward") - _temp(memory, "multi1/forward"),
        "train_temp_bytes": _temp(memory, "multi4/train") - _temp(memory, "multi1/train"),
        "extra_adapters_own_bytes": extra_adapters,
        "rank_padding_bytes": extras["multi4"]["bank_bytes"] - sum(own4.values()),
    }
    result = {
        "benchmark": "multi_lora",
        "preset": args.preset,
        "config": p,
        "adapters": ADAPTERS,
        "trained_and_timed_adapter": TRAINED,
        "median_step_s": median,
        "p10_step_s": {k: float(np.percentile(v, 10)) for k, v in samples.items()},
        "p90_step_s": {k: float(np.percentile(v, 90)) for k, v in samples.items()},
        "min_step_s": fastest,
        "ratio": ratio,
        "ratio_of_min": ratio_min,
        "within_1_10x": {k: v <= 1.10 for k, v in ratio.items() if "multi1" in k},
        "memory_analysis": memory,
        "resident_bytes": resident,
        "adapters_bytes": {k: v for k, v in extras.items() if v},
        "memory_growth_4_vs_1": growth,
        "compile_s": compile_s,
        "environment": environment(mesh),
    }
    write_json(args.out, result)
    for k in runners:
        print(f"{k:18s} median {median[k] * 1e3:9.2f} ms   min {fastest[k] * 1e3:9.2f} ms")
    for k, v in ratio.items():
        print(f"{k:28s} x{v:.3f} (median)  x{ratio_min[k]:.3f} (min)")
    for k, v in growth.items():
        print(f"growth {k:26s} {v / 2**20:9.3f} MiB")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
