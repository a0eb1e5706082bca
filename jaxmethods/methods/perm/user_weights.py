"""Per-user perspective weights for PERM, meta-learned as in MRM (beyond the paper).

PERM weighs its perspectives equally (a harmonic mean). Here user u's reward is the
softmax(θ_u)-weighted mean of the normalised perspective scores (PERM's "mean, optionally
weighted" mode):

    r_u(c) = Σ_k softmax(θ_u)_k · s_k(c) / scale_k     (scale: 5 for the rubrics, 100 for standby)

MRM's recipe fits θ_u: a shared initialisation θ_0 [K] is meta-learned across users (inner loop:
`InnerLoopConfig.steps` differentiable optimizer steps on a user's support pairs under
`lax.scan`, users `vmap`ped; outer objective: RPO over the users' adapted query Bradley–Terry
losses), then each user adapts θ_0 on its own support pairs. The base rewards are the fixed
perspective scores (no W to learn), so θ_0 is the only meta-parameter.

Evaluation is on held-out query pairs of every user (never seen by meta-training or adaptation):
the adapted weights vs the same adaptation from uniform logits (no meta-learning) vs θ_0 without
adaptation vs the uniform mean vs PERM's fixed reward (harmonic mean + bystander term), and the
hidden weights for synthetic users; mean ± standard error over all users and over the users far
from uniform, and paired per-user differences. Every reward goes through PERM's
`rewards.make_compose`, the composition GRPO trains with. Ties count half (integer judge scores
make ties common for the fixed rewards).

GRPO (perm_mrm): `make_compose(cfg.reward, kinds, result.weights, result.perspectives)` with
`feature_keys=("user",)` and prompt records whose "user" is the row (`attach_users`).

Modules: this one (the public API), `user_weights_config` (config and data types),
`user_weights_data` (synthetic users, the JSONL reader), `user_weights_meta` (meta-learning,
adaptation), `user_weights_eval` (held-out accuracy, table, metrics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxmethods.methods.perm.user_weights_config import (
    PERSPECTIVES,
    SCORE_RANGE,
    UserPairs,
    UserWeightsConfig,
    UserWeightsResult,
)
from jaxmethods.methods.perm.user_weights_data import make_synthetic, read_jsonl
from jaxmethods.methods.perm.user_weights_meta import meta_learn

__all__ = [
    "PERSPECTIVES",
    "SCORE_RANGE",
    "UserPairs",
    "UserWeightsConfig",
    "UserWeightsResult",
    "attach_users",
    "load_user_pairs",
    "meta_learn_user_weights",
    "read_user_pairs",
    "synthetic_user_pairs",
]


def synthetic_user_pairs(cfg: UserWeightsConfig, seed: int | None = None) -> UserPairs:
    """Synthetic users with hidden Dirichlet weights over `cfg.perspectives` (see the config)."""
    return make_synthetic(cfg, cfg.seed if seed is None else seed)


def read_user_pairs(path: str, cfg: UserWeightsConfig) -> UserPairs:
    """Reads per-user pairs from JSONL; errors name the file, line and field."""
    return read_jsonl(path, cfg)


def load_user_pairs(cfg: UserWeightsConfig) -> UserPairs:
    """The pairs `cfg.source` names."""
    return (
        synthetic_user_pairs(cfg) if cfg.source == "synthetic" else read_user_pairs(cfg.path, cfg)
    )


def meta_learn_user_weights(
    cfg: UserWeightsConfig, pairs: UserPairs, mesh=None
) -> UserWeightsResult:
    """Meta-learns θ_0 on the users' support pairs, adapts every user, evaluates on held-out pairs.

    `mesh`: when given, the user axis is split over its batch axes (U is padded to a multiple).
    """
    return meta_learn(cfg, pairs, mesh)


def attach_users(
    records: Sequence[Mapping[str, Any]], users: Sequence[str], seed: int = 0
) -> list[dict[str, Any]]:
    """Prompt records with an int `"user"` field: the row of the `[U, K]` weight table for the
    record's user (GRPO's `feature_keys=("user",)`).

    A record's "user" (a string or an integer id, as in the pairs file) is looked up among
    `users` (`UserWeightsResult.users`: the ids as strings, rows in order). Records without one
    are dealt to the users in a seeded round-robin over random permutations, so every user gets
    prompts. The input records are not modified.
    """
    index = {str(u): i for i, u in enumerate(users)}
    rng = np.random.default_rng([seed, 4])
    deck: list[int] = []
    out = []
    for n, rec in enumerate(records):
        rec = dict(rec)
        user = rec.get("user")
        if user is None:
            if not deck:
                deck = list(rng.permutation(len(users)))
            rec["user"] = int(deck.pop())
        elif str(user) in index and not isinstance(user, bool):
            rec["user"] = index[str(user)]
        else:
            raise ValueError(
                f"prompt record {n}: user {user!r} has no preference pairs (not one of the "
                f"{len(users)} users of the weight table)"
            )
        out.append(rec)
    return out
