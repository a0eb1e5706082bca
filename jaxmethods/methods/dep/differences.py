"""Peer maps and the per-sample `his` / `diff` soft-prompt rows, as DEP codes them (host NumPy).

Peer maps (`create-dataset.py`, over every test user of every category): with `emb` the user's
[len(test profile) + 1, D] embeddings (chronological profile texts, then the test target),
- `his[key] = emb[:-2]` (drops the val-target and test-target rows),
- `mean[key] = his.mean(0)`,
- `reviewers[asin] = {(user_id, idx)}` for idx over `test_profile[:-2]` (= the i = 7 train
  profile: neither the train, val nor test target), keyed by asin only, not by category.

Soft rows (`data/personal_dataset.py`) for a sample of user u: the profile sorted most recent
first (stable sort), E = flip(emb[:len(profile)]); for review j whose asin has more than one
reviewer entry, over the peers r != u:
    w_r = softmax_r( ||mu_u - mu_r|| / sum_r' ||mu_u - mu_r'|| )          (L1 first, then softmax)
    diff_j = sum_r w_r (E[j] - his[r][idx_r]),   his_j = E[j]
collected until 8 reviews; output concat(his, diff) [16, D].

Quirks kept by default (`DiffOptions`):
- `mean_rows="code"`: mu is the mean of `emb[:-2]`, which includes the row of the i = 7 train
  target (the "full-profile mean" the community fork calls a leak). `"history"` uses `emb[:-3]`,
  exactly the reviews the peer map indexes, so no sample's target enters any mean.
- `len(reviewers[asin]) > 1` counts u's own entry, so a review absent from u's map entries (the
  val sample's newest review) needs two peers. `peer_rule="others"` asks for one peer != u.
- fewer than 8 reviews with peers: the sample is skipped (the authors' model would break);
  `pad_missing=True` zero-pads the missing rows (the community fork's cold-start proposal).
All weights have zero norm (every peer mean equals u's): the authors divide 0 by 0 and train on
NaN; we raise instead, naming the user and the asin.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from jaxmethods.methods.dep.data import Sample

NUM_SOFT = 8  # review embeddings per sample (and as many difference embeddings)


@dataclass(frozen=True)
class DiffOptions:
    mean_rows: str = "code"  # "code" (emb[:-2]) | "history" (emb[:-3]); module docstring
    peer_rule: str = "code"  # "code" (len(reviewers) > 1) | "others" (a reviewer other than u)
    pad_missing: bool = False

    def __post_init__(self):
        if self.mean_rows not in ("code", "history"):
            raise ValueError(f"DiffOptions.mean_rows: {self.mean_rows!r} not 'code'|'history'")
        if self.peer_rule not in ("code", "others"):
            raise ValueError(f"DiffOptions.peer_rule: {self.peer_rule!r} not 'code'|'others'")


DEFAULT_OPTIONS = DiffOptions()


@dataclass
class PeerMaps:
    """`his[key]` [n, D] float32, `mean[key]` [D], `reviewers[asin]` {(user_id, idx)}."""

    his: dict[str, np.ndarray] = field(default_factory=dict)
    mean: dict[str, np.ndarray] = field(default_factory=dict)
    reviewers: dict[str, set[tuple[str, int]]] = field(default_factory=lambda: defaultdict(set))


@dataclass(frozen=True)
class SoftInputs:
    """`his_diff` [16, D] float32 (rows 0-7 his, 8-15 diff), the reviews they come from (most
    recent first) and how many of the 8 were real (the rest zero-padded)."""

    his_diff: np.ndarray
    reviews: tuple[dict, ...]
    count: int


def build_peer_maps(
    test_samples: Iterable[Sample],
    load_embeddings: Callable[[Sample], np.ndarray],
    options: DiffOptions = DEFAULT_OPTIONS,
) -> PeerMaps:
    """Peer maps over the test samples; `load_embeddings(sample) -> [len(profile)+1, D]`."""
    maps = PeerMaps()
    for s in test_samples:
        emb = np.asarray(load_embeddings(s), np.float32)
        if emb.shape[0] != len(s.profile) + 1:
            raise ValueError(
                f"{s.where}: user {s.user_id} ({s.category}) has {emb.shape[0]} embedding rows, "
                f"expected len(profile) + 1 = {len(s.profile) + 1}"
            )
        his = emb[:-2]
        maps.his[s.key] = his
        maps.mean[s.key] = (his if options.mean_rows == "code" else emb[:-3]).mean(0)
        for idx, review in enumerate(s.profile[:-2]):
            maps.reviewers[review["asin"]].add((s.user_id, idx))
    return maps


def peer_weights(prof_diffs: np.ndarray) -> np.ndarray:
    """[P, D] peer-mean differences -> [P] weights: norms, L1-normalised, then softmax."""
    norms = np.linalg.norm(prof_diffs.astype(np.float32), axis=1)
    total = norms.sum()
    w = norms / total
    w = np.exp(w - w.max())
    return (w / w.sum()).astype(np.float32)


def recent_first(profile: Iterable[dict]) -> list[dict]:
    """Python's stable `sorted(..., key=timestamp, reverse=True)`, as the authors."""
    return sorted(profile, key=lambda r: r["timestamp"], reverse=True)


def soft_inputs(
    sample: Sample,
    user_emb: np.ndarray,
    maps: PeerMaps,
    options: DiffOptions = DEFAULT_OPTIONS,
) -> SoftInputs | None:
    """The sample's [16, D] `his_diff` rows, or None when fewer than 8 reviews have peers (and
    `pad_missing` is off). `user_emb` is the user's embedding file (chronological rows)."""
    profile = recent_first(sample.profile)
    if user_emb.shape[0] < len(profile):
        raise ValueError(
            f"{sample.where}: user {sample.user_id} has {user_emb.shape[0]} embedding rows, "
            f"fewer than the sample's {len(profile)} profile reviews"
        )
    rows = np.asarray(user_emb, np.float32)[: len(profile)][::-1]
    mu_u = maps.mean[sample.key]
    his, diff, used = [], [], []
    for j, review in enumerate(profile):
        entries = maps.reviewers.get(review["asin"], set())
        peers = [(r, i) for r, i in sorted(entries) if r != sample.user_id]
        has_peers = len(entries) > 1 if options.peer_rule == "code" else bool(peers)
        if not has_peers:
            continue
        if not peers:  # only u's own entries (the same user in two categories)
            raise ValueError(f"{sample.where}: asin {review['asin']} lists no peer other than u")
        mean_diffs, item_diffs = [], []
        for r_uid, r_idx in peers:
            key = f"{r_uid}_{sample.category}"  # the sample's category, as the authors
            if key not in maps.his:
                raise KeyError(f"{sample.where}: peer {key} of asin {review['asin']} not in maps")
            mean_diffs.append(mu_u - maps.mean[key])
            item_diffs.append(rows[j] - maps.his[key][r_idx])
        mean_diffs = np.stack(mean_diffs)
        if not np.linalg.norm(mean_diffs, axis=1).sum() > 0:
            raise ValueError(
                f"{sample.where}: user {sample.user_id}, asin {review['asin']}: every peer's "
                "mean embedding equals the user's (0/0 weights)"
            )
        w = peer_weights(mean_diffs)
        diff.append((w[:, None] * np.stack(item_diffs)).sum(0))
        his.append(rows[j])
        used.append(review)
        if len(his) == NUM_SOFT:
            break
    count = len(his)
    if count < NUM_SOFT:
        if not options.pad_missing:
            return None
        pad = [np.zeros(user_emb.shape[1], np.float32)] * (NUM_SOFT - count)
        his, diff = his + pad, diff + pad
    return SoftInputs(np.concatenate([np.stack(his), np.stack(diff)]), tuple(used), count)
