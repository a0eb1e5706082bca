"""Judges of the demo: a style classifier and a shape classifier trained in the run, and the
scores they give a generation (style accuracy, semantic accuracy, guidance collapse).

Each judge is a one-hidden-layer MLP on the average-pooled (`pool`), flattened image (style) or
on `cell_features` (shape) ([B, S, S, 3] in
[-1, 1]), trained with Adam on labelled images of the synthetic world (the run feeds VQ round-tripped images, the
distribution the generations are decoded into). The judges are NumPy (forward, backward and
Adam by hand, ~20 lines): an XLA compilation of the same MLP costs more CPU time on the demo's
2 cores than the whole training.

Per generated image i of an episode with user style u_i, reference style r_i (!= u_i),
reference shape m_i and history shapes H_i:
  style_ok_i = [style(x_i) = u_i]             semantic_ok_i = [shape(x_i) = m_i]
  collapse_i = [style(x_i) = r_i]  or  [shape(x_i) != m_i and shape(x_i) in H_i]
i.e. the style follows the reference, or the semantics follow the history instead of the
reference (the issue's "guidance collapse").
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Classifier:
    """params: {w1 [F, H], b1 [H], w2 [H, C], b2 [C]} float32 NumPy; num_classes C."""

    params: dict[str, np.ndarray]
    num_classes: int
    pool: int = 2
    features: str = "pixels"

    def logits(self, images: np.ndarray) -> np.ndarray:
        """images [B, S, S, 3] -> logits [B, C]."""
        return _forward(self.params, _inputs(images, self.features, self.pool))[1]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """images [B, S, S, 3] -> class ids [B] int."""
        return self.logits(images).argmax(-1)


def _flat(images: np.ndarray, pool: int) -> np.ndarray:
    """[B, S, S, C] -> [B, (S/pool)^2 C] (pool x pool average pooling)."""
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[1] % pool or x.shape[2] % pool:
        raise ValueError(f"judges: images must be [B, S, S, C], S divisible by {pool}: {x.shape}")
    b, h, w, c = x.shape
    return x.reshape(b, h // pool, pool, w // pool, pool, c).mean((2, 4)).reshape(b, -1)


def cell_features(images: np.ndarray, cell: int = 8) -> np.ndarray:
    """[B, S, S, 3] -> [B, 2 cell^2]: per cell of cell x cell pixels, the channel-mean absolute
    deviation from the cell's median colour, scaled to max 1 (colour-free: what is drawn in the
    cell), then the mean and the max over the cells (position-free)."""
    x = np.asarray(images, np.float32)
    b, h, w, c = x.shape
    if h % cell or w % cell:
        raise ValueError(f"cell_features: images {x.shape} are not a grid of {cell}-px cells")
    cells = x.reshape(b, h // cell, cell, w // cell, cell, c).transpose(0, 1, 3, 2, 4, 5)
    cells = cells.reshape(b, -1, cell * cell, c)
    dev = np.abs(cells - np.median(cells, axis=2, keepdims=True)).mean(-1)  # [B, cells, p]
    dev /= dev.max(-1, keepdims=True) + 0.05
    return np.concatenate([dev.mean(1), dev.max(1)], -1)


def _inputs(images: np.ndarray, features: str, pool: int) -> np.ndarray:
    if features == "cells":
        return cell_features(images)
    if features != "pixels":
        raise ValueError(f"judges: features {features!r} is not pixels or cells")
    return _flat(images, pool)


def _forward(p: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = np.maximum(_mm(x, p["w1"]) + p["b1"], 0.0)
    return h, _mm(h, p["w2"]) + p["b2"]


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b by einsum without BLAS: OpenBLAS's thread pool costs ~10x more CPU than these small
    products on a busy 2-core machine."""
    return np.einsum("ij,jk->ik", a, b)


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    hidden: int = 128,
    steps: int = 300,
    batch_size: int = 128,
    lr: float = 2e-3,
    pool: int = 2,
    features: str = "pixels",
    seed: int = 0,
) -> Classifier:
    """An MLP classifier fitted by Adam (betas 0.9, 0.999) on the mean softmax cross-entropy of
    (images [N, S, S, 3], labels [N] int) in random mini-batches."""
    x, y = _inputs(images, features, pool), np.asarray(labels, np.int64)
    if len(x) != len(y) or y.min() < 0 or y.max() >= num_classes:
        raise ValueError(
            f"train_classifier: {len(x)} images and {len(y)} labels in [{y.min()}, {y.max()}] "
            f"for {num_classes} classes"
        )
    rng = np.random.default_rng(seed)
    f = x.shape[1]
    p = {
        "w1": rng.normal(0, f**-0.5, (f, hidden)).astype(np.float32),
        "b1": np.zeros(hidden, np.float32),
        "w2": rng.normal(0, hidden**-0.5, (hidden, num_classes)).astype(np.float32),
        "b2": np.zeros(num_classes, np.float32),
    }
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    for t in range(1, steps + 1):
        idx = rng.choice(len(x), min(batch_size, len(x)), replace=False)
        xb, yb = x[idx], y[idx]
        h, logits = _forward(p, xb)
        prob = np.exp(logits - logits.max(-1, keepdims=True))
        prob /= prob.sum(-1, keepdims=True)
        prob[np.arange(len(yb)), yb] -= 1.0
        g_logits = prob / len(yb)  # d mean CE / d logits
        g_h = _mm(g_logits, p["w2"].T) * (h > 0)
        grads = {"w1": _mm(xb.T, g_h), "b1": g_h.sum(0), "w2": _mm(h.T, g_logits),
                 "b2": g_logits.sum(0)}  # fmt: skip
        for k, g in grads.items():
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            step = lr * (m[k] / (1 - 0.9**t)) / (np.sqrt(v[k] / (1 - 0.999**t)) + 1e-8)
            p[k] = (p[k] - step).astype(np.float32)
    return Classifier(params=p, num_classes=num_classes, pool=pool, features=features)


@dataclasses.dataclass
class Judges:
    style: Classifier
    shape: Classifier


def train_judges(
    images: np.ndarray, style: np.ndarray, shape: np.ndarray, *, num_styles: int,
    num_shapes: int, steps: int = 300, hidden: int = 128, seed: int = 0,
) -> Judges:  # fmt: skip
    """Both judges on the same labelled images [N, S, S, 3]: the style judge on 4x4-pooled
    pixels (colours and stripes), the shape judge on `cell_features` (what is drawn in the
    cells, free of colour and position)."""
    return Judges(
        style=train_classifier(images, style, num_styles, steps=steps, hidden=hidden, pool=4,
                               seed=seed),
        shape=train_classifier(images, shape, num_shapes, steps=steps, hidden=hidden,
                               features="cells", seed=seed + 1),
    )  # fmt: skip


def episode_scores(
    style_pred: np.ndarray,
    shape_pred: np.ndarray,
    *,
    user_style: np.ndarray,
    ref_style: np.ndarray,
    ref_shape: np.ndarray,
    hist_shapes: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-generation 0/1 scores [N] float (module docstring): style_ok, semantic_ok,
    style_collapse, semantic_collapse, collapse. hist_shapes: [N, 5]."""
    style_pred, shape_pred = np.asarray(style_pred), np.asarray(shape_pred)
    if np.any(np.asarray(user_style) == np.asarray(ref_style)):
        raise ValueError("episode_scores: a reference has the user's style (not an episode)")
    style_collapse = style_pred == ref_style
    in_hist = (np.asarray(hist_shapes) == shape_pred[:, None]).any(-1)
    sem_collapse = (shape_pred != ref_shape) & in_hist
    out = {
        "style_ok": style_pred == user_style,
        "semantic_ok": shape_pred == ref_shape,
        "style_collapse": style_collapse,
        "semantic_collapse": sem_collapse,
        "collapse": style_collapse | sem_collapse,
    }
    return {k: v.astype(np.float64) for k, v in out.items()}


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """(mean, standard error = std(ddof=1) / sqrt(n)) of per-sample values [N]."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x)))


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean, s.e.) of a - b over paired samples [N] (same episodes, same seeds)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: shapes differ, {a.shape} vs {b.shape}")
    return mean_se(a - b)
