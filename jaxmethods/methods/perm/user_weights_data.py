"""Per-user preference pairs over PERM's perspective scores: synthetic users and a JSONL reader.

Scores are normalised as PERM does: raw / maximum of the judge scale (5 for the 1–5 rubrics, 100
for the 0–100 bystander).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxmethods.data.jsonl import jsonl_objects
from jaxmethods.methods.perm.user_weights_config import SCORE_RANGE, UserPairs, UserWeightsConfig

SPLITS = ("support", "query")


def score_scales(perspectives: Sequence[str]) -> np.ndarray:
    """[K] the maximum of each perspective's judge scale (the normaliser)."""
    return np.array([SCORE_RANGE[p][1] for p in perspectives], np.float32)


def make_synthetic(cfg: UserWeightsConfig, seed: int) -> UserPairs:
    """`cfg.num_users` users x `cfg.pairs_per_user` pairs with hidden Dirichlet weights.

    Each completion has a latent quality q ~ N(0, 1); perspective k's score is the rounded,
    clipped z_k = ρ q + sqrt(1 - ρ²) e_k (ρ = `score_correlation`) mapped to the judge scale
    (3 + 1.2 z on 1..5, 60 + 20 z on 0..100). User u prefers the first completion with
    probability σ((U_u(a) - U_u(b)) / T), U_u = hidden_u · normalised scores, T =
    `label_temperature`. Deterministic in `seed`.
    """
    rng = np.random.default_rng(seed)
    k, n_users, n_pairs = len(cfg.perspectives), cfg.num_users, cfg.pairs_per_user
    mean = np.asarray(cfg.population_weights or np.ones(k), np.float64)
    concentration = k * cfg.dirichlet_alpha * mean / mean.sum()
    hidden = rng.dirichlet(concentration, size=n_users).astype(np.float32)
    rho = cfg.score_correlation
    quality = rng.standard_normal((n_users, n_pairs, 2, 1))
    z = rho * quality + np.sqrt(1.0 - rho**2) * rng.standard_normal((n_users, n_pairs, 2, k))
    lo = np.array([SCORE_RANGE[p][0] for p in cfg.perspectives], np.float64)
    hi = score_scales(cfg.perspectives).astype(np.float64)
    centre = np.where(hi > 5, 60.0, 3.0)
    spread = np.where(hi > 5, 20.0, 1.2)
    raw = np.clip(np.rint(centre + spread * z), lo, hi)
    scores = (raw / hi).astype(np.float32)  # [U, P, 2, K]
    utility = np.einsum("upck,uk->upc", scores, hidden)
    p_first = 1.0 / (1.0 + np.exp(-(utility[..., 0] - utility[..., 1]) / cfg.label_temperature))
    first = rng.random((n_users, n_pairs)) < p_first
    chosen = np.where(first[..., None], scores[:, :, 0], scores[:, :, 1])
    rejected = np.where(first[..., None], scores[:, :, 1], scores[:, :, 0])
    mask = np.ones((n_users, n_pairs), bool)
    return UserPairs(
        chosen=chosen,
        rejected=rejected,
        mask=mask,
        support=split_support(mask, cfg.support_frac, seed),
        users=tuple(str(u) for u in range(n_users)),  # ids "0".."U-1": row u is user u
        perspectives=tuple(cfg.perspectives),
        hidden_weights=hidden,
    )


def split_support(mask: np.ndarray, support_frac: float, seed: int) -> np.ndarray:
    """[U, P] bool: a seeded `support_frac` of each user's real pairs (at least one, and at least
    one held out when the user has two or more pairs)."""
    rng = np.random.default_rng([seed, 1])
    support = np.zeros_like(mask)
    for u in range(mask.shape[0]):
        idx = np.flatnonzero(mask[u])
        if len(idx) == 0:
            continue
        n = round(support_frac * len(idx))
        n = min(max(n, 1), max(len(idx) - 1, 1))
        support[u, rng.permutation(idx)[:n]] = True
    return support


def read_jsonl(path: str, cfg: UserWeightsConfig) -> UserPairs:
    """Reads `{"user": id, "chosen_scores": [K], "rejected_scores": [K], "split"?: ...}` lines.

    Scores are raw judge scores in the order of `cfg.perspectives`, each within its judge scale.
    The users (rows of every per-user array) are sorted: integer ids numerically first (ids
    0..U-1 are rows 0..U-1), then the other ids. Lines without "split" are split per user as
    `split_support(support_frac, cfg.seed)`; with it, "support" pairs are adapted on and "query"
    pairs held out. Blank lines are skipped. Errors name the file, the line and the field.
    """
    k = len(cfg.perspectives)
    lo = np.array([SCORE_RANGE[p][0] for p in cfg.perspectives], np.float64)
    hi = score_scales(cfg.perspectives).astype(np.float64)
    by_user: dict[str, list[tuple[np.ndarray, np.ndarray, str | None]]] = {}
    for where, rec in jsonl_objects(path):
        if "user" not in rec:
            raise ValueError(f"{where}: missing field 'user'")
        user = rec["user"]
        if not isinstance(user, (str, int)) or isinstance(user, bool):
            raise ValueError(f"{where}: field 'user' must be a string or an integer")
        pair = [
            _scores(rec, name, where, cfg.perspectives, lo, hi)
            for name in ("chosen_scores", "rejected_scores")
        ]
        split = rec.get("split")
        if split is not None and split not in SPLITS:
            raise ValueError(f"{where}: field 'split' must be one of {SPLITS}, got {split!r}")
        by_user.setdefault(str(user), []).append((pair[0] / hi, pair[1] / hi, split))
    if not by_user:
        raise ValueError(f"{path}: no preference pairs")
    users = tuple(sorted(by_user, key=_id_order))
    width = max(len(v) for v in by_user.values())
    shape = (len(users), width)
    chosen = np.zeros((*shape, k), np.float32)
    rejected = np.zeros((*shape, k), np.float32)
    mask = np.zeros(shape, bool)
    given = np.zeros(shape, bool)
    explicit = np.zeros(shape, bool)
    for u, name in enumerate(users):
        for p, (c, r, split) in enumerate(by_user[name]):
            chosen[u, p], rejected[u, p], mask[u, p] = c, r, True
            explicit[u, p] = split is not None
            given[u, p] = split == "support"
    support = np.where(explicit, given, split_support(mask, cfg.support_frac, cfg.seed))
    return UserPairs(chosen, rejected, mask, support, users, tuple(cfg.perspectives), None)


def _id_order(user: str) -> tuple:
    """Integer ids first, numerically (so ids 0..U-1 are rows 0..U-1), then the others."""
    return (0, int(user), "") if user.lstrip("-").isdigit() else (1, 0, user)


def _scores(
    rec: dict, name: str, where: str, perspectives: Sequence[str], lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    k = len(perspectives)
    if name not in rec:
        raise ValueError(f"{where}: missing field {name!r}")
    value = rec[name]
    if not isinstance(value, list) or len(value) != k:
        raise ValueError(f"{where}: field {name!r} must be a list of {k} scores, got {value!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{where}: field {name!r} must hold numbers, got {value!r}")
    arr = np.asarray(value, np.float64)
    bad = np.flatnonzero(~np.isfinite(arr) | (arr < lo) | (arr > hi))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{where}: field {name!r}[{i}] ({perspectives[i]}) = {value[i]!r} is outside its scale "
            f"[{lo[i]:g}, {hi[i]:g}]"
        )
    return arr
