"""The BalDRO training objective: L = gamma * L_forget + alpha * L_retain on paired batches.

Glue only: the per-sample losses, the DV aggregate and the top-k selection come from
`jaxmethods.losses`; this file decides which rows are scored and how they are reduced, as the
authors' trainers do (NPO/SimNPO/SatImp, GroupNPO/..., DrNPO/...).

"Per device batch" semantics: a micro-batch of B pairs is `groups` original per-device batches
of B / groups pairs (rows [g*b, (g+1)*b)). Every reduction (mean, top-k, DV, retain mean) is taken
within a group and the group losses are averaged, which is what DDP's gradient averaging over
devices computes. `groups = 1` is a single-GPU run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from jaxmethods.losses import (
    dv_aggregate,
    gradient_ascent_loss,
    group_topk_indices,
    masked_mean,
    npo_loss,
    num_label_tokens,
    random_subset_indices,
    retain_nll_loss,
    satimp_token_loss,
    sequence_mean_nll,
    sequence_nll,
    simnpo_loss,
    topk_count,
)

LOSSES = ("npo", "simnpo", "satimp", "ga", "graddiff")
VARIANTS = ("plain", "group", "dv")
RETAIN_REDUCTIONS = ("auto", "token_mean", "sequence_sum_mean")

# token_ce(params, input_ids, attention_mask, hf_labels) -> (ce [N, T], mask [N, T]): the CE of
# predicting token t + 1 at position t (labels unshifted, -100 ignored).
TokenCE = Callable[..., tuple[jax.Array, jax.Array]]


@dataclass(frozen=True)
class ObjectiveConfig:
    """Method arguments (names as in the authors' trainer configs).

    loss: base forget loss. variant: "plain", "group" (BalDRO-G) or "dv" (BalDRO-DV).
    beta: NPO 0.1 / SimNPO 4.5. delta: SimNPO margin. beta1, beta2: SatImp exponents.
    gamma, alpha: forget and retain weights. sampling_ratio: G's k = max(1, int(b * ratio)).
    beta_dv: DV temperature (`beta_dv_forget` / `sigma_forget`). dv_sign: -1 = the authors'
    code (soft-min), +1 = the paper text's soft-max. retain_reduction: "auto" = what each
    trainer of the authors does (sequence-sum mean for DrNPO / DrSatImp, token mean otherwise).
    groups: original per-device batches per micro-batch (see the module docstring).
    reference: NPO's reference NLLs "precomputed" once (batch field `ref_nll`) or from a
    "frozen" copy of the initial weights passed as the step's `reference` constants.
    """

    loss: str = "npo"
    variant: str = "plain"
    beta: float = 0.1
    delta: float = 0.0
    beta1: float = 5.0
    beta2: float = 1.0
    gamma: float = 1.0
    alpha: float = 1.0
    sampling_ratio: float = 0.5
    beta_dv: float = 1.0
    dv_sign: int = -1
    retain_reduction: str = "auto"
    groups: int = 1
    reference: str = "precomputed"

    def __post_init__(self):
        checks = (
            ("loss", self.loss, LOSSES),
            ("variant", self.variant, VARIANTS),
            ("retain_reduction", self.retain_reduction, RETAIN_REDUCTIONS),
            ("reference", self.reference, ("precomputed", "frozen")),
        )
        for name, value, choices in checks:
            if value not in choices:
                raise ValueError(f"unlearn.{name}: {value!r} is not one of {choices}")
        if self.variant != "plain" and self.loss in ("ga", "graddiff"):
            raise ValueError(f"unlearn.variant={self.variant!r} needs loss npo, simnpo or satimp")
        if self.dv_sign not in (-1, 1):
            raise ValueError(f"unlearn.dv_sign must be -1 or +1, got {self.dv_sign}")
        if self.groups < 1:
            raise ValueError(f"unlearn.groups must be >= 1, got {self.groups}")
        topk_count(1, self.sampling_ratio)

    @property
    def retain_mode(self) -> str:
        if self.retain_reduction != "auto":
            return self.retain_reduction
        if self.variant == "dv" and self.loss in ("npo", "satimp"):
            return "sequence_sum_mean"
        return "token_mean"

    @property
    def needs_reference(self) -> bool:
        return self.loss == "npo"


def _groups(x: jax.Array, g: int) -> jax.Array:
    if x.shape[0] % g:
        raise ValueError(f"micro-batch of {x.shape[0]} rows is not divisible by groups={g}")
    return x.reshape(g, x.shape[0] // g, *x.shape[1:])


def _rows(side: Mapping[str, jax.Array], idx: jax.Array) -> dict[str, jax.Array]:
    return {k: jnp.take(v, idx, axis=0) for k, v in side.items()}


def _forward(token_ce: TokenCE, params, forget, retain):
    """One forward over [forget; retain] rows -> per-side (ce, mask), masks include row_valid."""
    n = forget["input_ids"].shape[0]
    cat = lambda k: jnp.concatenate([forget[k], retain[k]])
    ce, mask = token_ce(params, cat("input_ids"), cat("attention_mask"), cat("labels"))
    valid = jnp.concatenate([forget["row_valid"], retain["row_valid"]])
    mask = mask & valid[:, None]
    return (ce[:n], mask[:n]), (ce[n:], mask[n:])


def _reference_nll(cfg, token_ce, reference, forget) -> jax.Array:
    if cfg.reference == "precomputed":
        if "ref_nll" not in forget:
            raise KeyError("reference='precomputed' needs a `ref_nll` field in the forget batch")
        return forget["ref_nll"]
    ce, mask = token_ce(
        reference,
        forget["input_ids"],
        forget["attention_mask"],
        forget["labels"],
    )
    return jax.lax.stop_gradient(sequence_nll(ce, mask))


def _forget_values(cfg: ObjectiveConfig, ce, mask, ref_nll):
    """Per-sample [n] (NPO, SimNPO) or per-token [n, T] (SatImp) forget losses."""
    if cfg.loss == "npo":
        return npo_loss(sequence_nll(ce, mask), ref_nll, cfg.beta)
    if cfg.loss == "simnpo":
        return simnpo_loss(sequence_nll(ce, mask), num_label_tokens(mask), cfg.beta, cfg.delta)
    return satimp_token_loss(ce, cfg.beta1, cfg.beta2, mask)


def _reduce_forget(cfg: ObjectiveConfig, values, mask, rows, g: int) -> jax.Array:
    """Per-group reduction (mean or DV) of the forget losses, averaged over groups -> scalar."""
    token_level = values.ndim == 2
    entries = (mask & rows[:, None]) if token_level else rows
    vg, mg = _groups(values, g), _groups(entries, g)
    if cfg.variant == "dv":
        per = jax.vmap(lambda v, m: dv_aggregate(v, cfg.beta_dv, m, cfg.dv_sign))(vg, mg)
    else:
        per = jax.vmap(masked_mean)(vg, mg)
    return jnp.mean(per)


def _retain_loss(cfg: ObjectiveConfig, ce, mask, g: int) -> jax.Array:
    per = jax.vmap(lambda c, m: retain_nll_loss(c, m, reduction=cfg.retain_mode))(
        _groups(ce, g), _groups(mask, g)
    )
    return jnp.mean(per)


def _select_group_rows(cfg, token_ce, params, forget, retain, rng, g: int):
    """BalDRO-G: the k hardest forget rows and k random retain rows of each group (indices)."""
    ce, mask = token_ce(
        jax.lax.stop_gradient(params),
        forget["input_ids"],
        forget["attention_mask"],
        forget["labels"],
    )
    hardness = jax.lax.stop_gradient(-sequence_mean_nll(ce, mask))
    b = forget["input_ids"].shape[0] // g
    f_idx, f_sel = jax.vmap(lambda h, m: group_topk_indices(h, cfg.sampling_ratio, m))(
        _groups(hardness, g), _groups(forget["row_valid"], g)
    )
    k = f_idx.shape[1]
    keys = jax.random.split(rng, g)
    r_idx, r_ok = jax.vmap(lambda key, m: random_subset_indices(key, b, k, m))(
        keys, _groups(retain["row_valid"], g)
    )
    offset = (jnp.arange(g) * b)[:, None]
    return (
        (f_idx + offset).reshape(-1),
        f_sel.reshape(-1),
        (r_idx + offset).reshape(-1),
        r_ok.reshape(-1),
    )


def objective(
    cfg: ObjectiveConfig,
    token_ce: TokenCE,
    params,
    reference,
    batch: Mapping[str, Mapping[str, jax.Array]],
    rng: jax.Array,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The loss of one micro-batch, `gamma * L_forget + alpha * L_retain`, and its metrics.

    Every reduction averages over the micro-batch's valid rows (`row_valid`), so a short
    micro-batch at an epoch's end is one micro-batch mean among `grad_accum`, as HF 4.45
    accumulates (each micro-batch loss divided by the accumulation steps).

    Args:
      cfg: the method arguments.
      token_ce: per-token CE of the model under `params` (see `TokenCE`).
      params: trainable parameters (differentiated).
      reference: the frozen reference parameters of NPO (`reference="frozen"`), else None.
      batch: {"forget": {...}, "retain": {...}}, each side [B, L] arrays of
        `jaxmethods.data.forget_retain.gather_examples` (+ "ref_nll" [B] when precomputed).
      rng: key for BalDRO-G's random retain subset.
    Returns:
      (scalar loss, metrics of scalars).
    """
    forget, retain = dict(batch["forget"]), dict(batch["retain"])
    g = cfg.groups
    metrics: dict[str, jax.Array] = {}
    if cfg.variant == "group":
        f_idx, f_sel, r_idx, r_ok = _select_group_rows(
            cfg, token_ce, params, forget, retain, rng, g
        )
        forget = _rows(forget, f_idx)
        forget["row_valid"] = forget["row_valid"] & f_sel
        retain = _rows(retain, r_idx)
        retain["row_valid"] = retain["row_valid"] & r_ok
        metrics["selected_fraction"] = jnp.sum(f_sel) / jnp.maximum(
            jnp.sum(batch["forget"]["row_valid"]), 1
        )
    (f_ce, f_mask), (r_ce, r_mask) = _forward(token_ce, params, forget, retain)
    rows = forget["row_valid"]
    if cfg.loss in ("ga", "graddiff"):
        forget_loss = gradient_ascent_loss(f_ce, f_mask)
    else:
        ref = _reference_nll(cfg, token_ce, reference, forget) if cfg.needs_reference else None
        values = _forget_values(cfg, f_ce, f_mask, ref)
        forget_loss = _reduce_forget(cfg, values, f_mask, rows, g)
        if values.ndim == 1:
            metrics["forget_sample_loss_std"] = jnp.sqrt(
                masked_mean((values - masked_mean(values, rows)) ** 2, rows)
            )
    retain_loss = jnp.zeros(()) if cfg.loss == "ga" else _retain_loss(cfg, r_ce, r_mask, g)
    loss = cfg.gamma * forget_loss + (0.0 if cfg.loss == "ga" else cfg.alpha) * retain_loss
    metrics.update(
        forget_loss=forget_loss,
        retain_loss=retain_loss,
        forget_avg_nll=masked_mean(sequence_mean_nll(f_ce, f_mask), rows),
    )
    return loss, metrics
