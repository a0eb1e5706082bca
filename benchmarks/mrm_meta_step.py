"""MRM meta-training throughput: the vmapped meta-step against a per-user loop, same run.

The per-user loop has the original code's structure (authors' `maml_train`): one user at a time,
each with its own forward/backward through the differentiable inner step, the loss buffer
combined by RPO, then one outer Adam update. Both are JAX and jitted per call; the loop pays one
dispatch per user, the vmapped step one per meta-batch.

    python benchmarks/mrm_meta_step.py --tasks 64 --dim 4096 --out runs/bench/mrm_meta_step.json
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from benchmarks.timing import compile_jitted, environment, time_calls, write_json
from configs import mrm as mrm_configs
from jaxmethods.data.synthetic_prefs import make_synthetic_corpus
from jaxmethods.methods.mrm.config import from_config_dict
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=256, help="users in the synthetic corpus")
    p.add_argument("--dim", type=int, default=4096, help="embedding size D")
    p.add_argument("--tasks", type=int, default=32, help="tasks_per_batch (users per meta-step)")
    p.add_argument("--pairs", type=int, nargs=2, default=(32, 64), help="pairs per user (lo hi)")
    p.add_argument("--inner_steps", type=int, default=1)
    p.add_argument("--hypergrad", default="second_order")
    p.add_argument("--embedding_dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--out", default="runs/bench/mrm_meta_step.json")
    args = p.parse_args()

    config = mrm_configs.get_config("bench")
    config.meta.tasks_per_batch = args.tasks
    config.meta.inner.steps = args.inner_steps
    config.meta.hypergrad = args.hypergrad
    cfg = from_config_dict(config)
    corpus, _ = make_synthetic_corpus(
        args.users, args.dim, pairs_per_user=tuple(args.pairs), convs_per_user=(4, 8), seed=0
    )
    seen, _ = corpus.seen_unseen(0)
    tasks = MetaTaskIterator(corpus, seen, tasks_per_batch=args.tasks, val_ratio=0.9, seed=0)
    batch = jax.tree.map(jnp.asarray, next(tasks))
    emb = jnp.asarray(corpus.embeddings, jnp.dtype(args.embedding_dtype))
    graphdef, params = split_model(PersonalizedReward(args.dim, (2,), rngs=nnx.Rngs(0)))
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))

    # Vmapped: the trainer's jitted step (donated state), one call per meta-batch.
    mesh = make_mesh({"data": 1, "fsdp": 1, "tensor": 1})
    state, shardings = create_state(jax.tree.map(jnp.copy, params), tx, mesh)
    step = compile_step(tx, mesh, shardings, grad_fn=make_meta_grad_fn(graphdef, cfg.meta))
    compiled, compile_s = compile_jitted(step, state, emb, batch)
    holder = {"state": state}

    def vmapped_call():
        holder["state"], metrics = compiled(holder["state"], emb, batch)
        return metrics["loss"]

    vmapped = time_calls(vmapped_call, iters=args.iters)

    # Per-user loop: per-user value_and_grad calls, RPO chain rule, one jitted outer update.
    apply = jax.jit(lambda s, g: _apply(tx, s, g), donate_argnums=(0,))
    loop_holder = {"state": TrainState.create(jax.tree.map(jnp.copy, params), tx)}

    def loop_call():
        s = loop_holder["state"]
        _, grads = per_user_loop_grads(graphdef, cfg.meta, s.params, batch, emb)
        loop_holder["state"] = apply(s, grads)
        return loop_holder["state"].step

    loop = time_calls(loop_call, iters=args.iters)
    users = args.tasks
    result = {
        "benchmark": "mrm_meta_step",
        "config": vars(args),
        "environment": environment(),
        "compile_s": compile_s,
        "vmapped": vmapped | {"users_per_s": users / vmapped["median_s"]},
        "per_user_loop": loop | {"users_per_s": users / loop["median_s"]},
        "speedup_median": loop["median_s"] / vmapped["median_s"],
    }
    write_json(args.out, result)
    print(
        f"{jax.devices()[0].device_kind}: vmapped {result['vmapped']['users_per_s']:.0f} users/s "
        f"(median {vmapped['median_s'] * 1e3:.2f} ms, p90 {vmapped['p90_s'] * 1e3:.2f} ms), "
        f"per-user loop {result['per_user_loop']['users_per_s']:.0f} users/s "
        f"(median {loop['median_s'] * 1e3:.2f} ms): {result['speedup_median']:.1f}x; "
        f"compile {compile_s:.2f} s -> {args.out}"
    )


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
