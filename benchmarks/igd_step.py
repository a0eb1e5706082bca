"""IGD benchmarks: tuning-step overhead against plain SFT, and constrained beam-search throughput.

1. Train step: the IGD step (token-weighted CE normalised by sum(w)) against the plain SFT step
   (token-mean CE) on the same model, batch and optimizer, in the same process. The weights are
   precomputed inputs, so the expected overhead is ~0; the host cost of computing them (trie
   lookups) is reported per example.
2. Decoding: beam search with the IGD processor (trie constraint + IG rescaling), with the bare
   `PrefixTrieConstraint`, and unconstrained, on the same model and prompts (prompts / s).

    python benchmarks/igd_step.py                 # CPU-sized defaults
    python benchmarks/igd_step.py --preset gpu    # larger model / batch / catalog
Writes JSON to --out (default runs/bench/igd_step.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks.timing import compile_jitted, environment, time_calls, write_json, xla_flops
from jaxmethods.generate.beam_search import build_beam_search
from jaxmethods.losses import next_token_labels, token_cross_entropy_from_hidden, token_mean_nll
from jaxmethods.methods.igd.decoding import IGDLogitsProcessor, item_trie_constraint
from jaxmethods.methods.igd.loss import make_loss_fn
from jaxmethods.methods.igd.trie import ItemTrie
from jaxmethods.models.decoder import DecoderConfig, DecoderLM
from jaxmethods.train.state import TrainState
from jaxmethods.train.step import make_train_step

PRESETS = {
    "smoke": dict(hidden=32, layers=1, heads=2, vocab=256, batch=2, seq=32, items=50,
                  prompt=16, beams=2, new_tokens=4, decode_batch=2, repeats=1, rounds=1,
                  decode_modes=("with_eos",)),  # the suite's smoke tier: fewer compiles
    "cpu": dict(hidden=128, layers=2, heads=4, vocab=4096, batch=16, seq=256, items=5000,
                prompt=96, beams=10, new_tokens=16, decode_batch=8, repeats=10, rounds=3),
    "gpu": dict(hidden=1024, layers=8, heads=16, vocab=32768, batch=64, seq=512, items=40000,
                prompt=256, beams=10, new_tokens=32, decode_batch=32, repeats=10, rounds=3),
}  # fmt: skip


def synthetic_catalog(n: int, vocab: int, rng) -> list[list[int]]:
    """Titles as token ids sharing long prefixes (franchises), ending in "\\n" (3) + EOS (2)."""
    heads = [
        list(rng.integers(8, vocab, size=int(rng.integers(2, 6)))) for _ in range(max(n // 20, 1))
    ]
    items = set()
    while len(items) < n:
        head = heads[int(rng.integers(0, len(heads)))]
        tail = rng.integers(8, vocab, size=int(rng.integers(1, 6)))
        items.add((*head, *map(int, tail), 3, 2))
    return [list(x) for x in items]


def bench_steps(p: dict, model: DecoderLM, rng) -> dict:
    graphdef, params, frozen = nnx.split(model, nnx.Param, ...)
    tx = optax.adamw(1e-4)
    b, t = p["batch"], p["seq"]
    ids = rng.integers(4, p["vocab"], (b, t))
    target = np.arange(t)[None, :] >= t - 24  # HF labels: the last 24 tokens are the target
    batch = {
        "input_ids": jnp.asarray(ids, jnp.int32),
        "attention_mask": jnp.ones((b, t), bool),
        "labels": jnp.asarray(np.where(target, ids, -100), jnp.int32),
        "weights": jnp.asarray(target * np.where(rng.random((b, t)) < 0.6, 0.1, 1.0), jnp.float32),
    }
    igd_loss = make_loss_fn(graphdef)

    def sft_loss(params, base, batch, rng):
        m = nnx.merge(graphdef, params, base)
        h = m.hidden_states(batch["input_ids"], batch["attention_mask"])
        labels = next_token_labels(batch["labels"])
        ce, mask = token_cross_entropy_from_hidden(h, m.lm_head_kernel(), labels, chunk_size=256)
        return token_mean_nll(ce, mask), {}

    steps, states, flops, compile_s = {}, {}, {}, {}
    for name, loss in (("sft", sft_loss), ("igd", igd_loss)):
        states[name] = TrainState.create(jax.tree.map(jnp.copy, params), tx)
        jitted = jax.jit(make_train_step(loss, tx), donate_argnums=(0,))
        steps[name], compile_s[name] = compile_jitted(jitted, states[name], frozen, batch)
        flops[name] = xla_flops(steps[name])

    def call(name):
        states[name], m = steps[name](states[name], frozen, batch)
        return m["loss"]

    # Several short alternating rounds, so drift on a shared machine does not favour either side.
    samples = {name: [] for name in steps}
    for round_ in range(p["rounds"]):
        for name in steps:
            stats = time_calls(lambda n=name: call(n), warmup=2 if round_ == 0 else 0,
                               iters=p["repeats"])  # fmt: skip
            samples[name] += stats["samples_s"]
    out = {
        name: {
            "median_s": float(np.median(ts)),
            "min_s": min(ts),
            "samples": len(ts),
            "compile_s": compile_s[name],
            "xla_flops": flops[name],
        }
        for name, ts in samples.items()
    }
    # Load-independent: XLA's FLOP count of the two compiled steps (the chunked log-softmax scan
    # body is counted once in both, so the ratio is exact for the extra work of the weighting).
    if flops["sft"] and flops["igd"]:
        out["igd_over_sft_flops"] = flops["igd"] / flops["sft"]
    out["igd_over_sft_min"] = out["igd"]["min_s"] / out["sft"]["min_s"]
    out["igd_over_sft_median"] = out["igd"]["median_s"] / out["sft"]["median_s"]
    out["tokens_per_s_igd"] = b * t / out["igd"]["median_s"]
    return out


def bench_weights(items: list[list[int]], trie: ItemTrie, rng) -> dict:
    """Host cost of precomputing IG (hence weights) for targets drawn from the catalog."""
    targets = [items[int(i)] for i in rng.integers(0, len(items), 20000)]
    t0 = time.perf_counter()
    for x in targets:
        trie.token_ig(x)
    per = (time.perf_counter() - t0) / len(targets)
    return {"us_per_target": per * 1e6}


def bench_decode(p: dict, model: DecoderLM, items: list[list[int]], freqs, rng) -> dict:
    ids = rng.integers(8, p["vocab"], (p["decode_batch"], p["prompt"])).astype(np.int32)
    # "fixed_steps": no EOS and every title padded past max_new_tokens with a forced token, so
    # every variant runs all max_new_tokens steps (the per-step cost of the constraint);
    # "with_eos": the real catalog, where constrained beams finish at the end of a title.
    depth = p["new_tokens"] + 2
    long_items = [x[:-2] + [5] * max(depth - len(x), 0) + x[-2:] for x in items]
    out = {}
    modes = {"fixed_steps": (None, long_items), "with_eos": (2, items)}
    for mode in p.get("decode_modes", tuple(modes)):
        eos, catalog = modes[mode]
        trie = ItemTrie(catalog, freqs)
        procs = {
            "unconstrained": None,
            "trie": item_trie_constraint(trie, p["vocab"]),
            "igd_alpha0.2": IGDLogitsProcessor.from_trie(trie, vocab_size=p["vocab"], alpha=0.2),
        }
        res = {}
        for name, proc in procs.items():
            fn, args = build_beam_search(
                model, ids, None, max_new_tokens=p["new_tokens"], num_beams=p["beams"],
                num_return_sequences=p["beams"], length_penalty=0.0, eos_token_id=eos,
                pad_token_id=0, logits_processor=proc,
            )  # fmt: skip
            compiled, compile_s = compile_jitted(fn, *args)
            r = time_calls(lambda c=compiled, a=args: c(*a), warmup=1, iters=p["repeats"])
            res[name] = {
                "median_s": r["median_s"],
                "min_s": r["min_s"],
                "compile_s": compile_s,
                "prompts_per_s": p["decode_batch"] / r["min_s"],
            }
        # Ratios of the fastest calls: the least disturbed by other load on a shared machine.
        base = res["unconstrained"]["min_s"]
        res["trie_over_unconstrained"] = res["trie"]["min_s"] / base
        res["igd_over_unconstrained"] = res["igd_alpha0.2"]["min_s"] / base
        res["igd_over_trie"] = res["igd_alpha0.2"]["min_s"] / res["trie"]["min_s"]
        out[mode] = res
    return out


def summarise(result: dict) -> dict:
    """The headline ratios and rates of a result."""
    step = result["train_step"]
    out = {
        "device": result["environment"]["device_kind"],
        "igd_over_sft_median": step["igd_over_sft_median"],
        "igd_over_sft_min": step["igd_over_sft_min"],
        "igd_over_sft_flops": step.get("igd_over_sft_flops"),
        "tokens_per_s_igd": step["tokens_per_s_igd"],
        "weights_us_per_target": result["weights"]["us_per_target"],
        "trie_build_s": result["trie"]["build_s"],
    }
    for mode, res in result.get("decode", {}).items():
        for key in ("trie_over_unconstrained", "igd_over_unconstrained", "igd_over_trie"):
            out[f"{mode}/{key}"] = res[key]
        for name in ("unconstrained", "trie", "igd_alpha0.2"):
            out[f"{mode}/{name}_prompts_per_s"] = res[name]["prompts_per_s"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--out", default="runs/bench/igd_step.json")
    parser.add_argument("--skip-decode", action="store_true")
    args = parser.parse_args(argv)
    p = PRESETS[args.preset]
    rng = np.random.default_rng(0)
    cfg = DecoderConfig.tiny(
        vocab_size=p["vocab"], hidden_size=p["hidden"], intermediate_size=4 * p["hidden"],
        num_layers=p["layers"], num_heads=p["heads"], num_kv_heads=p["heads"] // 2,
        head_dim=p["hidden"] // p["heads"], max_position_embeddings=2 * p["seq"] + p["new_tokens"],
    )  # fmt: skip
    model = DecoderLM(cfg, nnx.Rngs(0))
    items = synthetic_catalog(p["items"], p["vocab"], rng)
    t0 = time.perf_counter()
    freqs = rng.zipf(1.3, size=len(items)).clip(max=10**6)
    trie = ItemTrie(items, freqs)
    result = {
        "environment": environment(),
        "preset": args.preset,
        "params": p,
        "trie": {"items": len(items), "nodes": trie.num_nodes, "build_s": time.perf_counter() - t0,
                 "max_children": trie.max_children},
        "weights": bench_weights(items, trie, rng),
        "train_step": bench_steps(p, model, rng),
    }  # fmt: skip
    if not args.skip_decode:
        result["decode"] = bench_decode(p, model, items, freqs, rng)
    write_json(args.out, result)
    print(json.dumps(summarise(result), indent=2))


if __name__ == "__main__":
    main()
