"""MRM evaluation (authors' `evaluate_maml`): adapt θ_w on each user's train pairs, then
user-level accuracy on the user's test pairs, for seen, unseen and all users."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.data.preferences import TEST, TRAIN, PreferenceCorpus
from jaxmethods.data.user_splits import pad_pairs, pair_rows, user_split_pairs
from jaxmethods.losses import masked_mean
from jaxmethods.methods.mrm.objective import base_rewards, make_pair_loss
from jaxmethods.methods.mrm.tasks import round_up
from jaxmethods.train.meta import InnerLoopConfig, adapt

SHAPE_BUCKET = 32  # users and pairs per user are padded to multiples of this at evaluation


@functools.partial(jax.jit, static_argnums=(0,))
def all_base_rewards(graphdef: nnx.GraphDef, params: dict, embeddings: jax.Array) -> jax.Array:
    """φ of every response: [N, D] -> [N, K]."""
    return base_rewards(graphdef, params, embeddings)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _adapted_accuracy(graphdef, inner: InnerLoopConfig, params, phi, train, test):
    pair_loss = make_pair_loss(graphdef, params["base"])

    def one(train_u, test_u):
        (c, r, m), (tc, tr, tm) = train_u, test_u
        theta = params["theta_w"]
        if inner.steps > 0:
            theta = adapt(theta, None, (phi[c], phi[r], m), pair_loss, inner)
        w = nnx.merge(graphdef, theta, params["base"]).weights()
        return pair_accuracy(phi[tc] @ w - phi[tr] @ w, tm)

    return jax.vmap(one)(train, test)


def user_accuracies(
    graphdef: nnx.GraphDef,
    params: dict,
    phi: jax.Array,
    corpus: PreferenceCorpus,
    users: np.ndarray,
    inner: InnerLoopConfig,
    *,
    chunk: int = 1024,
) -> np.ndarray:
    """[len(users)] accuracy on each user's test pairs after `inner.steps` adaptation steps on its
    train pairs (no meta-gradient); NaN for users without test pairs."""
    fn = lambda train, test, _pos: _adapted_accuracy(graphdef, inner, params, phi, train, test)
    return map_users(fn, corpus, users, chunk=chunk)


def map_users(
    fn: Callable[[tuple, tuple, np.ndarray], jax.Array],
    corpus: PreferenceCorpus,
    users: np.ndarray,
    *,
    chunk: int = 1024,
) -> np.ndarray:
    """Applies a per-user-batch accuracy function over `users` in fixed-size chunks.

    Args:
      fn: `(train, test, positions) -> [U] accuracy`, with `train`/`test` = (chosen [U, P],
        rejected [U, P], mask [U, P]) embedding rows of each user's train / test pairs and
        `positions` [U] int32 the users' positions in `users` (for per-user parameter tables).
      users: user indices into the corpus.
    Returns:
      [len(users)] float accuracies; NaN for users without test pairs.
    """
    users = np.asarray(users)
    train = pair_rows(corpus, user_split_pairs(corpus, users, TRAIN))
    test = pair_rows(corpus, user_split_pairs(corpus, users, TEST))
    # Widths from the whole corpus in coarse buckets, so seen and unseen users, MRM and its
    # peers share compiled shapes.
    width_train, width_test = (
        round_up(_max_pairs_per_user(corpus, split), SHAPE_BUCKET) for split in (TRAIN, TEST)
    )
    size = chunk if len(users) > chunk else round_up(len(users), SHAPE_BUCKET)
    positions = np.arange(len(users), dtype=np.int32)
    out = []
    for s in range(0, len(users), chunk):
        rows_train = train[s : s + chunk]
        rows_test = test[s : s + chunk]
        pos = positions[s : s + chunk]
        pad = size - len(rows_train)
        rows_train = rows_train + [rows_train[0]] * pad
        rows_test = rows_test + [rows_test[0]] * pad
        pos = np.concatenate([pos, np.full((pad,), pos[0], np.int32)])
        acc = fn(pad_pairs(rows_train, width_train), pad_pairs(rows_test, width_test), pos)
        out.append(np.asarray(acc)[: size - pad])
    acc = np.concatenate(out) if out else np.zeros((0,), np.float32)
    has_test = np.array([len(c) > 0 for c, _ in test], dtype=bool)
    return np.where(has_test, acc, np.nan)


def _max_pairs_per_user(corpus: PreferenceCorpus, split: int) -> int:
    users = corpus.pair_user[corpus.pair_split == split]
    return int(np.bincount(users).max()) if users.size else 1


def pair_accuracy(margin: jax.Array, mask: jax.Array) -> jax.Array:
    """Share of valid pairs with r(chosen) > r(rejected): margin [..., P], mask [..., P] -> [...]."""
    return masked_mean((margin > 0).astype(jnp.float32), mask, axis=-1)


def summarize(seen_acc: np.ndarray, unseen_acc: np.ndarray, worst_frac: float = 0.1) -> dict:
    """User-level accuracy: seen, unseen, overall (mean over all users), and the mean over the
    worst `worst_frac` of all users. Users without test pairs are left out."""
    both = np.concatenate([seen_acc, unseen_acc])
    both = both[~np.isnan(both)]
    k = max(1, int(np.ceil(worst_frac * len(both)))) if len(both) else 0
    mean = lambda a: float(np.nanmean(a)) if np.any(~np.isnan(a)) else float("nan")
    return {
        "seen_acc": mean(seen_acc),
        "unseen_acc": mean(unseen_acc),
        "overall_acc": mean(both),
        f"worst{round(worst_frac * 100)}_acc": float(np.sort(both)[:k].mean())
        if k
        else float("nan"),
        "num_seen": int(np.sum(~np.isnan(seen_acc))),
        "num_unseen": int(np.sum(~np.isnan(unseen_acc))),
    }


def evaluate(
    graphdef: nnx.GraphDef,
    params: dict,
    embeddings: jax.Array,
    corpus: PreferenceCorpus,
    seen: np.ndarray,
    unseen: np.ndarray,
    inner: InnerLoopConfig,
    *,
    inner_steps: int,
    worst_frac: float = 0.1,
    chunk: int = 1024,
) -> dict:
    """Adapts every user with `inner_steps` steps of the inner optimizer and summarizes."""
    inner = dataclasses.replace(inner, steps=inner_steps)
    phi = all_base_rewards(graphdef, params, embeddings)
    acc = lambda users: user_accuracies(graphdef, params, phi, corpus, users, inner, chunk=chunk)
    return summarize(acc(seen), acc(unseen), worst_frac)
