"""MRM's personalized peers, trained and evaluated on MRM's embeddings, splits and protocol.

Every peer sees exactly what MRM sees: the seen users' train pairs for training (drawn by
`MetaTaskIterator`, so VPL gets MRM's support/query split), each user's train pairs as its
"support" at evaluation, and the user-level accuracy of `evaluate.summarize` on the test pairs.
Training goes through `jaxmethods.train.fit` (checkpointed, resumable, one sub-workdir per peer);
per-user fitting uses the shared differentiable inner optimizer `jaxmethods.train.meta.adapt`,
vmapped over users, as MRM's own adaptation does.

- per_user: w_u fitted on user u's train pairs only (seen and unseen alike; nothing is shared).
- lore, pal: shared parameters and the seen users' logits trained jointly; unseen users fit
  their logits on their train pairs with the shared parameters frozen.
- vpl: encoder and reward trained on the ELBO; every user's z is the posterior mean given its
  train pairs.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.data.pipeline import step_stream
from jaxmethods.data.preferences import TRAIN, PreferenceCorpus
from jaxmethods.data.user_splits import pad_pairs, pair_rows, user_split_pairs
from jaxmethods.losses import bradley_terry_loss, masked_mean
from jaxmethods.methods.mrm.config import MRMConfig
from jaxmethods.methods.mrm.evaluate import map_users, pair_accuracy, summarize
from jaxmethods.methods.mrm.tasks import MetaTaskIterator, round_up
from jaxmethods.models.personalized_peers import (
    IdealPointReward,
    LowRankReward,
    UserWeights,
    VariationalPreferenceReward,
    gaussian_kl,
    linear_head_margin,
)
from jaxmethods.train.meta import InnerLoopConfig, adapt
from jaxmethods.train.trainer import fit

LABELS = {
    "per_user": "per-user linear heads",
    "lore": "LoRe",
    "pal": "PAL-A",
    "vpl": "VPL",
}


@dataclasses.dataclass(frozen=True)
class PeerContext:
    """One repeat's data, shared by MRM and its peers.

    Attributes:
      embeddings: [N, D] the placed (device) response-embedding table.
      seen, unseen: user indices; positions in `seen` index the per-user tables.
      data_seed: the split seed of this repeat (support/query draws).
      seed: the model-initialisation seed of this repeat.
    """

    corpus: PreferenceCorpus
    seen: np.ndarray
    unseen: np.ndarray
    embeddings: jax.Array
    mesh: Any
    data_seed: int
    seed: int


def build(ctor: Callable[[], nnx.Module]) -> nnx.Module:
    """Constructs a module under one `nnx.jit` (one compile instead of one per eager init op)."""
    return nnx.jit(ctor)()


def bt(margin: jax.Array, mask: jax.Array) -> jax.Array:
    """Bradley–Terry loss of margins m [..., P] over the valid pairs: -mean log σ(m) -> [...]."""
    return bradley_terry_loss(margin, jnp.zeros_like(margin), mask)


def joined_pairs(batch: dict) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A meta-batch's support and query pairs side by side: all of each user's train pairs."""
    sup, qry = batch["support"], batch["query"]
    return tuple(jnp.concatenate([a, b], axis=1) for a, b in zip(sup, qry))


# ---- per-user linear heads ----------------------------------------------------------------


def per_user_head_loss(
    w: jax.Array, x_c: jax.Array, x_r: jax.Array, mask: jax.Array, scale: float, l2: float
) -> jax.Array:
    """One user's objective: BT(w · scale (x_c - x_r)) + l2/2 ‖w‖². w [D], x [P, D], mask [P]."""
    return bt(linear_head_margin(w, x_c, x_r, scale), mask) + 0.5 * l2 * jnp.sum(w**2)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _per_user_accuracy(fit_cfg: InnerLoopConfig, scale: float, l2: float, emb, train, test):
    def one(tr, te):
        (c, r, m), (tc, tr_, tm) = tr, te
        loss = lambda w, _, data: per_user_head_loss(w, *data, scale, l2)
        w = adapt(jnp.zeros(emb.shape[1], jnp.float32), None, (emb[c], emb[r], m), loss, fit_cfg)
        return pair_accuracy(linear_head_margin(w, emb[tc], emb[tr_], scale), tm)

    return jax.vmap(one)(train, test)


def run_per_user(cfg: MRMConfig, ctx: PeerContext, workdir: str) -> dict:
    del workdir  # nothing is shared, so nothing is trained or checkpointed before evaluation
    p = cfg.per_user
    fn = lambda tr, te, _pos: _per_user_accuracy(
        p.fit, cfg.model.scale, p.l2, ctx.embeddings, tr, te
    )
    acc = lambda users: map_users(fn, ctx.corpus, users, chunk=cfg.eval.user_chunk)
    return summarize(acc(ctx.seen), acc(ctx.unseen), cfg.eval.worst_frac)


# ---- LoRe and PAL: shared parameters + a seen-user logit table ----------------------------


def table_peer_loss(graphdef: nnx.GraphDef) -> Callable:
    """`loss_fn(params, embeddings, batch, rng)`: mean over the batch's real users of each user's
    BT loss on all its train pairs, with its own row of the logit table.

    batch: `pairs` = (chosen [B, P], rejected [B, P], mask [B, P]) embedding rows, `user` [B]
    int32 rows of the table, `user_mask` [B] bool (False on padding rows).
    """

    def loss_fn(params, embeddings, batch, rng):
        del rng
        model = nnx.merge(graphdef, params["users"], params["shared"])
        c, r, m = batch["pairs"]
        logits = model.user_logits[...][batch["user"]]
        margins = jax.vmap(model.margin)(embeddings[c], embeddings[r], logits)
        return masked_mean(bt(margins, m), batch["user_mask"]), {}

    return loss_fn


def user_stream(corpus: PreferenceCorpus, users: np.ndarray, users_per_batch: int, seed: int):
    """A resumable stream of user batches with all their train pairs (`table_peer_loss` batches).

    With `users_per_batch` >= the number of users every step is the full batch (as LoRe trains),
    so no shuffling is needed.
    """
    rows = pad_pairs(pair_rows(corpus, user_split_pairs(corpus, users, TRAIN)))
    n = len(users)
    size = min(users_per_batch, round_up(n))

    def collate(idx: np.ndarray) -> dict:
        valid = idx >= 0
        safe = np.where(valid, idx, 0)
        pairs = tuple(a[safe] for a in rows)
        return {"pairs": pairs, "user": safe.astype(np.int32), "user_mask": valid}

    return step_stream(n, collate, micro_batch_size=size, seed=seed, shuffle=size < n, prefetch=0)


@functools.partial(jax.jit, static_argnums=(0,))
def _seen_table_accuracy(graphdef, params, emb, test, positions):
    model = nnx.merge(graphdef, params["users"], params["shared"])
    logits = model.user_logits[...][positions]
    c, r, m = test
    return pair_accuracy(jax.vmap(model.margin)(emb[c], emb[r], logits), m)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _unseen_table_accuracy(graphdef, fit_cfg: InnerLoopConfig, params, emb, train, test, init):
    def one(tr, te, logits0):
        (c, r, m), (tc, tr_, tm) = tr, te

        def loss(logits, shared, data):
            return bt(
                nnx.merge(graphdef, params["users"], shared).margin(*data[:2], logits), data[2]
            )

        logits = adapt(logits0, params["shared"], (emb[c], emb[r], m), loss, fit_cfg)
        model = nnx.merge(graphdef, params["users"], params["shared"])
        return pair_accuracy(model.margin(emb[tc], emb[tr_], logits), tm)

    return jax.vmap(one)(train, test, init)


def _peer_tasks(cfg: MRMConfig, ctx: PeerContext, users_per_batch: int) -> MetaTaskIterator:
    return MetaTaskIterator(
        ctx.corpus,
        ctx.seen,
        tasks_per_batch=min(users_per_batch, round_up(len(ctx.seen))),
        val_ratio=cfg.data.val_ratio,
        seed=ctx.data_seed,
    )


def fit_on_embeddings(cfg, ctx, section, params, batches, workdir, name, *, loss_fn) -> Any:
    """Trains `params` for `section.epochs` epochs of `batches` (an iterator with
    `batches_per_epoch`) with `section.optim` under `fit`, the embedding table as constants."""
    return fit(
        loss_fn=loss_fn,
        params=params,
        optim=section.optim,
        num_steps=section.epochs * batches.batches_per_epoch,
        batches=batches,
        mesh=ctx.mesh,
        workdir=workdir,
        constants=ctx.embeddings,
        loop=dataclasses.replace(cfg.loop, progress=False),
        seed=ctx.seed,
        item_name="users",
        desc=f"{cfg.name}/{name}",
    )


def _run_table_peer(cfg, ctx, workdir, name, section, model) -> dict:
    graphdef, users, shared = nnx.split(model, UserWeights, ...)
    stream = user_stream(ctx.corpus, ctx.seen, section.users_per_batch, ctx.data_seed)
    result = fit_on_embeddings(
        cfg, ctx, section, {"users": users, "shared": shared}, stream, workdir, name,
        loss_fn=table_peer_loss(graphdef),
    )  # fmt: skip
    params = result.state.params
    k = model.user_logits.shape[1]
    chunk = cfg.eval.user_chunk
    seen_fn = lambda _tr, te, pos: _seen_table_accuracy(graphdef, params, ctx.embeddings, te, pos)
    # The authors initialise a new user's logits from N(0, 1) (`PersonalizeBatch`, PAL's
    # `init_weight`); one draw per unseen user, fixed by the seed.
    init = np.random.default_rng(ctx.seed).standard_normal((len(ctx.unseen), k), np.float32)

    def unseen_fn(tr, te, pos):
        return _unseen_table_accuracy(
            graphdef, section.fit, params, ctx.embeddings, tr, te, init[pos]
        )

    seen_acc = map_users(seen_fn, ctx.corpus, ctx.seen, chunk=chunk)
    unseen_acc = map_users(unseen_fn, ctx.corpus, ctx.unseen, chunk=chunk)
    return summarize(seen_acc, unseen_acc, cfg.eval.worst_frac)


def run_lore(cfg: MRMConfig, ctx: PeerContext, workdir: str) -> dict:
    model = LowRankReward(
        ctx.corpus.dim, cfg.lore.rank, len(ctx.seen), scale=cfg.model.scale, seed=ctx.seed
    )
    return _run_table_peer(cfg, ctx, workdir, "lore", cfg.lore, model)


def run_pal(cfg: MRMConfig, ctx: PeerContext, workdir: str) -> dict:
    p = cfg.pal
    model = IdealPointReward(
        ctx.corpus.dim, p.pref_dim, p.num_prototypes, len(ctx.seen), scale=cfg.model.scale,
        distance=p.distance, seed=ctx.seed,
    )  # fmt: skip
    return _run_table_peer(cfg, ctx, workdir, "pal", p, model)


# ---- VPL --------------------------------------------------------------------------------


def vpl_loss(graphdef: nnx.GraphDef, kl_weight: float) -> Callable:
    """`loss_fn(params, embeddings, batch, rng)`: the negative ELBO averaged over real users,
    BT(query | z) + kl_weight · KL(q(z | support) ‖ N(0, I)), z = μ + σ ε (reparameterised)."""

    def loss_fn(params, embeddings, batch, rng):
        model = nnx.merge(graphdef, params)

        def one(sup, qry, key):
            mean, log_var = model.posterior(embeddings[sup[0]], embeddings[sup[1]], sup[2])
            z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
            return bt(model.margin(embeddings[qry[0]], embeddings[qry[1]], z), qry[2]), gaussian_kl(
                mean, log_var
            )

        keys = jax.random.split(rng, batch["task_mask"].shape[0])
        nll, kl = jax.vmap(one)(batch["support"], batch["query"], keys)
        mask = batch["task_mask"]
        nll, kl = masked_mean(nll, mask), masked_mean(kl, mask)
        return nll + kl_weight * kl, {"bt": nll, "kl": kl}

    return loss_fn


@functools.partial(jax.jit, static_argnums=(0,))
def _vpl_accuracy(graphdef, params, emb, train, test):
    model = nnx.merge(graphdef, params)

    def one(tr, te):
        (c, r, m), (tc, tr_, tm) = tr, te
        z, _ = model.posterior(emb[c], emb[r], m)  # the posterior mean
        return pair_accuracy(model.margin(emb[tc], emb[tr_], z), tm)

    return jax.vmap(one)(train, test)


def run_vpl(cfg: MRMConfig, ctx: PeerContext, workdir: str) -> dict:
    v = cfg.vpl
    model = VariationalPreferenceReward(
        ctx.corpus.dim, v.hidden_dim, v.latent_dim, scale=cfg.model.scale, seed=ctx.seed
    )
    graphdef, params = nnx.split(model)
    tasks = _peer_tasks(cfg, ctx, v.users_per_batch)
    result = fit_on_embeddings(
        cfg, ctx, v, params, tasks, workdir, "vpl", loss_fn=vpl_loss(graphdef, v.kl_weight)
    )
    trained = result.state.params
    fn = lambda tr, te, _pos: _vpl_accuracy(graphdef, trained, ctx.embeddings, tr, te)
    acc = lambda users: map_users(fn, ctx.corpus, users, chunk=cfg.eval.user_chunk)
    return summarize(acc(ctx.seen), acc(ctx.unseen), cfg.eval.worst_frac)


RUNNERS: dict[str, Callable[[MRMConfig, PeerContext, str], dict]] = {
    "per_user": run_per_user,
    "lore": run_lore,
    "pal": run_pal,
    "vpl": run_vpl,
}


def run_peers(cfg: MRMConfig, ctx: PeerContext, workdir: str) -> dict:
    """`{"<peer>/<metric>": value}` for every peer in `cfg.peers`, each in `<workdir>/<peer>`."""
    out = {}
    for name in cfg.peers:
        metrics = RUNNERS[name](cfg, ctx, os.path.join(workdir, name))
        out |= {f"{name}/{k}": v for k, v in metrics.items()}
    return out
