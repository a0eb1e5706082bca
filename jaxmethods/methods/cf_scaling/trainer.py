"""Training of one group of replicas: whole epochs as one jitted, vmapped `lax.scan`.

Per epoch the device shuffles the training pairs, samples negatives, draws SGL's views and runs
every step of every replica in one call; the host then reads back one small metrics dict,
evaluates validation NDCG@20 (full sort, all replicas at once) and applies RecBole's early
stopping per replica: a value >= the best so far resets the patience counter, and a replica stops
after `patience` + 1 evaluations without one. Test metrics are computed at every epoch where some
replica improves and kept for those replicas, which is the test score of the best-validation
model without storing a copy of it. Stopped replicas keep stepping with the group (their results
are frozen) until every replica has stopped or `max_epochs` is reached.

Randomness comes from the replica's seed only: replicas of one seed see the same batch order,
negatives and SGL views whatever their size (common random numbers across the size axis).
"""

from __future__ import annotations

import functools
import logging
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from jaxmethods.eval.ranking import full_sort_metrics
from jaxmethods.methods.cf_scaling.config import CFScalingConfig
from jaxmethods.methods.cf_scaling.objectives import ModelDef, get_model_def, positives_per_batch
from jaxmethods.methods.cf_scaling.plan import Group, group_rules
from jaxmethods.methods.cf_scaling.prepare import PreparedData
from jaxmethods.methods.cf_scaling.sampler import epoch_batches
from jaxmethods.train.checkpoint import Checkpointer
from jaxmethods.train.mesh import replicated
from jaxmethods.train.metrics import MetricWriter, to_python
from jaxmethods.train.sharding import param_shardings
from jaxmethods.train.state import TrainState
from jaxmethods.train.step import make_train_step, state_shardings

log = logging.getLogger(__name__)


def _init_states(mdef: ModelDef, group: Group, n_users: int, n_items: int, tx) -> TrainState:
    """Stacked [R, ...] train states; one vmapped init draws every replica at the padded width
    (its true size enters only through masks and init scales)."""
    seeds = jnp.asarray([r.seed for r in group.replicas], jnp.int32)
    dims = jnp.asarray([r.dim for r in group.replicas], jnp.int32)

    def one(seed, dim):
        base = jax.random.PRNGKey(seed)  # streams: 0 init, 1 data (see train_group), 2 dropout
        params = mdef.init(jax.random.fold_in(base, 0), n_users, n_items, dim, group.padded_dim)
        return TrainState.create(params, tx).replace(rng=jax.random.fold_in(base, 2))

    return jax.vmap(one)(seeds, dims)


def build_group_fns(cfg: CFScalingConfig, group: Group, data: PreparedData, mesh: Mesh):
    """-> (mdef, init_fn, epoch_fn, eval_fn), jitted with shardings.

    The data enter as arguments (pairs, graph, evaluation layouts), so the functions depend on
    the dataset only through its sizes; they are cached on everything they depend on, and a
    resumed or repeated group in the same process reuses its compiled programs.
    """
    t = cfg.train
    return _build_group_fns(
        group,
        mesh,
        cfg.model_hparams(group.model),
        (t.lr, t.batch_size, t.neg_resample_rounds, t.ks, t.fast_compile, t.propagation_budget),
        (cfg.sweep.shard_min_dim, cfg.sweep.shard_axis),
        (data.n_users, data.n_items, data.pairs.n_pairs),
    )


@functools.lru_cache(maxsize=4)
def _build_group_fns(group, mesh, hp, train_key, shard_key, sizes):
    lr, batch_size, neg_rounds, ks, fast_compile, propagation_budget = train_key
    n_users, n_items, n_pairs = sizes
    batch_size = positives_per_batch(group.model, batch_size)
    spe = -(-n_pairs // batch_size)
    # Chunk graph propagation so the gathered [edges, R * D] block stays within the budget.
    width = len(group.replicas) * group.padded_dim
    fits = 2 * n_pairs * width <= propagation_budget
    edge_chunk = 0 if fits else max(256, propagation_budget // width)
    mdef = get_model_def(group.model, hp, steps_per_epoch=spe, edge_chunk=edge_chunk)
    tx = optax.adam(lr)
    init = lambda: _init_states(mdef, group, n_users, n_items, tx)
    rules = group_rules(group, mesh, shard_min_dim=shard_key[0], shard_axis=shard_key[1])
    abstract = jax.eval_shape(init)
    param_sh = param_shardings(abstract.params, mesh, rules)
    state_sh = state_shardings(abstract, param_sh, mesh)
    rep = replicated(mesh)
    step = make_train_step(mdef.loss, tx)
    options = {"xla_backend_optimization_level": 0} if fast_compile else None

    def replica_epoch(state, data_key, epoch, pairs, graph):
        k_batch, k_views = jax.random.split(jax.random.fold_in(data_key, epoch))
        batches = epoch_batches(
            k_batch, pairs, batch_size=batch_size, neg_rounds=neg_rounds, first_step=epoch * spe
        )
        ctx = {"graph": graph, "views": mdef.epoch_views(k_views, graph)}
        state, metrics = jax.lax.scan(lambda s, b: step(s, ctx, b), state, batches)
        finite = jnp.min(metrics.pop("finite"))
        return state, dict(jax.tree.map(jnp.mean, metrics), finite=finite)

    def replica_eval(params, graph, eval_data):
        return full_sort_metrics(mdef.scorer(params, graph), eval_data, ks)

    epoch_fn = jax.jit(
        jax.vmap(replica_epoch, in_axes=(0, 0, None, None, None)),
        in_shardings=(state_sh, rep, rep, rep, rep),
        out_shardings=(state_sh, rep),
        donate_argnums=0,
        compiler_options=options,
    )
    eval_fn = jax.jit(
        jax.vmap(replica_eval, in_axes=(0, None, None)),
        in_shardings=(param_sh, rep, rep),
        out_shardings=rep,
        compiler_options=options,
    )
    init_fn = jax.jit(init, out_shardings=state_sh, compiler_options=options)
    return mdef, init_fn, epoch_fn, eval_fn


def eval_chunk_size(cfg: CFScalingConfig, mdef: ModelDef, group: Group, data: PreparedData) -> int:
    """Users per evaluation chunk: [R, C, n_items, width] activations within the budget."""
    per_user = len(group.replicas) * data.n_items * mdef.eval_width(group.padded_dim)
    return int(max(1, min(cfg.train.eval_budget // per_user, data.n_users)))


def _fresh_tracking(n: int) -> dict:
    return {
        "epoch": 0,
        "best": [-1.0] * n,  # below any metric value, and JSON-safe
        "best_epoch": [0] * n,
        "stale": [0] * n,
        "stopped": [False] * n,
        "status": ["running"] * n,
        "valid_at_best": [{} for _ in range(n)],
        "test_at_best": [{} for _ in range(n)],
        "epoch_times": [],
        "eval_times": [],
    }


def train_group(
    cfg: CFScalingConfig, group: Group, data: PreparedData, mesh: Mesh, workdir: str
) -> list[dict]:
    """Trains every replica of `group` to early stopping; returns one result row per replica.

    `workdir` receives `metrics.jsonl` and, while training, `checkpoints/` (removed once the
    group finishes: the result rows are what the sweep keeps).
    """
    tcfg, metric = cfg.train, cfg.train.metric
    n = len(group.replicas)
    with jax.set_mesh(mesh):
        mdef, init_fn, epoch_fn, eval_fn = build_group_fns(cfg, group, data, mesh)
        chunk = eval_chunk_size(cfg, mdef, group, data)
        data_keys = jnp.stack(
            [jax.random.fold_in(jax.random.PRNGKey(r.seed), 1) for r in group.replicas]
        )
        # Placed once on every device, so no epoch call re-transfers them.
        pairs, graph, valid_data, test_data, data_keys = jax.device_put(
            (
                data.pairs,
                data.graph if mdef.uses_graph else None,
                *data.eval_data(chunk),
                data_keys,
            ),
            replicated(mesh),
        )
        state = init_fn()
        track = _fresh_tracking(n)
        ckpt = None
        if tcfg.checkpoint_every > 0:
            ckpt = Checkpointer(
                f"{workdir}/checkpoints",
                save_every=tcfg.checkpoint_every,
                keep=tcfg.keep_checkpoints,
                async_save=False,
            )
            if ckpt.latest_step() is not None:
                state, track, _ = ckpt.restore(state)
                log.info("%s: resumed at epoch %d", group.name, track["epoch"])
        writer = MetricWriter(workdir)
        bar = tqdm(
            total=tcfg.max_epochs,
            initial=track["epoch"],
            desc=group.name,
            disable=not cfg.progress,
            dynamic_ncols=True,
        )
        try:
            while track["epoch"] < tcfg.max_epochs and not all(track["stopped"]):
                epoch = track["epoch"]
                t0 = time.perf_counter()
                state, train_m = epoch_fn(
                    state, data_keys, jnp.asarray(epoch, jnp.int32), pairs, graph
                )
                train_m = to_python(jax.device_get(train_m))
                t1 = time.perf_counter()
                valid = to_python(jax.device_get(eval_fn(state.params, graph, valid_data)))
                t2 = time.perf_counter()
                track["epoch_times"].append(t1 - t0)
                track["eval_times"].append(t2 - t1)
                _early_stopping(track, train_m, valid, metric, tcfg.patience, group, epoch)
                improved = [
                    track["best_epoch"][r] == epoch + 1 and track["status"][r] != "non-finite"
                    for r in range(n)
                ]
                if any(improved):
                    test = to_python(jax.device_get(eval_fn(state.params, graph, test_data)))
                    for r in range(n):
                        if improved[r]:
                            track["test_at_best"][r] = {k: v[r] for k, v in test.items()}
                track["epoch"] = epoch + 1
                writer.write(
                    epoch + 1,
                    {
                        "loss": train_m["loss"],
                        f"valid/{metric}": valid[metric],
                        "epoch_time_s": t1 - t0,
                        "eval_time_s": t2 - t1,
                    },
                )
                if ckpt is not None:
                    ckpt.save(epoch + 1, state, track)
                bar.update(1)
                bar.set_postfix({f"best {metric}": f"{max(track['best']):.4f}"})
        finally:
            bar.close()
            if ckpt is not None:
                ckpt.close()
    if ckpt is not None:
        shutil.rmtree(ckpt.directory, ignore_errors=True)
    return _result_rows(cfg, group, track, chunk)


def _early_stopping(track, train_m, valid, metric, patience, group, epoch) -> None:
    for r, replica in enumerate(group.replicas):
        if track["stopped"][r]:
            continue
        if not train_m["finite"][r]:
            track["stopped"][r] = True
            track["status"][r] = "non-finite"
            log.warning(
                "%s d=%d seed=%d: non-finite loss or gradient in epoch %d; replica stopped, "
                "its results are those of epoch %d",
                group.model,
                replica.dim,
                replica.seed,
                epoch + 1,
                track["best_epoch"][r],
            )
            continue
        value = valid[metric][r]
        if value >= track["best"][r]:
            track["best"][r] = value
            track["best_epoch"][r] = epoch + 1
            track["stale"][r] = 0
            track["valid_at_best"][r] = {k: v[r] for k, v in valid.items()}
        else:
            track["stale"][r] += 1
            if track["stale"][r] > patience:
                track["stopped"][r] = True
                track["status"][r] = "early-stopped"


def _median_excluding_first(times: list[float]) -> float:
    """Steady-state time: the first call includes compilation."""
    return float(np.median(times[1:] if len(times) > 1 else times)) if times else float("nan")


def _result_rows(cfg, group: Group, track: dict, chunk: int) -> list[dict]:
    rows = []
    for r, replica in enumerate(group.replicas):
        status = track["status"][r]
        if status == "running":
            status = "max-epochs"
        row = {
            "model": group.model,
            "dim": replica.dim,
            "seed": replica.seed,
            "best_epoch": track["best_epoch"][r],
            "epochs_run": track["epoch"],
            "status": status,
            "group": group.name,
            "group_size": len(group.replicas),
            "padded_dim": group.padded_dim,
            "epoch_time_s": _median_excluding_first(track["epoch_times"]),
            "eval_time_s": _median_excluding_first(track["eval_times"]),
            "eval_chunk_users": chunk,
        }
        row.update({f"valid/{k}": v for k, v in track["valid_at_best"][r].items()})
        row.update({f"test/{k}": v for k, v in track["test_at_best"][r].items()})
        rows.append(row)
    return rows
