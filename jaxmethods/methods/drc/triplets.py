"""Triplets (anchor x_a, positive-style x_s, positive-semantic x_m) for DRC's stage 1, with
pluggable mining rules [reconstruction: DRC's mining is unknown].

A mining rule maps item metadata (a dict of [N] arrays) to a style key and a semantic key per
item; then x_s shares x_a's style key with a different semantic key, and x_m shares x_a's
semantic key with a different style key. Built-in rules:
  labels   meta["style"], meta["semantic"] (the synthetic world: style id, shape class);
  sticker  SER-30K: the sticker theme (Pigeon's genre id `gid`, one theme per user) is the
           style, the emotion label `emo` the semantics;
  movie    MovieLens posters: the user who liked the poster (a user's liked posters share the
           user's taste) is the style, the first genre the semantics.
`register_rule(name, fn)` adds one.

    keys = mining_keys("sticker", {"gid": gid, "emo": emo})
    triplets = build_triplets(*keys, seed=0)   # [T, 3] int (a, s, m) item indices
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

MiningRule = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


def _field(meta: dict[str, np.ndarray], name: str, rule: str) -> np.ndarray:
    if name not in meta:
        raise KeyError(f"triplet rule {rule!r}: item metadata has no field {name!r} ({list(meta)})")
    return np.asarray(meta[name])


RULES: dict[str, MiningRule] = {
    "labels": lambda m: (_field(m, "style", "labels"), _field(m, "semantic", "labels")),
    "sticker": lambda m: (_field(m, "gid", "sticker"), _field(m, "emo", "sticker")),
    "movie": lambda m: (_field(m, "uid", "movie"), _field(m, "genre", "movie")),
}


def register_rule(name: str, rule: MiningRule) -> None:
    """Adds a mining rule: `rule(meta) -> (style_key [N], semantic_key [N])`."""
    RULES[name] = rule


def mining_keys(rule: str, meta: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(style_key [N], semantic_key [N]) of the named rule."""
    if rule not in RULES:
        raise KeyError(f"triplet rule {rule!r} is unknown; known: {sorted(RULES)}")
    style, sem = RULES[rule](meta)
    if style.shape != sem.shape or style.ndim != 1:
        raise ValueError(f"triplet rule {rule!r}: keys must be [N], got {style.shape}, {sem.shape}")
    return style, sem


def build_triplets(
    style_key: np.ndarray,
    semantic_key: np.ndarray,
    *,
    anchors: np.ndarray | None = None,
    per_anchor: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """[T, 3] int (anchor, positive-style, positive-semantic) item indices, `per_anchor` draws
    for each anchor (default: every item) that has both positives; anchors without one are
    skipped. The positives are uniform among the qualifying items."""
    style_key, semantic_key = np.asarray(style_key), np.asarray(semantic_key)
    rng = np.random.default_rng(seed)
    by_style, by_sem = defaultdict(list), defaultdict(list)
    for i, (s, m) in enumerate(zip(style_key.tolist(), semantic_key.tolist())):
        by_style[s].append(i)
        by_sem[m].append(i)
    by_style = {k: np.asarray(v) for k, v in by_style.items()}
    by_sem = {k: np.asarray(v) for k, v in by_sem.items()}
    anchors = np.arange(len(style_key)) if anchors is None else np.asarray(anchors)
    out = []
    for a in anchors.tolist():
        s_key, m_key = style_key[a], semantic_key[a]
        same_style = by_style[s_key.item() if hasattr(s_key, "item") else s_key]
        same_sem = by_sem[m_key.item() if hasattr(m_key, "item") else m_key]
        pos_s = same_style[semantic_key[same_style] != m_key]
        pos_m = same_sem[style_key[same_sem] != s_key]
        if len(pos_s) == 0 or len(pos_m) == 0:
            continue
        for _ in range(per_anchor):
            out.append((a, rng.choice(pos_s), rng.choice(pos_m)))
    return np.asarray(out, np.int64).reshape(-1, 3)
