"""Per-model glue: parameter init, the training loss of one batch, the full-sort scorer.

Every model exposes the same `ModelDef`, so the trainer, the sweep and the benchmark treat them
alike. Losses follow RecBole's code (see docs/cf_scaling.md for the exact terms):
  bpr       mean BPR (+ reg_weight · EmbLoss, 0 by default as in RecBole's BPR)
  bpr_drop  BPR-MF trained with the truncated BPR loss, ε ramping linearly to ε_max
  neumf     BCE on the positive and its sampled negative (pointwise), dropout in the MLP
  lightgcn  mean BPR on propagated embeddings + reg_weight · EmbLoss(ego embeddings)
  sgl       summed BPR + reg · EmbLoss + ssl_weight · (InfoNCE_user + InfoNCE_item), summed
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from jaxmethods.losses.cf import (
    bpr_drop_loss,
    bpr_loss,
    drop_rate_schedule,
    embedding_l2_reg,
    sampled_bce_loss,
)
from jaxmethods.methods.cf_scaling.config import ModelHParams
from jaxmethods.models.cf import (
    BipartiteGraph,
    bpr_scores,
    contrastive_loss,
    init_embeddings,
    init_lightgcn,
    init_neumf,
    lightgcn_representations,
    neumf_hidden_width,
    neumf_logits,
    neumf_scorer,
    sample_views,
    score_all_items,
)

Batch = dict[str, jax.Array]  # user, pos, neg, mask: [B]; step: [] int32 (global step)
POINTWISE_MODELS = frozenset({"neumf"})


def positives_per_batch(name: str, batch_size: int) -> int:
    """Training pairs per batch: RecBole's pointwise loader fills a batch of `batch_size` rows
    with positives and their sampled negatives (B/2 each); pairwise models take B triples."""
    return max(1, batch_size // 2) if name in POINTWISE_MODELS else batch_size


@dataclasses.dataclass(frozen=True)
class ModelDef:
    """init(key, n_users, n_items, dim, padded_dim) -> params
    loss(params, ctx, batch, rng) -> (loss, metrics); ctx = {"graph", "views"}
    epoch_views(key, graph) -> per-epoch random views (SGL) or None
    scorer(params, graph) -> ([C] users -> [C, I] scores)
    eval_width(padded_dim) -> floats of activation per (user, item) pair when scoring."""

    name: str
    init: Callable[..., dict]
    loss: Callable[..., tuple[jax.Array, dict]]
    epoch_views: Callable[[jax.Array, BipartiteGraph], Any]
    scorer: Callable[[dict, BipartiteGraph], Callable[[jax.Array], jax.Array]]
    eval_width: Callable[[int], int]
    uses_graph: bool


def _no_views(key, graph):
    del key, graph
    return None


def _mf_scorer(params, graph):
    del graph
    return lambda users: score_all_items(params["user_emb"], params["item_emb"], users)


def _mf_def(name: str, hp: ModelHParams, steps_per_epoch: int) -> ModelDef:
    ramp_steps = round(hp.drop_ramp_epochs * steps_per_epoch)

    def loss(params, ctx, batch, rng):
        del ctx, rng
        u_tab, i_tab = params["user_emb"], params["item_emb"]
        pos, neg = bpr_scores(u_tab, i_tab, batch["user"], batch["pos"], batch["neg"])
        metrics = {}
        if name == "bpr_drop":
            rate = drop_rate_schedule(batch["step"], max_rate=hp.drop_max, ramp_steps=ramp_steps)
            main, _ = bpr_drop_loss(pos, neg, drop_rate=rate, mask=batch["mask"])
            metrics["drop_rate"] = rate
        else:
            main = bpr_loss(pos, neg, mask=batch["mask"])
        total = main
        if hp.reg_weight:
            reg = embedding_l2_reg(
                u_tab[batch["user"]],
                i_tab[batch["pos"]],
                i_tab[batch["neg"]],
                mask=batch["mask"],
                squared=hp.squared_reg,
            )
            total = total + hp.reg_weight * reg
            metrics["reg"] = reg
        return total, dict(metrics, bpr=main)

    def init(key, n_users, n_items, dim, padded_dim):
        return init_embeddings(
            key, n_users=n_users, n_items=n_items, dim=dim, padded_dim=padded_dim
        )

    return ModelDef(name, init, loss, _no_views, _mf_scorer, lambda d: 1, uses_graph=False)


def _neumf_def(hp: ModelHParams) -> ModelDef:
    def loss(params, ctx, batch, rng):
        del ctx
        k_pos, k_neg = jax.random.split(rng)
        kw = {"dropout_rate": hp.dropout}
        pos = neumf_logits(params, batch["user"], batch["pos"], key=k_pos, **kw)
        neg = neumf_logits(params, batch["user"], batch["neg"], key=k_neg, **kw)
        bce = sampled_bce_loss(pos, neg, mask=batch["mask"])
        return bce, {"bce": bce}

    hidden = tuple(hp.mlp_hidden)

    def init(key, n_users, n_items, dim, padded_dim):
        return init_neumf(
            key, n_users=n_users, n_items=n_items, dim=dim, padded_dim=padded_dim, hidden=hidden
        )

    return ModelDef(
        "neumf",
        init,
        loss,
        _no_views,
        lambda params, graph: neumf_scorer(params),
        lambda padded_dim: neumf_hidden_width(padded_dim, hidden),
        uses_graph=False,
    )


def _graph_def(name: str, hp: ModelHParams, edge_chunk: int) -> ModelDef:
    is_sgl = name == "sgl"
    chunk = {"edge_chunk": edge_chunk}

    def loss(params, ctx, batch, rng):
        del rng
        graph, mask = ctx["graph"], batch["mask"]
        users, pos_items, neg_items = batch["user"], batch["pos"], batch["neg"]
        u_rep, i_rep = lightgcn_representations(params, graph, hp.n_layers, **chunk)
        pos, neg = bpr_scores(u_rep, i_rep, users, pos_items, neg_items)
        main = bpr_loss(pos, neg, mask=mask, reduction="sum" if is_sgl else "mean")
        reg = embedding_l2_reg(
            params["user_emb"][users],
            params["item_emb"][pos_items],
            params["item_emb"][neg_items],
            mask=mask,
            squared=hp.squared_reg,
        )
        total = main + hp.reg_weight * reg
        metrics = {"bpr": main, "reg": reg}
        if is_sgl:
            ssl = contrastive_loss(
                params,
                graph,
                ctx["views"],
                users,
                pos_items,
                n_layers=hp.n_layers,
                temperature=hp.temperature,
                mask=mask,
                **chunk,
            )
            total = total + hp.ssl_weight * ssl
            metrics["ssl"] = ssl
        return total, metrics

    def init(key, n_users, n_items, dim, padded_dim):
        return init_lightgcn(key, n_users=n_users, n_items=n_items, dim=dim, padded_dim=padded_dim)

    def scorer(params, graph):
        u_rep, i_rep = lightgcn_representations(params, graph, hp.n_layers, **chunk)
        return lambda users: score_all_items(u_rep, i_rep, users)

    views = (lambda key, graph: sample_views(key, graph, hp.edge_drop)) if is_sgl else _no_views
    return ModelDef(name, init, loss, views, scorer, lambda d: 1, uses_graph=True)


def get_model_def(
    name: str, hp: ModelHParams, *, steps_per_epoch: int, edge_chunk: int = 0
) -> ModelDef:
    """The `ModelDef` of one of config.MODELS with its hyper-parameters bound.

    edge_chunk: edges per chunk of LightGCN / SGL propagation (0: all at once).
    """
    if name in ("bpr", "bpr_drop"):
        return _mf_def(name, hp, steps_per_epoch)
    if name == "neumf":
        return _neumf_def(hp)
    if name in ("lightgcn", "sgl"):
        return _graph_def(name, hp, edge_chunk)
    raise ValueError(f"unknown CF model {name!r}")
