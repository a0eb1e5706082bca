"""Synthetic personalized preferences: users mixing K hidden reward directions (MRM demo, tests).

Generative model (all draws from `numpy.random.default_rng(seed)`):

1. Hidden reward directions V [K, D]: unit vectors with pairwise cosine `direction_cosine`
   (V = chol(G) @ Q, G = (1 - c) I + c 11^T, Q orthonormal rows). A negative cosine makes the
   directions disagree on more pairs: for K = 2 the share of pairs where sign(v_1 . d) differs
   from sign(v_2 . d) is arccos(c) / pi (0.5 at c = 0, ~0.6 at c = -0.3).
2. User mixture w_u ~ Dirichlet(mixture_concentration * 1_K); the default 0.3 (Beta(0.3, 0.3)
   for K = 2) pushes most users towards one direction, so no single global reward fits everyone.
   User u's true reward is r_u(x) = w_u . (V x), the form MRM models (softmax weights over K
   linear base rewards).
3. Ragged sizes: user u has n_u ~ U{pairs_per_user} pairs over c_u ~ U{convs_per_user}
   conversations (c_u <= n_u; every conversation gets at least one pair).
4. Conversation c has a context vector p_c ~ N(0, I_D); each pair draws two responses
   x = feature_scale * (p_c + z), z ~ N(0, I_D) (two embedding rows per pair).
5. Label: the response with the larger r_u is chosen, then the label is flipped with
   probability `label_noise` (the best achievable per-user accuracy is about 1 - label_noise).
6. Splits: the PRISM protocol (`user_splits.apply_conversation_split`, seed `split_seed`, by
   default `seed`): seen/unseen users 50/50, half of each user's conversations train, half test.

`SyntheticGroundTruth` keeps V and the w_u (aligned with `corpus.users`) and scores any reward
weights on the corpus, e.g. the oracle per-user mixture against the best single global mixture.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxmethods.data.preferences import TEST, PreferenceCorpus
from jaxmethods.data.user_splits import apply_conversation_split


@dataclasses.dataclass(frozen=True)
class SyntheticGroundTruth:
    """The hidden parameters behind a synthetic corpus.

    Attributes:
      directions: [K, D] unit reward directions V.
      user_weights: [U, K] mixtures w_u (rows on the simplex), in `corpus.users` order.
      label_flipped: [P] bool, pairs whose observed label disagrees with the user's true reward.
      disagreement: share of pairs on which the K directions do not all agree.
    """

    directions: np.ndarray
    user_weights: np.ndarray
    label_flipped: np.ndarray
    disagreement: float

    def user_accuracy(
        self, corpus: PreferenceCorpus, weights: np.ndarray, split: int = TEST
    ) -> np.ndarray:
        """Per-user accuracy of reward (weights . V x) on the observed labels of `split` pairs.

        Args:
          weights: [K] one mixture for everyone, or [U, K] one per user.

        Returns:
          [U] float64, NaN for a user without pairs in `split`.
        """
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim == 1:
            weights = np.broadcast_to(weights, (corpus.num_users, weights.shape[0]))
        diff = corpus.embeddings[corpus.chosen] - corpus.embeddings[corpus.rejected]
        margin = np.einsum("pd,kd,pk->p", diff, self.directions, weights[corpus.pair_user])
        in_split = corpus.pair_split == split
        correct = np.bincount(
            corpus.pair_user[in_split], (margin > 0)[in_split], minlength=corpus.num_users
        )
        total = np.bincount(corpus.pair_user[in_split], minlength=corpus.num_users)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, correct / total, np.nan)


def _directions(rng: np.random.Generator, k: int, dim: int, cosine: float) -> np.ndarray:
    if dim < k:
        raise ValueError(f"make_synthetic_corpus: dim={dim} must be >= num_rewards={k}")
    if k > 1 and not -1.0 / (k - 1) < cosine < 1.0:
        raise ValueError(
            f"make_synthetic_corpus: direction_cosine={cosine} must lie in (-1/(K-1), 1) "
            f"= ({-1.0 / (k - 1):.3f}, 1) for K={k}"
        )
    q, _ = np.linalg.qr(rng.normal(size=(dim, k)))
    gram = (1.0 - cosine) * np.eye(k) + cosine * np.ones((k, k))
    return np.linalg.cholesky(gram) @ q.T


def _check_range(name: str, value: tuple[int, int], low: int) -> tuple[int, int]:
    lo, hi = (value, value) if isinstance(value, int) else tuple(value)
    if not low <= lo <= hi:
        raise ValueError(f"make_synthetic_corpus: {name}={value} must satisfy {low} <= lo <= hi")
    return int(lo), int(hi)


def make_synthetic_corpus(
    num_users: int,
    dim: int,
    num_rewards: int = 2,
    pairs_per_user: tuple[int, int] | int = (12, 32),
    convs_per_user: tuple[int, int] | int = (4, 8),
    label_noise: float = 0.1,
    seed: int = 0,
    *,
    mixture_concentration: float = 0.3,
    direction_cosine: float = -0.3,
    feature_scale: float = 1.0,
    split_seed: int | None = None,
) -> tuple[PreferenceCorpus, SyntheticGroundTruth]:
    """Draws a synthetic personalized-preference corpus (see the module docstring for the model).

    Args:
      num_users: users before the split (>= 2; every user keeps >= 1 train and 1 test conversation).
      dim: embedding dimension D. num_rewards: K hidden directions.
      pairs_per_user, convs_per_user: inclusive (lo, hi) ranges (or one int); convs lo >= 2.
      label_noise: probability of flipping a label. seed: seeds the draws and the splits.
      split_seed: seed of the seen/unseen and train/test split only (default `seed`), so that
        repeats re-split the same users and pairs (MRM's `repeats`, seed + r).

    Returns:
      (corpus, ground_truth): corpus with 2 rows per pair, `user_seen` set by the PRISM protocol.
    """
    if num_users < 2:
        raise ValueError(f"make_synthetic_corpus: num_users={num_users} must be >= 2")
    if not 0.0 <= label_noise < 0.5:
        raise ValueError(f"make_synthetic_corpus: label_noise={label_noise} must be in [0, 0.5)")
    if mixture_concentration <= 0:
        raise ValueError("make_synthetic_corpus: mixture_concentration must be > 0")
    p_lo, p_hi = _check_range("pairs_per_user", pairs_per_user, 2)
    c_lo, c_hi = _check_range("convs_per_user", convs_per_user, 2)
    rng = np.random.default_rng(seed)
    directions = _directions(rng, num_rewards, dim, direction_cosine)
    weights = rng.dirichlet(np.full(num_rewards, mixture_concentration), size=num_users)

    n_pairs = rng.integers(p_lo, p_hi + 1, size=num_users)
    n_convs = np.minimum(rng.integers(c_lo, c_hi + 1, size=num_users), n_pairs)
    pair_user = np.repeat(np.arange(num_users), n_pairs)
    # Every conversation gets one pair, the rest are spread uniformly; sorted so that each
    # conversation's pairs are contiguous, as in the real datasets.
    conv_local = np.concatenate(
        [
            np.sort(np.concatenate([np.arange(c), rng.integers(0, c, size=n - c)]))
            for n, c in zip(n_pairs, n_convs)
        ]
    )
    conv_offset = np.concatenate([[0], np.cumsum(n_convs)[:-1]])
    pair_conv = conv_offset[pair_user] + conv_local
    context = rng.normal(size=(int(n_convs.sum()), dim))
    num_pairs = pair_user.shape[0]
    noise = rng.normal(size=(num_pairs, 2, dim))
    responses = feature_scale * (context[pair_conv][:, None, :] + noise)  # [P, 2, D]

    margin = np.einsum(
        "pd,kd,pk->p", responses[:, 0] - responses[:, 1], directions, weights[pair_user]
    )
    first_wins = (margin > 0) ^ (rng.random(num_pairs) < label_noise)
    rows = 2 * np.arange(num_pairs)
    chosen = np.where(first_wins, rows, rows + 1)
    users = [f"user_{u:04d}" for u in range(num_users)]
    raw = PreferenceCorpus(
        embeddings=responses.reshape(2 * num_pairs, dim).astype(np.float32),
        users=users,
        pair_user=pair_user,
        pair_conv=pair_conv,
        pair_split=np.zeros(num_pairs, np.int8),
        chosen=chosen,
        rejected=np.where(first_wins, rows + 1, rows),
    )
    corpus = apply_conversation_split(raw, seed=seed if split_seed is None else split_seed)

    diff = corpus.embeddings[corpus.chosen] - corpus.embeddings[corpus.rejected]
    position = {u: i for i, u in enumerate(users)}
    user_of = np.array([position[u] for u in corpus.users])
    final_weights = weights[user_of]
    true_margin = np.einsum("pd,kd,pk->p", diff, directions, final_weights[corpus.pair_user])
    signs = np.sign(diff.astype(np.float64) @ directions.T)  # [P, K]
    truth = SyntheticGroundTruth(
        directions=directions,
        user_weights=final_weights,
        label_flipped=true_margin < 0,
        disagreement=float(np.mean(np.any(signs != signs[:, :1], axis=1))),
    )
    return corpus, truth
