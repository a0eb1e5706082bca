"""Memory plan: per-device bytes of the sharded train step, compiled for abstract shapes.

Nothing is allocated: the model, its LoRA factors and the AdamW state are `jax.eval_shape`d,
the SFT step (`jaxmethods.train.compile_step`, the one every method trains through) is lowered
for `jax.ShapeDtypeStruct`s carrying their `NamedSharding`s and compiled on N fake CPU devices,
and XLA's memory analysis gives the per-device argument / output / alias / temp bytes.

    python benchmarks/memory_plan.py --out runs/bench/memory_plan.json \
        --markdown runs/bench/memory_plan.md                       # the full grid (slow)
    python benchmarks/memory_plan.py --models llama-3.2-1b --devices 8 --seqs 2048
    python benchmarks/memory_plan.py --check                       # plan vs measured RSS

The grid: models x {full fine-tune, LoRA r=16 on every linear} x remat {none, full} x FSDP over
{1, 8, 64} devices (mesh data=1, fsdp=N, tensor=1; one sequence per device) x sequence lengths.
Full fine-tune keeps fp32 master weights and AdamW moments; LoRA keeps the frozen base in bf16
and the factors and their moments in fp32; compute is bf16 in both, the CE is chunked.

Caveats, stated in the table: XLA:CPU is not XLA:GPU (fusion and scheduling differ; the GPU
compiler also overlaps collectives), and attention here is XLA's reference implementation, which
holds a [B, H, T, T] score matrix per layer that cuDNN's flash attention never materialises, so
long-sequence cells overestimate a GPU run by about that much (`attn_scores_bytes`, the bf16
scores of one layer). `--check` compares the plan of a model that fits in this machine's RAM with
the peak resident memory its step actually reaches on one CPU device.
"""

from __future__ import annotations

import argparse
import os
import sys

DEVICES_FLAG = "--xla_force_host_platform_device_count"


def _requested_devices(argv: list[str]) -> int:
    """The largest --devices value, read before jax is imported (the flag must be set first)."""
    counts = [1, 8, 64]
    for i, a in enumerate(argv):
        if a == "--devices" and i + 1 < len(argv):
            counts = [int(x) for x in argv[i + 1].split(",")]
        elif a.startswith("--devices="):
            counts = [int(x) for x in a.split("=", 1)[1].split(",")]
    return max(counts)


if __name__ == "__main__" and "jax" not in sys.modules:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    flags = os.environ.get("XLA_FLAGS", "")
    if DEVICES_FLAG not in flags:
        n = _requested_devices(sys.argv[1:])
        os.environ["XLA_FLAGS"] = f"{flags} {DEVICES_FLAG}={n}".strip()

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import resource  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from benchmarks.lm_step import make_sft_loss, random_batch  # noqa: E402
from benchmarks.timing import environment, memory_bytes, write_json  # noqa: E402
from jaxmethods.models.decoder import DecoderConfig, DecoderLM  # noqa: E402
from jaxmethods.models.lora import LoRAParam, apply_lora  # noqa: E402
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES  # noqa: E402
from jaxmethods.train.mesh import data_sharding, make_mesh  # noqa: E402
from jaxmethods.train.sharding import param_shardings  # noqa: E402
from jaxmethods.train.state import TrainState  # noqa: E402
from jaxmethods.train.step import state_shardings  # noqa: E402
from jaxmethods.train.trainer import compile_step  # noqa: E402

GIB = 1 << 30
CAPACITY_GB = {"H100 (80 GB)": 80e9, "H200 (141 GB)": 141e9}
LORA_TARGETS = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"

_LLAMA3_ROPE = {"rope_type": "llama3", "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}  # fmt: skip
# Architectures from each checkpoint's config.json (HF ids in the comments).
MODELS: dict[str, dict[str, Any]] = {
    # meta-llama/Llama-3.2-1B
    "llama-3.2-1b": dict(family="llama", vocab_size=128256, hidden_size=2048,
                         intermediate_size=8192, num_layers=16, num_heads=32, num_kv_heads=8,
                         head_dim=64, rope_theta=500000.0, tie_word_embeddings=True,
                         max_position_embeddings=131072,
                         rope_scaling={**_LLAMA3_ROPE, "factor": 32.0}),
    # meta-llama/Llama-3.1-8B
    "llama-3.1-8b": dict(family="llama", vocab_size=128256, hidden_size=4096,
                         intermediate_size=14336, num_layers=32, num_heads=32, num_kv_heads=8,
                         head_dim=128, rope_theta=500000.0, max_position_embeddings=131072,
                         rope_scaling={**_LLAMA3_ROPE, "factor": 8.0}),
    # Qwen/Qwen2.5-7B
    "qwen2.5-7b": dict(family="qwen2", vocab_size=152064, hidden_size=3584,
                       intermediate_size=18944, num_layers=28, num_heads=28, num_kv_heads=4,
                       head_dim=128, rope_theta=1000000.0, rms_norm_eps=1e-6,
                       max_position_embeddings=131072),
    # meta-llama/Llama-2-13b-hf
    "llama-2-13b": dict(family="llama", vocab_size=32000, hidden_size=5120,
                        intermediate_size=13824, num_layers=40, num_heads=40, num_kv_heads=40,
                        head_dim=128, rope_theta=10000.0, rms_norm_eps=1e-5,
                        max_position_embeddings=4096),
    # CI's smoke cell.
    "tiny": dict(family="llama", vocab_size=256, hidden_size=64, intermediate_size=128,
                 num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16),
    # A model small enough to run on this machine: the --check cell (about 170 M parameters).
    "check-170m": dict(family="llama", vocab_size=32000, hidden_size=1024,
                       intermediate_size=2816, num_layers=8, num_heads=16, num_kv_heads=4,
                       head_dim=64),
}  # fmt: skip


def model_config(name: str, mode: str, remat: str, *, compute_dtype: str) -> DecoderConfig:
    """The decoder config of one grid cell (scanned layers: one compiled layer body)."""
    base_dtype = "bfloat16" if mode == "lora" else "float32"
    return DecoderConfig(
        dtype=compute_dtype,
        param_dtype=base_dtype,
        scan_layers=True,
        remat=remat,
        attention_impl="xla",
        **MODELS[name],
    )


def abstract_model(cfg: DecoderConfig, mode: str, lora_rank: int) -> DecoderLM:
    """The model as `ShapeDtypeStruct` leaves (no parameter is allocated)."""

    def build() -> DecoderLM:
        model = DecoderLM(cfg, rngs=nnx.Rngs(0))
        if mode == "lora":
            apply_lora(model, lora_rank, 2.0 * lora_rank, target_modules=LORA_TARGETS)
        return model

    return nnx.eval_shape(build)


def _with_sharding(tree: Any, shardings: Any) -> Any:
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
    )


def plan_cell(
    name: str, mode: str, remat: str, devices: int, seq: int, *, chunk: int, lora_rank: int,
    compute_dtype: str = "bfloat16", batch_per_device: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """Lowers and compiles one cell; returns its per-device bytes and the compile time."""
    cfg = model_config(name, mode, remat, compute_dtype=compute_dtype)
    model = abstract_model(cfg, mode, lora_rank)
    trainable = LoRAParam if mode == "lora" else nnx.Param
    graphdef, params, rest = nnx.split(model, trainable, ...)
    mesh = make_mesh({"data": 1, "fsdp": devices, "tensor": 1}, devices=jax.devices()[:devices])
    tx = optax.adamw(1e-5, weight_decay=0.0)
    state = jax.eval_shape(lambda p: TrainState.create(p, tx), params)
    p_shard = param_shardings(params, mesh, DECODER_SHARDING_RULES)
    s_shard = state_shardings(state, p_shard, mesh)
    r_shard = param_shardings(rest, mesh, DECODER_SHARDING_RULES)
    batch_np = random_batch(cfg.replace(vocab_size=8), devices * batch_per_device, 8, 0)
    b = devices * batch_per_device
    batch = {
        k: jax.ShapeDtypeStruct((b, seq), v.dtype, sharding=data_sharding(mesh))
        for k, v in batch_np.items()
    }
    jitted = compile_step(
        tx, mesh, s_shard, loss_fn=make_sft_loss(graphdef, chunk), constants_shardings=r_shard
    )
    t0 = time.perf_counter()
    # Traced under the mesh, so the chunked CE pins its batch axis (batch_sharding_constraint).
    with jax.set_mesh(mesh):
        compiled = jitted.lower(
            _with_sharding(state, s_shard), _with_sharding(rest, r_shard), batch
        ).compile()
    compile_s = time.perf_counter() - t0
    mem = memory_bytes(compiled) or {}
    peak = (
        mem.get("argument_size_in_bytes", 0)
        + mem.get("output_size_in_bytes", 0)
        - mem.get("alias_size_in_bytes", 0)
        + mem.get("temp_size_in_bytes", 0)
    )
    count = lambda tree: int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))
    return {
        "model": name,
        "mode": mode,
        "remat": remat,
        "devices": devices,
        "seq": seq,
        "batch_per_device": batch_per_device,
        "trainable_params": count(params),
        "total_params": count(params) + count(rest),
        "memory": mem,
        "peak_bytes_per_device": int(peak),
        "attn_scores_bytes": int(batch_per_device * cfg.num_heads * seq * seq * 2),
        "compile_s": compile_s,
        "fits": {k: bool(peak <= v) for k, v in CAPACITY_GB.items()},
        "_compiled": compiled,
    }


def measured_check(chunk: int, lora_rank: int) -> dict[str, Any]:
    """Plans the `check-170m` full fine-tune at T=512 on 1 CPU device (fp32 compute, as CPU
    runs it), then runs that step for real and reads the process's peak resident memory."""
    seq = 512
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cell = plan_cell(
        "check-170m", "ft", "none", 1, seq, chunk=chunk, lora_rank=lora_rank,
        compute_dtype="float32",
    )  # fmt: skip
    compiled = cell.pop("_compiled")
    cfg = model_config("check-170m", "ft", "none", compute_dtype="float32")
    model = DecoderLM(cfg, rngs=nnx.Rngs(0))
    _, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adamw(1e-5, weight_decay=0.0)
    state = TrainState.create(params, tx)
    del model
    batch = random_batch(cfg, 1, seq, 0)
    state, metrics = compiled(state, rest, batch)
    jax.block_until_ready(metrics)
    state, metrics = compiled(state, rest, batch)
    jax.block_until_ready((state, metrics))
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cell["measured_peak_rss_bytes"] = int(rss1)
    cell["rss_before_bytes"] = int(rss0)
    cell["measured_growth_bytes"] = int(rss1 - rss0)
    cell["plan_over_measured_growth"] = cell["peak_bytes_per_device"] / max(rss1 - rss0, 1)
    return cell


def markdown(cells: list[dict[str, Any]]) -> str:
    """One row per cell: GiB per device and whether it fits an H100 / H200."""
    head = (
        "| model | mode | remat | devices | seq | params (trainable) | GiB / device | "
        "attn scores GiB (1 layer) | H100 80 GB | H200 141 GB |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for c in cells:
        fits = lambda k, c=c: "yes" if c["fits"][k] else "no"
        rows.append(
            f"| {c['model']} | {c['mode']} | {c['remat']} | {c['devices']} | {c['seq']} | "
            f"{c['total_params'] / 1e9:.2f} B ({c['trainable_params'] / 1e6:.1f} M) | "
            f"{c['peak_bytes_per_device'] / GIB:.1f} | {c['attn_scores_bytes'] / GIB:.2f} | "
            f"{fits('H100 (80 GB)')} | {fits('H200 (141 GB)')} |"
        )
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="llama-3.2-1b,llama-3.1-8b,qwen2.5-7b,llama-2-13b")
    p.add_argument("--modes", default="ft,lora")
    p.add_argument("--remat", default="none,full")
    p.add_argument("--devices", default="1,8,64")
    p.add_argument("--seqs", default="512,2048,4096")
    p.add_argument("--chunk", type=int, default=1024, help="CE chunk (0: full logits)")
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--check", action="store_true", help="plan vs measured RSS on one device")
    p.add_argument("--out", default="runs/bench/memory_plan.json")
    p.add_argument("--markdown", default=None)
    args = p.parse_args(argv)
    split = lambda s: [x for x in s.split(",") if x]
    devices = [int(d) for d in split(args.devices)]
    if max(devices) > len(jax.devices()):
        raise SystemExit(
            f"memory_plan: --devices asks for {max(devices)} devices but jax sees "
            f"{len(jax.devices())}; set XLA_FLAGS={DEVICES_FLAG}={max(devices)} before jax starts"
        )
    cells: list[dict[str, Any]] = []
    if not args.check:
        for name in split(args.models):
            if name not in MODELS:
                raise SystemExit(f"memory_plan: unknown model {name!r}; known: {sorted(MODELS)}")
            for mode in split(args.modes):
                for remat in split(args.remat):
                    for n in devices:
                        for seq in [int(s) for s in split(args.seqs)]:
                            cell = plan_cell(
                                name, mode, remat, n, seq, chunk=args.chunk,
                                lora_rank=args.lora_rank,
                            )  # fmt: skip
                            cell.pop("_compiled")
                            cells.append(cell)
                            write_json(args.out, {"benchmark": "memory_plan", "partial": True,
                                                  "cells": cells})  # fmt: skip
                            print(
                                f"{name:13s} {mode:4s} remat={remat:4s} devices={n:3d} "
                                f"seq={seq:5d}: {cell['peak_bytes_per_device'] / GIB:8.2f} "
                                f"GiB/device (compile {cell['compile_s']:.1f} s)",
                                flush=True,
                            )
    check = measured_check(args.chunk, args.lora_rank) if args.check else None
    if check is not None:
        print(
            f"check-170m ft T=512, 1 CPU device: plan {check['peak_bytes_per_device'] / GIB:.2f} "
            f"GiB, measured RSS growth {check['measured_growth_bytes'] / GIB:.2f} GiB "
            f"(ratio {check['plan_over_measured_growth']:.2f})"
        )
    payload = {
        "benchmark": "memory_plan",
        "env": environment(),
        "chunk": args.chunk,
        "lora_rank": args.lora_rank,
        "cells": cells,
        "check": check,
    }
    write_json(args.out, payload)
    if args.markdown and cells:
        os.makedirs(os.path.dirname(args.markdown) or ".", exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(markdown(cells))
    return payload


if __name__ == "__main__":
    main()
