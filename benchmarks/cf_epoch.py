"""CF scaling study: training-epoch and evaluation time per model and embedding size.

For every (model, dim): the jitted whole-epoch program (device-side shuffling and negative
sampling, `lax.scan` over batches) and the full-sort evaluation, compiled apart from running and
timed over several calls; with torch installed, a straightforward PyTorch implementation of the
same model on the same data (benchmarks/cf_torch_baseline.py) in the same run, and the ratio.
`--packed` also times one vmapped group of all the small sizes against running them one by one.

    python benchmarks/cf_epoch.py --models bpr lightgcn --dims 64 1024 --out runs/bench/cf_epoch.json

`--peer recbole` times RecBole 1.2.1 itself (`Trainer._train_epoch`, its own data loader and
negative sampler; the `recbole` extra, in an environment with torch) on the same RecBole atomic
file, alternating epochs with ours (`--rounds` rounds of `--iters` epochs each), medians. Without
`--data_path` the ML-100K-sized synthetic interactions are written to an atomic file first, so
both sides read the same interactions and split them 8:1:1 the same way.

    python benchmarks/cf_epoch.py --peer recbole --models bpr --dims 64 --rounds 5
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import (
    compile_jitted,
    environment,
    interleaved_samples,
    profile_ops,
    time_calls,
    write_json,
)
from configs import cf_scaling as cf_configs
from jaxmethods.data.recsys import load_cf_split
from jaxmethods.methods.cf_scaling.config import from_config_dict
from jaxmethods.methods.cf_scaling.plan import Group, Replica
from jaxmethods.methods.cf_scaling.prepare import PreparedData
from jaxmethods.methods.cf_scaling.trainer import build_group_fns, eval_chunk_size
from jaxmethods.train.mesh import make_mesh, replicated


def epoch_call(cfg, group: Group, data: PreparedData, mesh):
    """`(one_epoch, compile_s)`: the compiled whole-epoch program of a group, as a call."""
    with jax.set_mesh(mesh):
        fns = build_group_fns(cfg, group, data, mesh)
        keys = jnp.stack([jax.random.PRNGKey(r.seed) for r in group.replicas])
        pairs, graph, keys = jax.device_put(
            (data.pairs, data.graph if fns.mdef.uses_graph else None, keys), replicated(mesh)
        )
        state = fns.init_fn()
        epoch = jnp.int32(0)
        compiled, compile_s = compile_jitted(fns.epoch_fn, state, keys, epoch, pairs, graph)
    holder = {"state": state}

    def one_epoch():
        holder["state"], metrics = compiled(holder["state"], keys, epoch, pairs, graph)
        return metrics

    return one_epoch, compile_s


def write_atomic(split, data_root: str, name: str) -> str:
    """Writes every interaction of `split` (train + valid + test) as the RecBole atomic file
    `data_root/name/name.inter` (RecBole's `data_path` layout); returns `data_root/name`."""
    folder = os.path.join(data_root, name)
    os.makedirs(folder, exist_ok=True)
    users = np.concatenate([split.train.user, split.valid.user, split.test.user])
    items = np.concatenate([split.train.item, split.valid.item, split.test.item])
    with open(os.path.join(folder, f"{name}.inter"), "w") as f:
        f.write("user_id:token\titem_id:token\n")
        f.writelines(f"u{u}\ti{i}\n" for u, i in zip(users.tolist(), items.tolist()))
    return folder


def peer_recbole(args, cfg, mesh) -> list[dict]:
    """Ours against RecBole 1.2.1 on the same atomic file, epochs alternating; medians."""
    import torch

    from benchmarks.cf_torch_baseline import recbole_epoch_fn

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    work = tempfile.mkdtemp(prefix="cf_recbole_")
    if args.data_path:
        atomic_dir, name = os.path.dirname(args.data_path.rstrip("/")), args.data_name
        name = name or os.path.basename(args.data_path.rstrip("/"))
    else:
        atomic_dir, name = os.path.join(work, "data"), "synthetic-ml100k"
        write_atomic(load_cf_split(cfg.data), atomic_dir, name)
    ours_data = dataclasses.replace(
        cfg.data, source="atomic", path=os.path.join(atomic_dir, name), name=name
    )
    ours_cfg = dataclasses.replace(cfg, data=ours_data)
    split = load_cf_split(ours_cfg.data)
    data = PreparedData.from_split(split)
    rows = []
    for model in args.models:
        for dim in args.dims:
            ours, compile_s = epoch_call(ours_cfg, Group(model, (Replica(dim, 0),)), data, mesh)
            peer, info = recbole_epoch_fn(
                model, atomic_dir, name, dim, batch_size=args.batch_size,
                workdir=os.path.join(work, f"{model}_{dim}"),
            )  # fmt: skip
            samples = interleaved_samples(
                {"jax": ours, "recbole": peer}, rounds=args.rounds, warmup=1, iters=args.iters
            )
            row = {"model": model, "dim": dim, "jax_compile_s": compile_s, "recbole": info,
                   "data": split.summary(), "load_average": os.getloadavg()}  # fmt: skip
            for side, times in samples.items():
                row[f"{side}_epoch_median_s"] = statistics.median(times)
                row[f"{side}_epoch_samples_s"] = times
            row["recbole_over_jax_epoch"] = (
                row["recbole_epoch_median_s"] / row["jax_epoch_median_s"]
            )
            print({k: v for k, v in row.items() if not k.endswith("samples_s")}, flush=True)
            rows.append(row)
    return rows


def time_group(
    cfg, group: Group, data: PreparedData, mesh, *, iters: int, profile: int = 0
) -> dict:
    """Compile and time one epoch and one (validation) evaluation of a group of replicas."""
    with jax.set_mesh(mesh):
        fns = build_group_fns(cfg, group, data, mesh)
        epoch_fn, eval_fn = fns.epoch_fn, fns.eval_fn
        keys = jnp.stack([jax.random.PRNGKey(r.seed) for r in group.replicas])
        valid, _ = data.eval_data(eval_chunk_size(cfg, fns.mdef, group, data))
        pairs, graph, valid, keys = jax.device_put(
            (data.pairs, data.graph if fns.mdef.uses_graph else None, valid, keys),
            replicated(mesh),
        )
        state = fns.init_fn()
        epoch = jnp.int32(0)
        compiled_epoch, epoch_compile_s = compile_jitted(epoch_fn, state, keys, epoch, pairs, graph)
        holder = {"state": state}

        def one_epoch():
            holder["state"], metrics = compiled_epoch(holder["state"], keys, epoch, pairs, graph)
            return metrics

        epoch_stats = time_calls(one_epoch, warmup=1, iters=iters)
        prof = profile_ops(one_epoch, compiled_epoch.as_text(), iters=profile) if profile else None
        params = holder["state"].params
        compiled_eval, eval_compile_s = compile_jitted(eval_fn, params, graph, valid)
        eval_stats = time_calls(lambda: compiled_eval(params, graph, valid), warmup=1, iters=iters)
    return {
        "epoch_profile": prof,
        "epoch_compile_s": epoch_compile_s,
        "eval_compile_s": eval_compile_s,
        "epoch_median_s": epoch_stats["median_s"],
        "epoch_p90_s": epoch_stats["p90_s"],
        "eval_median_s": eval_stats["median_s"],
        "eval_p90_s": eval_stats["p90_s"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["bpr", "neumf", "lightgcn", "sgl"])
    p.add_argument("--dims", nargs="+", type=int, default=[64, 1024])
    p.add_argument("--iters", type=int, default=3, help="timed epochs / evaluations")
    p.add_argument("--batch_size", type=int, default=2048)
    p.add_argument("--data_path", default="", help="RecBole atomic folder (default: synthetic)")
    p.add_argument("--data_name", default="")
    p.add_argument("--packed", nargs="*", type=int, default=[], help="sizes to time packed")
    p.add_argument("--packed_models", nargs="+", default=["bpr", "lightgcn"])
    p.add_argument("--no_torch", action="store_true")
    p.add_argument(
        "--peer",
        choices=("torch", "recbole"),
        default="torch",
        help="torch: cf_torch_baseline.py (with evaluation); recbole: RecBole itself",
    )
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (--peer recbole)")
    p.add_argument(
        "--torch_threads", type=int, default=0,
        help="torch CPU threads (0: torch's default); 1 avoids OpenMP spin-waiting on a busy host",
    )  # fmt: skip
    p.add_argument("--profile", type=int, default=0, help="profile N epochs: op time by source")
    p.add_argument(
        "--interactions_per_user", type=int, default=0,
        help="synthetic data: interactions per user (0: the bench config's ML-100K-like 106)",
    )  # fmt: skip
    p.add_argument("--out", default="runs/bench/cf_epoch.json")
    args = p.parse_args(argv)

    config = cf_configs.get_config("bench")
    config.train.batch_size = args.batch_size
    if args.data_path:
        config.data.source, config.data.path = "atomic", args.data_path
        config.data.name = args.data_name
    if args.interactions_per_user:
        config.data.interactions_per_user = args.interactions_per_user
    cfg = from_config_dict(config)
    mesh = make_mesh(cfg.mesh)
    if args.peer == "recbole":
        rows = peer_recbole(args, cfg, mesh)
        write_json(args.out, {"benchmark": "cf_epoch", "peer": "recbole",
                              "environment": environment(mesh), "batch_size": args.batch_size,
                              "results": rows})  # fmt: skip
        print(f"wrote {args.out}")
        return
    split = load_cf_split(cfg.data)
    data = PreparedData.from_split(split)
    try:
        from benchmarks.cf_torch_baseline import time_torch
    except ImportError:
        time_torch = None
    use_torch = time_torch is not None and not args.no_torch
    if use_torch and args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    eval_users = np.unique(split.valid.user)

    results = []
    for model in args.models:
        for dim in args.dims:
            row = {"model": model, "dim": dim}
            row["jax"] = time_group(
                cfg, Group(model, (Replica(dim, 0),)), data, mesh, iters=args.iters,
                profile=args.profile,
            )  # fmt: skip
            if use_torch:
                row["torch"] = time_torch(
                    model,
                    split.train.user,
                    split.train.item,
                    data.n_users,
                    data.n_items,
                    dim,
                    epochs=args.iters,
                    batch_size=args.batch_size,
                    eval_users=eval_users,
                )
                row["torch_over_jax_epoch"] = (
                    row["torch"]["epoch_median_s"] / row["jax"]["epoch_median_s"]
                )
                row["torch_over_jax_eval"] = (
                    row["torch"]["eval_median_s"] / row["jax"]["eval_median_s"]
                )
            print(row, flush=True)
            results.append(row)

    packing = []
    for model in args.packed_models if args.packed else []:
        group = Group(model, tuple(Replica(d, 0) for d in args.packed))
        packed = time_group(cfg, group, data, mesh, iters=args.iters)
        singles = [
            time_group(cfg, Group(model, (Replica(d, 0),)), data, mesh, iters=args.iters)
            for d in args.packed
        ]
        entry = {
            "model": model,
            "dims": args.packed,
            "packed_epoch_s": packed["epoch_median_s"],
            "one_by_one_epoch_s": sum(s["epoch_median_s"] for s in singles),
        }
        entry["speedup"] = entry["one_by_one_epoch_s"] / entry["packed_epoch_s"]
        print(entry, flush=True)
        packing.append(entry)

    write_json(
        args.out,
        {
            "benchmark": "cf_epoch",
            "environment": environment(mesh),
            "data": split.summary(),
            "batch_size": args.batch_size,
            "results": results,
            "packing": packing,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
