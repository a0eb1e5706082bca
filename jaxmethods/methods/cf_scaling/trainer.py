"""Training of one group of replicas in the shared loop: one loop step is one whole epoch.

The step (`build_group_fns(...).step_fn`) is one jitted program over the stacked [R, ...]
replicas: per replica it shuffles the training pairs, samples negatives, draws SGL's views and
runs every batch (`lax.scan` of the shared `make_train_step`); then it evaluates validation
NDCG@20 (full sort) and applies RecBole's early stopping per replica: a value >= the best so far
resets the patience counter, and a replica stops after `patience` + 1 evaluations without one.
The test metrics are computed (under `lax.cond`) only at epochs where some replica improves and
kept for those replicas: the test score of the best-validation model without a copy of it.
Stopped replicas keep stepping with the group (their results are frozen); once every replica has
stopped, the step does nothing. The per-replica counters live in the step's state (`carry["track"]`),
so they are checkpointed with the parameters and a resumed group continues exactly.

`jaxmethods.train.loop.train_loop` runs the steps: checkpoints and their corrupt-checkpoint
fallback, SIGTERM (save, then exit 0), `metrics.jsonl` (truncated to the restored epoch), the
progress bar, the `valid` evaluation hook, and the stop once every replica has stopped (the
loop's `EarlyStopping` on `valid/live_epoch`: the epoch while some replica still runs, NaN once
none does, so the first evaluation after the last replica stopped is not an improvement). A replica whose loss or gradient turns
non-finite stops with status "non-finite" while the others go on; `run` raises
`NonFiniteLossError` naming it once every result is written.

Randomness comes from the replica's seed only: replicas of one seed see the same batch order,
negatives and SGL views whatever their size (common random numbers across the size axis).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxmethods.eval.ranking import full_sort_metrics
from jaxmethods.methods.cf_scaling.config import CFScalingConfig
from jaxmethods.methods.cf_scaling.objectives import ModelDef, get_model_def, positives_per_batch
from jaxmethods.methods.cf_scaling.plan import Group, group_rules
from jaxmethods.methods.cf_scaling.prepare import PreparedData
from jaxmethods.methods.cf_scaling.sampler import epoch_batches
from jaxmethods.train.loop import EarlyStopping, Eval, train_loop
from jaxmethods.train.mesh import replicated
from jaxmethods.train.metrics import MetricWriter, read_jsonl, to_python
from jaxmethods.train.optim import make_optimizer
from jaxmethods.train.sharding import param_shardings
from jaxmethods.train.state import TrainState
from jaxmethods.train.step import make_train_step, state_shardings
from jaxmethods.train.trainer import make_checkpointer

log = logging.getLogger(__name__)

RUNNING, EARLY_STOPPED, NON_FINITE = 0, 1, 2
STATUS_NAMES = {RUNNING: "max-epochs", EARLY_STOPPED: "early-stopped", NON_FINITE: "non-finite"}
LIVE_METRIC = "valid/live_epoch"


@dataclasses.dataclass(frozen=True)
class GroupFns:
    """The jitted programs of one group (all take and return stacked [R, ...] replicas).

    init_fn() -> TrainState; epoch_fn(state, data_keys, epoch, pairs, graph) -> (state,
    metrics) trains one epoch; eval_fn(params, graph, eval_data) -> {metric: [R]};
    start_fn() -> carry = {"train": TrainState, "track": counters}; step_fn(carry, constants,
    batch) -> (carry, metrics) is the loop step (epoch + validation + early stopping + test).
    """

    mdef: ModelDef
    init_fn: Callable
    epoch_fn: Callable
    eval_fn: Callable
    start_fn: Callable
    step_fn: Callable
    carry_shardings: dict


def build_group_fns(cfg: CFScalingConfig, group: Group, data: PreparedData, mesh: Mesh) -> GroupFns:
    """The group's jitted programs, with shardings.

    The data enter as arguments (pairs, graph, evaluation layouts), so the functions depend on
    the dataset only through its sizes; they are cached on everything they depend on, and a
    resumed or repeated group in the same process reuses its compiled programs.
    """
    t = cfg.train
    return _build_group_fns(
        group,
        mesh,
        cfg.model_hparams(group.model),
        cfg.optim,
        (t.batch_size, t.neg_resample_rounds, t.ks, t.fast_compile, t.propagation_budget),
        (t.metric, t.patience),
        (cfg.sweep.shard_min_dim, cfg.sweep.shard_axis),
        (data.n_users, data.n_items, data.pairs.n_pairs),
    )


def _metric_names(ks) -> list[str]:
    return sorted(f"{m}@{k}" for m in ("ndcg", "recall") for k in ks)


@functools.lru_cache(maxsize=4)
def _build_group_fns(group, mesh, hp, optim, train_key, stop_key, shard_key, sizes) -> GroupFns:
    batch_size, neg_rounds, ks, fast_compile, propagation_budget = train_key
    metric, patience = stop_key
    n_users, n_items, n_pairs = sizes
    n_rep = len(group.replicas)
    batch_size = positives_per_batch(group.model, batch_size)
    spe = -(-n_pairs // batch_size)
    # Chunk graph propagation so the gathered [edges, R * D] block stays within the budget.
    width = n_rep * group.padded_dim
    fits = 2 * n_pairs * width <= propagation_budget
    edge_chunk = 0 if fits else max(256, propagation_budget // width)
    mdef = get_model_def(group.model, hp, steps_per_epoch=spe, edge_chunk=edge_chunk)
    # A constant schedule: the step count only matters for warmup, which CF does not use.
    tx = make_optimizer(optim, total_steps=1)
    seeds = jnp.asarray([r.seed for r in group.replicas], jnp.int32)
    dims = jnp.asarray([r.dim for r in group.replicas], jnp.int32)

    def init():
        """Stacked states; one vmapped init draws every replica at the padded width (its true
        size enters only through masks and init scales)."""

        def one(seed, dim):
            base = jax.random.PRNGKey(seed)  # streams: 0 init, 1 data (train_group), 2 dropout
            params = mdef.init(jax.random.fold_in(base, 0), n_users, n_items, dim, group.padded_dim)
            return TrainState.create(params, tx).replace(rng=jax.random.fold_in(base, 2))

        return jax.vmap(one)(seeds, dims)

    names = _metric_names(ks)

    def start():
        zeros = jnp.zeros((n_rep,), jnp.float32)
        return {
            "train": init(),
            "track": {
                "best": zeros - 1.0,  # below any metric value
                "best_epoch": jnp.zeros((n_rep,), jnp.int32),
                "stale": jnp.zeros((n_rep,), jnp.int32),
                "status": jnp.full((n_rep,), RUNNING, jnp.int32),
                "last": dict.fromkeys(names, zeros),
                "valid_at_best": dict.fromkeys(names, zeros),
                "test_at_best": dict.fromkeys(names, zeros + jnp.nan),
            },
        }

    rules = group_rules(group, mesh, shard_min_dim=shard_key[0], shard_axis=shard_key[1])
    abstract = jax.eval_shape(start)
    param_sh = param_shardings(abstract["train"].params, mesh, rules)
    rep = replicated(mesh)
    carry_sh = {
        "train": state_shardings(abstract["train"], param_sh, mesh),
        "track": jax.tree.map(lambda _: rep, abstract["track"]),
    }
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

    group_epoch = jax.vmap(replica_epoch, in_axes=(0, 0, None, None, None))
    group_eval = jax.vmap(replica_eval, in_axes=(0, None, None))

    def valid_then_test(params, graph, layouts, improves):
        """Validation, then test only when `improves(valid)` holds for some replica, as one
        loop over the stacked [2, ...] (valid, test) layouts: the evaluation compiles once."""
        shapes = jax.eval_shape(group_eval, params, graph, jax.tree.map(lambda x: x[0], layouts))
        out = jax.tree.map(lambda s: jnp.full((2, *s.shape), jnp.nan, s.dtype), shapes)

        def body(carry):
            i, out = carry
            res = group_eval(params, graph, jax.tree.map(lambda x: x[i], layouts))
            return i + 1, jax.tree.map(lambda o, r: o.at[i].set(r), out, res)

        def more(carry):
            i, out = carry
            return (i == 0) | ((i == 1) & jnp.any(improves(jax.tree.map(lambda o: o[0], out))))

        _, out = jax.lax.while_loop(more, body, (jnp.int32(0), out))
        return jax.tree.map(lambda o: o[0], out), jax.tree.map(lambda o: o[1], out)

    def loop_step(carry, constants, batch):
        """(carry, constants, {"epoch": []}) -> (carry, metrics); constants = {"pairs",
        "graph", "eval": (valid, test) layouts stacked on a leading axis of 2, "data_keys"}."""
        epoch, c = batch["epoch"], constants
        track = carry["track"]
        running = track["status"] == RUNNING

        def active(carry):
            state, m = group_epoch(carry["train"], c["data_keys"], epoch, c["pairs"], c["graph"])
            track = dict(carry["track"])
            finite = m["finite"] > 0
            improves = lambda valid: running & finite & (valid[metric] >= track["best"])
            valid, test = valid_then_test(state.params, c["graph"], c["eval"], improves)
            value = valid[metric]
            improved = improves(valid)
            stale = jnp.where(improved, 0, track["stale"] + (running & finite))
            status = jnp.where(running & ~finite, NON_FINITE, track["status"])
            status = jnp.where(running & finite & (stale > patience), EARLY_STOPPED, status)
            pick = lambda new, old: jax.tree.map(lambda n, o: jnp.where(improved, n, o), new, old)
            track.update(
                best=jnp.where(improved, value, track["best"]),
                best_epoch=jnp.where(improved, epoch + 1, track["best_epoch"]),
                stale=stale,
                status=status,
                last=valid,
                valid_at_best=pick(valid, track["valid_at_best"]),
                test_at_best=pick(test, track["test_at_best"]),
            )
            loss = jnp.sum(jnp.where(running, m["loss"], 0.0)) / jnp.maximum(jnp.sum(running), 1)
            return {"train": state, "track": track}, {"loss": loss, "replica_loss": m["loss"]}

        def idle(carry):  # every replica has stopped: nothing left to compute
            return carry, {
                "loss": jnp.float32(jnp.nan),
                "replica_loss": jnp.full((n_rep,), jnp.nan),
            }

        carry, m = jax.lax.cond(jnp.any(running), active, idle, carry)
        t = carry["track"]
        return carry, {
            **m,
            "running": jnp.sum(t["status"] == RUNNING),
            f"valid_{metric}": t["last"][metric],
        }

    jit = functools.partial(jax.jit, compiler_options=options)
    return GroupFns(
        mdef=mdef,
        init_fn=jit(init, out_shardings=carry_sh["train"]),
        epoch_fn=jit(
            group_epoch,
            in_shardings=(carry_sh["train"], rep, rep, rep, rep),
            out_shardings=(carry_sh["train"], rep),
            donate_argnums=0,
        ),
        eval_fn=jit(group_eval, in_shardings=(param_sh, rep, rep), out_shardings=rep),
        start_fn=jit(start, out_shardings=carry_sh),
        step_fn=jit(
            loop_step,
            in_shardings=(carry_sh, rep, rep),
            out_shardings=(carry_sh, rep),
            donate_argnums=0,
        ),
        carry_shardings=carry_sh,
    )


def eval_chunk_size(cfg: CFScalingConfig, mdef: ModelDef, group: Group, data: PreparedData) -> int:
    """Users per evaluation chunk: [R, C, n_items, width] activations within the budget."""
    per_user = len(group.replicas) * data.n_items * mdef.eval_width(group.padded_dim)
    return int(max(1, min(cfg.train.eval_budget // per_user, data.n_users)))


class EpochCounter:
    """The loop's data iterator for CF: batch e is `{"epoch": e}` (the data of an epoch are
    drawn on device from the seed and the epoch); resumable through get_state / set_state."""

    def __init__(self, epoch: int = 0):
        self.epoch = epoch

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        batch = {"epoch": np.asarray(self.epoch, np.int32)}
        self.epoch += 1
        return batch

    def get_state(self) -> dict:
        return {"epoch": self.epoch}

    def set_state(self, state: dict) -> None:
        self.epoch = int(state["epoch"])


def train_group(
    cfg: CFScalingConfig, group: Group, data: PreparedData, mesh: Mesh, workdir: str
) -> list[dict]:
    """Trains every replica of `group` to early stopping; returns one result row per replica.

    `workdir` receives `metrics.jsonl` and, while training, `checkpoints/` (removed once the
    group finishes: the result rows are what the sweep keeps).
    """
    tcfg, loop = cfg.train, cfg.loop
    with jax.set_mesh(mesh):
        fns = build_group_fns(cfg, group, data, mesh)
        chunk = eval_chunk_size(cfg, fns.mdef, group, data)
        data_keys = jnp.stack(
            [jax.random.fold_in(jax.random.PRNGKey(r.seed), 1) for r in group.replicas]
        )
        valid, test = data.eval_data(chunk)
        constants = jax.device_put(
            {
                "pairs": data.pairs,
                "graph": data.graph if fns.mdef.uses_graph else None,
                "eval": jax.tree.map(lambda a, b: jnp.stack([a, b]), valid, test),
                "data_keys": data_keys,
            },
            replicated(mesh),
        )
        carry = fns.start_fn()
        ckpt = make_checkpointer(loop, workdir)
        writer = MetricWriter(workdir, sinks=loop.metric_sinks, run_name=group.name)
        try:
            result = train_loop(
                step_fn=fns.step_fn,
                state=carry,
                constants=constants,
                batches=EpochCounter(),
                num_steps=tcfg.max_epochs,
                workdir=workdir,
                batch_sharding=replicated(mesh),
                checkpointer=ckpt,
                evals={"valid": Eval(_valid_hook(tcfg.metric, len(group.replicas)), every=1)},
                early_stopping=EarlyStopping(
                    LIVE_METRIC, mode="max", patience=1, restore_best=False
                ),
                log_every=loop.log_every,
                progress=loop.progress,
                desc=group.name,
                writer=writer,
            )
        finally:
            writer.close()
            if ckpt is not None:
                ckpt.close()
        track = to_python(jax.device_get(result.state["track"]))
    rows = _result_rows(group, track, result.step, chunk, _epoch_times(writer.path))
    if ckpt is not None:
        shutil.rmtree(ckpt.directory, ignore_errors=True)
    best = max(rows, key=lambda r: r.get(f"valid/{tcfg.metric}", -1.0))
    log.info(
        "%s: %d epochs in %.1f s; best valid %s %.4f (d=%d, epoch %d)",
        group.name, result.step, result.train_time_s, tcfg.metric,
        best.get(f"valid/{tcfg.metric}", float("nan")), best["dim"], best["best_epoch"],
    )  # fmt: skip
    return rows


def _valid_hook(metric: str, n_rep: int) -> Callable:
    """The `valid` Eval hook: the latest and best validation metric per replica (a number for
    one replica, a list for several), the replicas still running, and `live_epoch` (the epoch
    while some replica runs, NaN once none does: the loop's stop signal, as a NaN never counts
    as an improvement)."""

    def hook(carry, step: int) -> dict:
        t = to_python(jax.device_get(carry["track"]))
        running = sum(s == RUNNING for s in t["status"])
        one = (lambda v: v[0]) if n_rep == 1 else (lambda v: v)
        return {
            metric: one(t["last"][metric]),
            f"best_{metric}": one(t["best"]),
            "running": running,
            "live_epoch": step if running else float("nan"),
        }

    return hook


def _epoch_times(metrics_path: str) -> list[float]:
    """Seconds per loop step (epoch + validation) of every logged epoch, from metrics.jsonl."""
    rows = read_jsonl(metrics_path)
    return [1.0 / r["steps_per_s"] for r in rows if r.get("steps_per_s")]


def _median_excluding_first(times: list[float]) -> float:
    """Steady-state time: the first step includes compilation."""
    return float(np.median(times[1:] if len(times) > 1 else times)) if times else float("nan")


def _result_rows(group: Group, track: dict, epochs: int, chunk: int, times) -> list[dict]:
    rows = []
    for r, replica in enumerate(group.replicas):
        row = {
            "model": group.model,
            "dim": replica.dim,
            "seed": replica.seed,
            "best_epoch": track["best_epoch"][r],
            "epochs_run": epochs,
            "status": STATUS_NAMES[track["status"][r]],
            "group": group.name,
            "group_size": len(group.replicas),
            "padded_dim": group.padded_dim,
            "epoch_time_s": _median_excluding_first(times),
            "eval_chunk_users": chunk,
        }
        if track["best_epoch"][r] > 0:
            row.update({f"valid/{k}": v[r] for k, v in track["valid_at_best"].items()})
            row.update({f"test/{k}": v[r] for k, v in track["test_at_best"].items()})
        rows.append(row)
    return rows
