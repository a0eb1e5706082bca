"""Held-out evaluation of per-user perspective weights against PERM's fixed rewards.

Every reward goes through PERM's own composition (`rewards.make_compose`, the function GRPO
trains with): the weighted methods through its per-user weight table, "harmonic" through PERM's
fixed reward (harmonic mean of the three rubric scores plus the bystander term; the length
penalty is the same for both completions of a judged pair and is left out). A pair counts as
right when the chosen completion gets the higher reward, as half when the rewards tie (integer
judge scores make ties common for the fixed rewards).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxmethods.methods.perm.rewards import EMPATHY_KINDS, SCALE, RewardConfig, make_compose
from jaxmethods.methods.perm.user_weights_config import UserPairs, UserWeightsConfig

TIE_TOL = 1e-6  # reward margins within this count as ties (float rounding of equal sums)
# Methods in table order: weights tables (logits) first, then the fixed rewards.
METHODS = ("adapted", "adapted_from_uniform", "init", "uniform", "harmonic", "hidden")
# Paired per-user differences reported: (method, baseline, short name of the baseline).
PAIRED = (("adapted", "harmonic", "harmonic"), ("adapted", "adapted_from_uniform", "from_uniform"))
LABELS = {
    "adapted": "adapted (meta-learned init + support pairs)",
    "adapted_from_uniform": "adapted from uniform init (no meta-learning)",
    "init": "meta-learned init, not adapted",
    "uniform": "uniform mean",
    "harmonic": "PERM fixed (harmonic + bystander)",
    "hidden": "hidden weights (oracle)",
}


def pair_accuracy(margin: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[U] share of `mask` pairs with margin > 0, ties (|margin| <= TIE_TOL) counting half;
    margin, mask: [U, P]. NaN for a user without pairs."""
    credit = np.where(np.abs(margin) <= TIE_TOL, 0.5, (margin > 0).astype(np.float64))
    n = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (credit * mask).sum(axis=1) / n, np.nan)


def raw_scores(pairs: UserPairs, side: np.ndarray) -> np.ndarray:
    """[U, P, K] normalised scores -> [U * P, K] raw judge scores (PERM's compose input)."""
    scale = np.array([SCALE[p] for p in pairs.perspectives], np.float32)
    return (side * scale).reshape(-1, side.shape[-1])


def weighted_margins(pairs: UserPairs, tables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """method -> [U, P] r_u(chosen) − r_u(rejected) for each [U, K] weight table, through PERM's
    per-user weighted composition (all tables in one call: rows of method m use users
    m · U + u of the stacked table)."""
    names = list(tables)
    stacked = np.concatenate([np.asarray(tables[m], np.float32) for m in names])
    tiled = dataclasses.replace(
        pairs,
        chosen=np.concatenate([pairs.chosen] * len(names)),
        rejected=np.concatenate([pairs.rejected] * len(names)),
        mask=np.concatenate([pairs.mask] * len(names)),
    )
    cfg = RewardConfig(use_length_penalty=False, use_standby=False)
    compose = make_compose(cfg, _kinds(pairs), stacked, pairs.perspectives)
    margins = _margins(tiled, compose)
    n = pairs.num_users
    return {m: margins[i * n : (i + 1) * n] for i, m in enumerate(names)}


def harmonic_margins(pairs: UserPairs) -> np.ndarray | None:
    """[U, P] margins of PERM's fixed reward, or None without the three rubric perspectives."""
    if any(k not in pairs.perspectives for k in EMPATHY_KINDS):
        return None
    cfg = RewardConfig(
        mode="harmonic", use_length_penalty=False, use_standby="standby" in pairs.perspectives
    )
    return _margins(pairs, make_compose(cfg, _kinds(pairs)))


def _kinds(pairs: UserPairs) -> tuple[str, ...]:
    return tuple(pairs.perspectives)


def _margins(pairs: UserPairs, compose) -> np.ndarray:
    n_users, n_pairs = pairs.mask.shape  # the rows of `compose`'s user table
    user = {"user": jnp.repeat(jnp.arange(n_users, dtype=jnp.int32), n_pairs)}
    lengths = jnp.zeros((n_users * n_pairs,), jnp.int32)
    fn = jax.jit(compose)  # one compile instead of one per eager op
    reward = lambda side: np.asarray(fn(raw_scores(pairs, side), lengths, user), np.float64)
    return (reward(pairs.chosen) - reward(pairs.rejected)).reshape(n_users, n_pairs)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return float("nan"), float("nan")
    se = float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")
    return float(np.mean(x)), se


def tv_from_uniform(weights: np.ndarray) -> np.ndarray:
    """[U] total-variation distance of each row of [U, K] weights from the uniform weights."""
    return 0.5 * np.abs(weights - 1.0 / weights.shape[-1]).sum(axis=-1)


def evaluate(
    cfg: UserWeightsConfig, pairs: UserPairs, logits: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], str, str, dict[str, float]]:
    """Held-out (query-pair) accuracy of every method, the tables and flat metrics.

    Args:
      logits: method name -> [U, K] logits (or [K], shared by every user), e.g. "adapted",
        "adapted_from_uniform", "init"; "uniform", "harmonic" and (with hidden weights) "hidden"
        are added here.
    Returns:
      (method -> [U] accuracy, markdown summary table, markdown per-user table, flat metrics).
    """
    n_users, k = pairs.num_users, len(pairs.perspectives)
    weights = {m: np.broadcast_to(_softmax(np.asarray(v)), (n_users, k)) for m, v in logits.items()}
    weights["uniform"] = np.full((n_users, k), 1.0 / k, np.float32)
    if pairs.hidden_weights is not None:
        weights["hidden"] = pairs.hidden_weights
    margins = weighted_margins(pairs, weights)
    harmonic = harmonic_margins(pairs)
    if harmonic is not None:
        margins["harmonic"] = harmonic
    query = pairs.query
    methods = [m for m in METHODS if m in margins] + [m for m in margins if m not in METHODS]
    accuracy = {m: pair_accuracy(margins[m], query) for m in methods}

    far = None
    if pairs.hidden_weights is not None:
        far = tv_from_uniform(pairs.hidden_weights) > cfg.far_threshold
    metrics: dict[str, float] = {
        "user_weights/num_users": float(n_users),
        "user_weights/num_query_pairs": float(query.sum()),
        "user_weights/num_support_pairs": float(pairs.support.sum()),
    }
    rows = []
    for m in methods:
        mean, se = _mean_se(accuracy[m])
        metrics[f"user_weights/acc/{m}"], metrics[f"user_weights/acc_se/{m}"] = mean, se
        row = [LABELS.get(m, m), f"{mean:.3f} ± {se:.3f}"]
        if far is not None:
            f_mean, f_se = _mean_se(accuracy[m][far])
            metrics[f"user_weights/far_acc/{m}"] = f_mean
            metrics[f"user_weights/far_acc_se/{m}"] = f_se
            row.append(f"{f_mean:.3f} ± {f_se:.3f}")
        rows.append(row)
    for a, b, short in PAIRED:
        if a not in accuracy or b not in accuracy:
            continue
        diff = accuracy[a] - accuracy[b]
        name = f"user_weights/{a}_minus_{short}"
        mean, se = _mean_se(diff)
        metrics[name], metrics[f"{name}_se"] = mean, se
        valid = ~np.isnan(diff)
        metrics[f"user_weights/{a}_beats_{short}_frac"] = float(np.mean(diff[valid] > 0))
        row = [f"{a} − {b} (paired)", f"{mean:+.3f} ± {se:.3f}"]
        if far is not None:
            f_mean, f_se = _mean_se(diff[far])
            metrics[f"user_weights/far_{a}_minus_{short}"] = f_mean
            metrics[f"user_weights/far_{a}_minus_{short}_se"] = f_se
            row.append(f"{f_mean:+.3f} ± {f_se:.3f}")
        rows.append(row)
    if far is not None:
        metrics["user_weights/num_far_users"] = float(far.sum())
        for m in ("adapted", "init", "adapted_from_uniform"):
            if m in weights:
                err = np.abs(weights[m] - pairs.hidden_weights).sum(axis=-1) / 2
                metrics[f"user_weights/weight_tv_error/{m}"] = float(err.mean())
    if "init" in weights:
        for p, w in zip(pairs.perspectives, weights["init"][0]):
            metrics[f"user_weights/init_weight/{p}"] = float(w)

    head = ["method", f"all {n_users} users"]
    if far is not None:
        head.append(f"{int(far.sum())} far users (TV > {cfg.far_threshold:g})")
    lines = [
        f"Held-out pairwise accuracy (mean ± s.e. over users; {int(query.sum())} query pairs, "
        "ties count half)",
        "",
        _md_row(head),
        _md_row(["---"] * len(head)),
        *(_md_row(r) for r in rows),
    ]
    return accuracy, "\n".join(lines), _per_user_table(pairs, weights, accuracy, methods), metrics


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _per_user_table(
    pairs: UserPairs,
    weights: dict[str, np.ndarray],
    accuracy: dict[str, np.ndarray],
    methods: list[str],
) -> str:
    short = lambda w: " ".join(f"{x:.2f}" for x in w)
    persp = "/".join(p[:3] for p in pairs.perspectives)
    head = ["user", "query pairs"]
    if pairs.hidden_weights is not None:
        head += [f"hidden w ({persp})", "TV"]
    head += [f"adapted w ({persp})", *methods]
    lines = [_md_row(head), _md_row(["---"] * len(head))]
    n_query = pairs.query.sum(axis=1)
    tv = tv_from_uniform(pairs.hidden_weights) if pairs.hidden_weights is not None else None
    for u, name in enumerate(pairs.users):
        cells = [name, str(int(n_query[u]))]
        if tv is not None:
            cells += [short(pairs.hidden_weights[u]), f"{tv[u]:.2f}"]
        cells.append(short(weights["adapted"][u]) if "adapted" in weights else "")
        cells += [f"{accuracy[m][u]:.2f}" for m in methods]
        lines.append(_md_row(cells))
    return "\n".join(lines)
