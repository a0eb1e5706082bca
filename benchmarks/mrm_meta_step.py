"""MRM meta-training throughput: the vmapped meta-step against per-user loops, same run.

For each meta-batch size (`--tasks 2,16,64`; 2 is the paper scripts' `tasks_per_batch`), on the
same synthetic embeddings, meta-batch and initial parameters, timed in alternating rounds
(medians; `benchmarks.timing.interleaved_samples`):

  vmapped     the trainer's jitted step (`make_meta_grad_fn`, donated state), one call per
              meta-batch;
  jax loop    the original code's structure in JAX (`per_user_loop_grads`): one jitted
              value_and_grad call per user, RPO's chain rule, one jitted outer update;
  torch       the authors' structure in PyTorch (`benchmarks/mrm_torch_baseline.py`): a per-user
              Python loop with a differentiable inner Adam step written with `torch.func`, RPO,
              backward, clip, Adam. Skipped, with a line saying so, when torch is not importable
              (it is an optional extra: run this script with a Python that has torch, e.g.
              `/work/torchenv/bin/python`).

Each row also records the work of the vmapped step: the embedding rows it gathers (each
user's distinct valid rows, `batch["rows"]`, padded to the widest user), XLA's FLOP count and
the bytes it must move (gather read + write, the forward and the backward GEMM each read the
gathered rows once), with the achieved GFLOP/s and GB/s. `--profile N` adds the op-time profile
of N vmapped steps by source line (`benchmarks.timing.profile_ops`).

    python benchmarks/mrm_meta_step.py --out runs/bench/mrm_meta_step.json
    python benchmarks/mrm_meta_step.py --tasks 64 --dim 256 --pairs 32 64
    python benchmarks/mrm_meta_step.py --tasks 2,16 --torch_threads 1 --profile 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
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
    interleaved_samples,
    profile_ops,
    write_json,
    xla_flops,
)
from configs import mrm as mrm_configs
from jaxmethods.data.synthetic_prefs import make_synthetic_corpus
from jaxmethods.methods.mrm.config import MetaConfig, from_config_dict
from jaxmethods.methods.mrm.objective import (
    make_meta_grad_fn,
    per_user_loop_grads,
    split_model,
)
from jaxmethods.methods.mrm.tasks import MetaTaskIterator
from jaxmethods.models.personalized_reward import PersonalizedReward
from jaxmethods.train.mesh import make_mesh
from jaxmethods.train.state import TrainState
from jaxmethods.train.trainer import compile_step, create_state

try:
    from benchmarks.mrm_torch_baseline import BaselineConfig, TorchMetaStep
except ImportError as e:  # torch is an optional extra
    TorchMetaStep = None
    TORCH_MISSING = f"{type(e).__name__}: {e}"

OUTER_LR = 1e-3


def torch_config(meta: MetaConfig, outer_lr: float) -> Any:
    """The torch baseline's hyper-parameters from ours (same inner Adam, RPO and outer step)."""
    inner = meta.inner
    if inner.optimizer != "adam" or inner.eps_root:
        raise ValueError("the torch baseline implements the inner Adam with eps_root = 0 only")
    return BaselineConfig(
        inner_lr=inner.lr, inner_steps=inner.steps, b1=inner.b1, b2=inner.b2, eps=inner.eps,
        tail_frac=meta.rpo_tail_frac, gamma=meta.rpo_gamma, outer_lr=outer_lr, clip_norm=1.0,
    )  # fmt: skip


def bench_setting(args: argparse.Namespace, tasks: int) -> dict[str, Any]:
    """Times the three variants for one meta-batch size; users/s from the medians."""
    config = mrm_configs.get_config("bench")
    config.meta.tasks_per_batch = tasks
    config.meta.inner.steps = args.inner_steps
    config.meta.hypergrad = args.hypergrad
    cfg = from_config_dict(config)
    corpus, _ = make_synthetic_corpus(
        max(args.users, 4 * tasks), args.dim, pairs_per_user=tuple(args.pairs),
        convs_per_user=(4, 8), seed=0,
    )  # fmt: skip
    seen, _ = corpus.seen_unseen(0)
    tasks_it = MetaTaskIterator(corpus, seen, tasks_per_batch=tasks, val_ratio=0.9, seed=0)
    batch_np = next(tasks_it)
    batch = jax.tree.map(jnp.asarray, batch_np)
    emb = jnp.asarray(corpus.embeddings, jnp.dtype(args.embedding_dtype))
    graphdef, params = split_model(PersonalizedReward(args.dim, (2,), rngs=nnx.Rngs(0)))
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(OUTER_LR))

    # Vmapped: the trainer's jitted step (donated state), one call per meta-batch.
    mesh = make_mesh({"data": 1, "fsdp": 1, "tensor": 1})
    state, shardings = create_state(jax.tree.map(jnp.copy, params), tx, mesh)
    step = compile_step(tx, mesh, shardings, grad_fn=make_meta_grad_fn(graphdef, cfg.meta))
    compiled, compile_s = compile_jitted(step, state, emb, batch)
    holder = {"state": state}

    def vmapped_call():
        holder["state"], metrics = compiled(holder["state"], emb, batch)
        return metrics["loss"]

    # JAX per-user loop: per-user value_and_grad calls, RPO chain rule, one jitted outer update.
    apply = jax.jit(lambda s, g: _apply(tx, s, g), donate_argnums=(0,))
    loop_holder = {"state": TrainState.create(jax.tree.map(jnp.copy, params), tx)}

    def loop_call():
        s = loop_holder["state"]
        _, grads = per_user_loop_grads(graphdef, cfg.meta, s.params, batch, emb)
        loop_holder["state"] = apply(s, grads)
        return loop_holder["state"].step

    calls = {"vmapped": vmapped_call, "jax_loop": loop_call}
    torch_note = None
    if TorchMetaStep is None or args.no_torch:
        torch_note = "skipped: --no_torch" if args.no_torch else f"skipped: {TORCH_MISSING}"
    else:
        import torch

        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        (kernel,) = jax.tree.leaves(params["base"])
        (theta,) = jax.tree.leaves(params["theta_w"])
        peer = TorchMetaStep(
            np.asarray(emb, np.float32), [np.asarray(kernel)], np.asarray(theta),
            torch_config(cfg.meta, OUTER_LR),
        )  # fmt: skip
        calls["torch"] = lambda: peer(batch_np)
    samples = interleaved_samples(calls, rounds=args.rounds, warmup=2, iters=args.iters)
    row: dict[str, Any] = {
        "name": f"{tasks}_users",
        "tasks": tasks,
        "dim": args.dim,
        "pairs": list(args.pairs),
        "compile_s": compile_s,
    }
    for name, times in samples.items():
        median = statistics.median(times)
        row[name] = {
            "median_s": median, "p90_s": float(np.percentile(times, 90)),
            "users_per_s": tasks / median, "samples_s": times,
        }  # fmt: skip
    row["work"] = step_work(batch_np, args.dim, compiled, row["vmapped"]["median_s"])
    if args.profile:
        row["profile"] = profile_ops(vmapped_call, compiled.as_text(), iters=args.profile)
    row["speedup_vs_jax_loop"] = row["jax_loop"]["median_s"] / row["vmapped"]["median_s"]
    if "torch" in row:
        row["speedup_vs_torch"] = row["torch"]["median_s"] / row["vmapped"]["median_s"]
    else:
        row["torch"] = torch_note
    return row


def step_work(batch: dict, dim: int, compiled: Any, seconds: float) -> dict[str, Any]:
    """What one vmapped step must do: rows gathered, FLOPs, bytes moved, and the rates achieved.

    Bytes: the gather reads and writes every gathered row (float32), and the forward GEMM
    (φ = X W) and the backward GEMM (dWᵀ = dφᵀ X) each read X once; the table itself is not
    read beyond those rows. FLOPs: XLA's cost analysis (no loops in this step besides the
    one-iteration inner scan).
    """
    rows = int(np.asarray(batch["rows"]).size)
    valid = int(sum(np.asarray(batch[s][2]).sum() * 2 for s in ("support", "query")))
    moved = 4 * rows * dim * 4
    flops = xla_flops(compiled)
    return {
        "rows_gathered": rows,
        "valid_slots": valid,
        "bytes_moved": moved,
        "xla_flops": flops,
        "gflops_per_s": None if flops is None else flops / seconds / 1e9,
        "gbytes_per_s": moved / seconds / 1e9,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=256, help="users in the synthetic corpus")
    p.add_argument("--dim", type=int, default=4096, help="embedding size D")
    p.add_argument("--tasks", default="2,16,64", help="users per meta-step, comma-separated")
    p.add_argument("--pairs", type=int, nargs=2, default=(80, 80), help="pairs per user (lo hi)")
    p.add_argument("--inner_steps", type=int, default=1)
    p.add_argument("--hypergrad", default="second_order")
    p.add_argument("--embedding_dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--iters", type=int, default=5, help="timed calls per round and variant")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    p.add_argument("--no_torch", action="store_true", help="skip the PyTorch baseline")
    p.add_argument(
        "--torch_threads", type=int, default=0,
        help="torch CPU threads (0: torch's default); 1 avoids OpenMP spin-waiting on a busy host",
    )  # fmt: skip
    p.add_argument("--profile", type=int, default=0, help="profile N vmapped steps by source")
    p.add_argument("--out", default="runs/bench/mrm_meta_step.json")
    args = p.parse_args(argv)

    rows = []
    for tasks in [int(t) for t in str(args.tasks).split(",") if t]:
        row = bench_setting(args, tasks)
        rows.append(row)
        torch_part = (
            f"torch {row['torch']['users_per_s']:.0f} users/s "
            f"({row['torch']['median_s'] * 1e3:.2f} ms) -> {row['speedup_vs_torch']:.1f}x"
            if isinstance(row["torch"], dict)
            else f"torch {row['torch']}"
        )
        print(
            f"{jax.devices()[0].device_kind}, {tasks} users/step, D={args.dim}: vmapped "
            f"{row['vmapped']['users_per_s']:.0f} users/s "
            f"({row['vmapped']['median_s'] * 1e3:.2f} ms), jax loop "
            f"{row['jax_loop']['users_per_s']:.0f} users/s "
            f"({row['speedup_vs_jax_loop']:.1f}x), {torch_part}",
            flush=True,
        )
        w = row["work"]
        print(
            f"  vmapped step: {w['rows_gathered']} rows gathered ({w['valid_slots']} valid "
            f"slots), {w['bytes_moved'] / 1e6:.0f} MB moved -> {w['gbytes_per_s']:.1f} GB/s, "
            f"{(w['gflops_per_s'] or 0):.2f} GFLOP/s",
            flush=True,
        )
        for r in (row.get("profile") or {}).get("by_source", [])[:6]:
            print(f"  profile {r['share'] * 100:5.1f}% {r['s'] * 1e3:8.2f} ms "
                  f"{'bwd' if r['backward'] else 'fwd'} {r['source']}")  # fmt: skip
    result = {
        "benchmark": "mrm_meta_step",
        "config": vars(args),
        "environment": environment(),
        "load_average": os.getloadavg(),
        "results": rows,
    }
    write_json(args.out, result)
    print(f"-> {args.out}")


def _apply(tx, state: TrainState, grads) -> TrainState:
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return TrainState(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        opt_state=opt_state,
        rng=state.rng,
    )


if __name__ == "__main__":
    main()
