"""Config and data types of the per-user perspective weights (see `user_weights`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from jaxmethods.train.config import ConfigError, non_negative, positive, unchecked
from jaxmethods.train.meta import HYPERGRAD_MODES, InnerLoopConfig

PERSPECTIVES = ("resonation", "expression", "reception", "standby")
# Raw score range of each perspective (judge scale); scores are divided by the maximum.
SCORE_RANGE = {"resonation": (1, 5), "expression": (1, 5), "reception": (1, 5), "standby": (0, 100)}
SOURCES = ("synthetic", "jsonl")


def _default_inner() -> InnerLoopConfig:
    # eps_root > 0 keeps the reverse-mode hypergradient finite when a user's inner gradient has an
    # exact zero (all support pairs tie on a perspective)
    return InnerLoopConfig(optimizer="adam", lr=0.3, steps=3, eps_root=1e-12)


@dataclass(frozen=True)
class UserWeightsConfig:
    """The `user_weights` section of `PERMConfig`.

    Data: `source` "synthetic" (users generated in the run) or "jsonl" (`path`: one pair a line,
    `{"user": ..., "chosen_scores": [...], "rejected_scores": [...]}` with raw judge scores in the
    order of `perspectives`, optional `"split": "support" | "query"`).

    Synthetic users: `num_users` users with hidden weights ~ Dirichlet(K · `dirichlet_alpha` ·
    m) over the perspectives, m = `population_weights` normalised (empty: uniform), i.e. the
    population's mean weights are m (what a meta-learned init can pick up) and a small alpha
    puts each user far from uniform. The default m (4, 1, 1, 2) makes the population lean on
    resonation, then standby: a shared structure for θ_0 to learn (with m uniform θ_0 can only
    stay near uniform, and adapting from it is the same as from uniform logits); `pairs_per_user` pairs of completions whose
    perspective scores share a latent quality with correlation `score_correlation`; the chosen
    one is drawn from BT(hidden utility / `label_temperature`).

    Each user's pairs are split once (seeded) into support (`support_frac`; used for
    meta-training and adaptation) and held-out query pairs (evaluation only).

    `reward_scale` multiplies the reward margin in the BT loss (the weights live on the simplex and
    cannot grow the margin themselves).

    Meta-learning: `meta_steps` Adam steps (lr `meta_lr`) on θ_0; each step takes
    `tasks_per_batch` random users (0: all), re-draws each one's support pairs into inner-support
    and inner-query (`val_ratio` of them to the inner query), adapts with `inner`, and applies RPO
    (`rpo_tail_frac`, `rpo_gamma`) to the inner-query BT losses. `hypergrad` as in
    `jaxmethods.train.meta`. θ_0 starts at `init_scale` · N(0, 1) (0: uniform weights). The
    default `inner` is 3 Adam steps of lr 0.3 from a fresh state (MRM's scripts take one step;
    Adam moves every logit by about lr per step, so the steps x lr bound how far a user's
    weights can leave θ_0).

    Evaluation: users whose hidden weights are farther than `far_threshold` (total variation)
    from uniform form the "far" subset of the table (synthetic data only).
    """

    enabled: bool = False
    perspectives: tuple[str, ...] = PERSPECTIVES
    source: str = "synthetic"
    path: str = ""
    # synthetic users
    num_users: int = 64
    pairs_per_user: int = 24
    dirichlet_alpha: float = positive(0.3)
    population_weights: tuple[float, ...] = (4.0, 1.0, 1.0, 2.0)
    score_correlation: float = non_negative(0.3)
    label_temperature: float = positive(0.05)
    # per-user split
    support_frac: float = 0.5
    # the BT logit of user u's pair is reward_scale * (r_u(chosen) - r_u(rejected)); rewards lie in
    # [0, 1], so a scale near 1 / label_temperature keeps the BT loss curved (softmax weights
    # cannot scale the margin themselves)
    reward_scale: float = positive(20.0)
    # meta-learning
    inner: InnerLoopConfig = field(default_factory=_default_inner)
    meta_steps: int = 150
    meta_lr: float = 0.05
    tasks_per_batch: int = positive(16, allow=(0,))
    val_ratio: float = 0.5
    hypergrad: str = "second_order"
    rpo_tail_frac: float = 0.5
    rpo_gamma: float = unchecked(0.5)
    init_scale: float = non_negative(0.0)
    # evaluation
    far_threshold: float = non_negative(0.3)
    seed: int = 0

    def __post_init__(self):
        unknown = [p for p in self.perspectives if p not in SCORE_RANGE]
        if unknown or not self.perspectives:
            raise ConfigError(
                f"config.user_weights.perspectives: unknown {unknown} (choose from {PERSPECTIVES})"
            )
        if self.source not in SOURCES:
            raise ConfigError(
                f"config.user_weights.source must be one of {SOURCES}, got {self.source!r}"
            )
        if self.source == "jsonl" and not self.path:
            raise ConfigError(
                "config.user_weights.path: required when user_weights.source = 'jsonl'"
            )
        if self.hypergrad not in HYPERGRAD_MODES:
            raise ConfigError(
                f"config.user_weights.hypergrad must be one of {HYPERGRAD_MODES}, "
                f"got {self.hypergrad!r}"
            )
        if self.population_weights and (
            len(self.population_weights) != len(self.perspectives)
            or min(self.population_weights) <= 0
        ):
            raise ConfigError(
                f"config.user_weights.population_weights: need {len(self.perspectives)} positive "
                f"numbers (one per perspective), got {self.population_weights}"
            )
        if self.score_correlation >= 1.0:
            raise ConfigError(
                f"config.user_weights.score_correlation must be < 1, got {self.score_correlation}"
            )
        for name in ("support_frac", "val_ratio", "rpo_tail_frac"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(
                    f"config.user_weights.{name} must be in (0, 1), got {getattr(self, name)}"
                )


@dataclass(frozen=True)
class UserPairs:
    """Per-user preference pairs over perspective scores, padded to P pairs per user.

    chosen, rejected: [U, P, K] float32 normalised scores (raw / scale max, in [0, 1]).
    mask: [U, P] bool, real pairs.
    support: [U, P] bool, the pairs a user adapts on (the rest of `mask` is held out).
    users: U user ids; perspectives: the K score columns.
    hidden_weights: [U, K] the users' true weights (synthetic data) or None.
    """

    chosen: np.ndarray
    rejected: np.ndarray
    mask: np.ndarray
    support: np.ndarray
    users: tuple[str, ...]
    perspectives: tuple[str, ...]
    hidden_weights: np.ndarray | None = None

    @property
    def query(self) -> np.ndarray:
        """[U, P] bool, the held-out evaluation pairs."""
        return self.mask & ~self.support

    @property
    def num_users(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class UserWeightsResult:
    """init_logits [K] (meta-learned θ_0), user_logits [U, K] (adapted), weights [U, K]
    (softmax of user_logits; the table GRPO's weighted composition indexes by user), accuracy
    (method -> [U] held-out pairwise accuracy), table (markdown summary over users),
    user_table (markdown, one row per user: hidden/adapted weights and accuracies), metrics (flat name -> number
    for `make_summary`), meta_losses [meta_steps] (the RPO objective per meta step)."""

    init_logits: np.ndarray
    user_logits: np.ndarray
    weights: np.ndarray
    accuracy: dict[str, np.ndarray]
    table: str
    user_table: str
    metrics: dict[str, float]
    meta_losses: np.ndarray
    users: tuple[str, ...] = ()
    perspectives: tuple[str, ...] = ()
