"""Scores of the generations on Pigeon's data (`real_run.run_real`).

Without a pixel decoder (LaVIT's SDXL decoder is external), per test window i and row:
  token_acc   fraction of the N generated visual ids equal to the target's, position by position
  hist_cos    mean over the 5 history images of cos(f(gen), f(history_j))
  ref_cos     cos(f(gen), f(reference)); on Pigeon's data the reference is the target image
with f(codes) = the mean feature of the visual ids (`run._features`: the codebook features the
demo uses; here the codes file's `codebook` or the LM's input embeddings of the visual ids).

With the decoded PNGs (`<decoded>/<row>/<i>.png`, i = line of `generations/index.jsonl`) and the
original history / target images of Pigeon's folder: Pigeon's metric set
(`jaxmethods.eval.personalization_metrics`; CLIP / DINO / LPIPS skipped with a line each when
their weights are absent), every image resized to `data.image_size` first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxmethods.methods.drc.data import load_image
from jaxmethods.methods.drc.judges import mean_se
from jaxmethods.methods.drc.run import _cos, _features

TOKEN_METRICS = ("token_acc", "hist_cos", "ref_cos")


def token_metrics(
    gen: np.ndarray, target: np.ndarray, history: np.ndarray, reference: np.ndarray,
    features: np.ndarray,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Per-window scores [n] (module docstring) of gen [n, N] against target [n, N], history
    [n, 5, N] and reference [n, N] codes; features [codebook_size, D]."""
    f_gen = _features(gen, features)
    return {
        "token_acc": np.mean(gen == target, axis=1),
        "hist_cos": np.mean(_cos(f_gen[:, None], _features(history, features)), axis=1),
        "ref_cos": _cos(f_gen, _features(reference, features)),
    }


def token_table(scores: dict[str, dict[str, np.ndarray]]) -> tuple[dict[str, float], str]:
    """(flat `<row>/<metric>` and `_se` numbers, a markdown table) of `token_metrics` per row."""
    metrics: dict[str, float] = {}
    lines = ["| row | " + " | ".join(TOKEN_METRICS) + " |", "|" + "---|" * 4]
    for row, per in scores.items():
        cells = []
        for k in TOKEN_METRICS:
            m, se = mean_se(per[k])
            metrics[f"{row}/{k}"], metrics[f"{row}/{k}_se"] = m, se
            cells.append(f"{m:.3f} ± {se:.3f}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    n = len(next(iter(scores.values()))["token_acc"]) if scores else 0
    lines.append(f"({n} test windows; ± = standard error; target = the ground truth's own ids)")
    return metrics, "\n".join(lines)


def decoded_paths(decoded_dir: str, row: str, n: int) -> tuple[list[str], int]:
    """(`<decoded_dir>/<row>/<i>.png` for i < n, how many of them are missing)."""
    paths = [os.path.join(decoded_dir, row, f"{i}.png") for i in range(n)]
    return paths, sum(not os.path.isfile(p) for p in paths)


def image_file(data_path: str, rel: str) -> str | None:
    """An item's image: `all_image_paths.npy`'s entry as given (absolute), under the data
    folder, its parent, or the parent's `Images` / `images` folder (Pigeon keeps
    `<dataset>/processed_seq` next to `<dataset>/Images`); None when none exists."""
    parent = os.path.dirname(os.path.abspath(data_path))
    roots = ("", data_path, parent, os.path.join(parent, "Images"), os.path.join(parent, "images"))
    for root in roots:
        p = os.path.join(root, rel) if root else rel
        if (root or os.path.isabs(rel)) and os.path.isfile(p):
            return p
    return None


def load_uint8(paths: Sequence[str], size: int, on_mismatch: str) -> np.ndarray:
    """Image files -> [len, size, size, 3] float32 in 0..255 (`data.load_image`)."""
    return np.stack([(load_image(p, size, on_mismatch=on_mismatch) + 1.0) * 127.5 for p in paths])


def metric_models():
    """Pigeon's CLIP ViT-H-14 and DINOv2-large from the HF cache, LPIPS from its default place
    (`load_metric_models`: each one absent becomes a skip line)."""
    from jaxmethods.eval.personalization_metrics import CLIP_ID, DINO_ID, load_metric_models

    return load_metric_models(CLIP_ID, DINO_ID)


def pixel_metrics(
    gen_paths: Sequence[str], hist_paths: Sequence[Sequence[str]], target_paths: Sequence[str],
    *, size: int, on_mismatch: str, target_texts: Sequence[str],
    history_texts: Sequence[Sequence[str]], models=None,
) -> tuple[dict[str, float], list[str]]:  # fmt: skip
    """Pigeon's metric set on image files: ({metric: mean, metric_se: s.e.}, skip lines).
    models: `MetricModels` (None = `metric_models()`)."""
    from jaxmethods.eval.personalization_metrics import personalization_metrics

    if models is None:
        models = metric_models()
    k = len(hist_paths[0])
    hist = load_uint8([p for row in hist_paths for p in row], size, on_mismatch)
    rep = personalization_metrics(
        load_uint8(gen_paths, size, on_mismatch), hist.reshape(len(gen_paths), k, *hist.shape[1:]),
        load_uint8(target_paths, size, on_mismatch), models, target_texts=list(target_texts),
        history_texts=[list(t) for t in history_texts],
    )  # fmt: skip
    out = dict(rep.values)
    out |= {f"{m}_se": se for m, se in rep.standard_errors().items()}
    return out, list(rep.skipped)


def score_pixels(cfg: Any, inp: dict, rows: Sequence[str], workdir: str):
    """(`<row>/pixel/<metric>` numbers, status lines) of a `real_run` (`cfg`: its
    `DRCRunConfig`, `inp`: `real_run.real_inputs`): Pigeon's metric set for every row whose
    decoded PNGs are all there; a line per row still awaiting decoding or skipped metric."""
    d, data = cfg.data, inp["data"]
    decoded = d.decoded_dir or os.path.join(workdir, "decoded")
    n, out, lines = len(inp["test"]["target"]), {}, []
    ready = {}
    for row in rows:
        paths, missing = decoded_paths(decoded, row, n)
        if missing:
            lines.append(
                f"{row}: pixel metrics await decoding ({missing} of {n} PNGs missing under "
                f"{os.path.join(decoded, row)}; decode generations/{row}.npy there and rerun)"
            )
        else:
            ready[row] = paths
    if not ready:
        return out, lines
    if data.image_paths is None:
        return out, [*lines, f"pixel metrics skipped: {d.path} has no all_image_paths.npy"]
    test = inp["test"]
    iids = np.concatenate([test["hist_ids"].ravel(), test["target_ids"]])
    files = {int(i): image_file(d.path, str(data.image_paths[i])) for i in np.unique(iids)}
    lost = [i for i, f in files.items() if f is None]
    if lost:
        where = f"{data.image_paths[lost[0]]!r} under {d.path}, its parent or the parent's Images/"
        return out, [*lines, f"pixel metrics skipped: no image file for items {lost[:5]} ({where})"]
    sem, models = data.semantics, metric_models()
    for row, paths in ready.items():
        vals, skipped = pixel_metrics(
            paths, [[files[int(i)] for i in h] for h in test["hist_ids"]],
            [files[int(i)] for i in test["target_ids"]], size=d.image_size,
            on_mismatch=d.on_mismatch, target_texts=[sem[i] for i in test["target_ids"]],
            history_texts=[[sem[i] for i in h] for h in test["hist_ids"]], models=models,
        )  # fmt: skip
        out |= {f"{row}/pixel/{k}": v for k, v in vals.items()}
        lines += [s for s in skipped if s not in lines]
    return out, lines
