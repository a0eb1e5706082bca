"""Pigeon's metric set for personalized image generation (`Evaluation/evaluate_pigeon.py`).

For N samples, each with K history images (Pigeon: K = 5), a target (ground-truth) image and
its text, and one generated image:

  personalization (generated vs each of its K history images, mean over the N * K pairs):
    hist_clip_score        100 cos(CLIP_img(gen), CLIP_txt(history text))
    hist_clip_image_score  100 cos(CLIP_img(gen), CLIP_img(history))           ("CIS")
    hist_dino              100 cos(DINO_cls(gen), DINO_cls(history))
    hist_lpips             LPIPS-vgg(gen, history), images mapped x / 127.5 - 1  (lower = closer)
    hist_ssim, hist_ms_ssim   pytorch_msssim conventions, data_range 255
  semantic alignment (generated vs its target):
    clip_score             100 cos(CLIP_img(gen), CLIP_txt(target text))
    clip_image_score       100 cos(CLIP_img(gen), CLIP_img(target))
    dino                   100 cos(DINO_cls(gen), DINO_cls(target))
  fid                      Frechet distance between the generated and the target sets, on the
                           projected CLIP image features (Pigeon: Inception-v3 pool3, which has
                           no port here; `fid_features` says which features were used)

Every N * K mean equals the mean over samples of the per-sample K-mean (`per_sample`, [N], for
standard errors). Images are uint8-valued [.., H, W, 3] (0..255); Pigeon first resizes every
image to 512 x 512 (bilinear): pass `image_size=(512, 512)` for that; otherwise the three sets
must share one size. Pigeon's history CLIP / DINO features come from the original (not resized)
images; here they come from the same (resized) images as everything else.

Models whose weights are missing are None in `MetricModels`; their metrics are skipped with one
line each (in `PersonalizationReport.skipped`) naming the model and how to get it. SSIM always
runs; MS-SSIM runs when both sides exceed 160 pixels (its 5 scales), else it is skipped with a
line saying so.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmethods.eval.image_metrics import MS_SSIM_WEIGHTS, fid_from_features, ms_ssim, ssim
from jaxmethods.eval.lpips import LPIPSScorer
from jaxmethods.models.vision.preprocess import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocessor
from jaxmethods.models.vision.scores import ClipScorer, DinoScorer

log = logging.getLogger(__name__)

PIGEON_NAMES = {
    "fid": "FID",
    "dino": "DINO Image Score",
    "clip_score": "CLIP Score",
    "clip_image_score": "CLIP Image Score",
    "hist_lpips": "Hist LPIPS",
    "hist_dino": "Hist DINO Image Score",
    "hist_clip_score": "Hist CLIP Score",
    "hist_clip_image_score": "Hist CLIP Image Score",
    "hist_ssim": "Hist SSIM",
    "hist_ms_ssim": "Hist MS-SSIM",
}
CLIP_ID = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"  # open_clip ViT-H-14 laion2b_s32b_b79k, HF format
DINO_ID = "facebook/dinov2-large"
DINO_PREPROCESS = ImagePreprocessor(256, (224, 224), IMAGENET_MEAN, IMAGENET_STD)
MS_SSIM_MIN_SIDE = (11 - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1)  # sides must exceed this


@dataclasses.dataclass
class MetricModels:
    """Feature extractors for the metric set; None skips that model's metrics.

    Attributes:
      clip: CLIP scorer (its tokenizer is needed for the two text scores).
      clip_preprocess: CLIP's preprocessing (default: OpenAI CLIP's 224 px chain).
      dino: DINOv2 scorer; dino_preprocess: its preprocessing (default 256 -> crop 224, ImageNet).
      lpips: LPIPS (VGG) scorer.
      skipped: lines naming the models that could not be loaded and how to get them.
    """

    clip: ClipScorer | None = None
    clip_preprocess: ImagePreprocessor | None = None
    dino: DinoScorer | None = None
    dino_preprocess: ImagePreprocessor | None = None
    lpips: LPIPSScorer | None = None
    skipped: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class PersonalizationReport:
    """values: metric -> mean (and fid); per_sample: metric -> [N]; skipped: one line per metric
    group that did not run; fid_features: the features FID used (or None)."""

    values: dict[str, float]
    per_sample: dict[str, np.ndarray]
    skipped: list[str]
    fid_features: str | None

    def standard_errors(self) -> dict[str, float]:
        """s.e. of each per-sample metric over the N samples (std with ddof 1 / sqrt N)."""
        return {
            k: float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
            for k, v in self.per_sample.items()
        }

    def lines(self) -> list[str]:
        """Pigeon-style log lines: '[Hist CLIP Image Score]: 61.23', then the skip lines."""
        out = [f"[{PIGEON_NAMES[k]}]: {v:.4f}" for k, v in self.values.items()]
        return out + list(self.skipped)


def load_metric_models(
    clip: str | os.PathLike | None = None,
    dino: str | os.PathLike | None = None,
    *,
    lpips_weights: str | os.PathLike | None = None,
    lpips_vgg: str | os.PathLike | None = None,
    lpips_lin: str | os.PathLike | None = None,
    mesh=None,
) -> MetricModels:
    """Loads what is there; each missing model becomes one line in `skipped`.

    Args:
      clip: HF-format CLIP folder or hub id (Pigeon's: `laion/CLIP-ViT-H-14-laion2B-s32B-b79K`);
        its tokenizer and preprocessor_config.json are read from the same folder.
      dino: DINOv2 folder or hub id (Pigeon's: `facebook/dinov2-large`).
      lpips_weights / lpips_vgg / lpips_lin: see `jaxmethods.hf.lpips_loading.load_lpips`.
      mesh: split metric batches over the mesh's data axes.
    """
    from jaxmethods.hf.lpips_loading import LPIPSWeightsMissing, load_lpips
    from jaxmethods.hf.pretrained import resolve_model_path
    from jaxmethods.hf.vision_loading import VisionWeightsMissing, load_vision_model
    from jaxmethods.models.vision.preprocess import load_image_preprocessor

    out = MetricModels()

    def preprocessor(path, default):
        try:
            return load_image_preprocessor(resolve_model_path(path))
        except (OSError, ValueError):
            return default

    if clip:
        try:
            model = load_vision_model(clip, mesh=mesh)
            tokenizer = None
            try:
                from jaxmethods.hf.tokenizer import load_tokenizer

                tokenizer = load_tokenizer(clip)
            except (OSError, ValueError) as e:
                out.skipped.append(f"CLIP score, Hist CLIP score skipped: no CLIP tokenizer ({e})")
            out.clip = ClipScorer(model, tokenizer, mesh=mesh)
            out.clip_preprocess = preprocessor(clip, ImagePreprocessor())
        except VisionWeightsMissing as e:
            out.skipped.append(_clip_skip(str(e)))
    else:
        out.skipped.append(_clip_skip("no CLIP path given"))
    if dino:
        try:
            out.dino = DinoScorer(load_vision_model(dino, mesh=mesh), mesh=mesh)
            out.dino_preprocess = preprocessor(dino, DINO_PREPROCESS)
        except VisionWeightsMissing as e:
            out.skipped.append(_dino_skip(str(e)))
    else:
        out.skipped.append(_dino_skip("no DINOv2 path given"))
    try:
        model = load_lpips(lpips_weights, vgg=lpips_vgg, lin=lpips_lin)
        out.lpips = LPIPSScorer(model, mesh=mesh)
    except LPIPSWeightsMissing as e:
        out.skipped.append(f"Hist LPIPS skipped: {e}")
    for line in out.skipped:
        log.warning("%s", line)
    return out


def _clip_skip(why: str) -> str:
    return (
        "CLIP score, CLIP image score, Hist CLIP score, Hist CLIP image score and FID skipped: "
        f"{why}; get CLIP ViT-H-14 (laion2b_s32b_b79k) with `hf download {CLIP_ID}`"
    )


def _dino_skip(why: str) -> str:
    return f"DINO and Hist DINO skipped: {why}; get DINOv2 with `hf download {DINO_ID}`"


def _cos100(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """100 cos per row in float64 on the host (`scores.cosine_score`'s formula; NumPy here so
    that each new batch shape does not compile a jitted function)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    return 100.0 * np.sum(a * (b / np.linalg.norm(b, axis=-1, keepdims=True)), axis=-1)


def _images(x, name: str, ndim: int) -> np.ndarray:
    """[..., H, W, 3] in the input's dtype (0..255): grayscale repeated, alpha dropped; any other
    layout is an error naming the argument."""
    x = np.asarray(x)
    if x.ndim != ndim or x.shape[-1] not in (1, 3, 4):
        want = "[N, K, H, W, 3]" if ndim == 5 else "[N, H, W, 3]"
        raise ValueError(f"personalization_metrics: {name} must be {want} images, got {x.shape}")
    if np.issubdtype(x.dtype, np.floating) and 0 < float(x.max(initial=0)) <= 1.0:
        raise ValueError(f"personalization_metrics: {name} looks like [0, 1] images; pass 0..255")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x[..., :3]


class _Images:
    """An image set [M, H, W, 3] read in row blocks as float32 0..255, resized on the fly to
    `size` (bilinear with antialiasing, PIL's filter, rounded to integers as PIL's uint8
    output), so a large set is never held resized or as float32 all at once."""

    def __init__(self, images: np.ndarray, size: tuple[int, int] | None):
        self.images = images
        self.size = tuple(size) if size is not None else tuple(images.shape[1:3])

    def __len__(self) -> int:
        return len(self.images)

    def take(self, idx: np.ndarray) -> np.ndarray:
        x = np.asarray(self.images[idx], np.float32)
        if x.shape[1:3] == self.size:
            return x
        shape = (len(x), *self.size, 3)
        y = jax.image.resize(jnp.asarray(x), shape, "bilinear", antialias=True)
        return np.asarray(jnp.clip(jnp.round(y), 0, 255))


def _batched(fn: Callable, sources: Sequence[tuple[_Images, np.ndarray]], batch: int) -> np.ndarray:
    """fn(*images) over blocks of `batch` rows, source j giving rows `sources[j][1]` of its set;
    the last block is padded by repeating its final row (one compiled shape); the outputs are
    concatenated and cut to the number of rows."""
    n = len(sources[0][1])
    out = []
    for start in range(0, n, batch):
        rows = [idx[start : start + batch] for _, idx in sources]
        m = len(rows[0])
        rows = [np.concatenate([r, np.repeat(r[-1:], batch - m)]) for r in rows]
        parts = [images.take(r) for (images, _), r in zip(sources, rows)]
        out.append(np.asarray(fn(*parts))[:m])
    return np.concatenate(out)


def personalization_metrics(
    generated: np.ndarray,
    history: np.ndarray,
    target: np.ndarray,
    models: MetricModels | None = None,
    *,
    target_texts: Sequence[str] | None = None,
    history_texts: Sequence[Sequence[str]] | None = None,
    image_size: tuple[int, int] | None = None,
    batch_size: int = 50,
    fid: bool = True,
) -> PersonalizationReport:
    """Pigeon's metric set (see the module docstring).

    Args:
      generated: [N, H, W, 3], history: [N, K, H, W, 3], target: [N, H, W, 3]; 0..255 values.
      models: the feature extractors (`load_metric_models`); None = only SSIM / MS-SSIM.
      target_texts: N target texts (CLIP score); history_texts: N lists of K texts (Hist CLIP
        score). Without them (or a CLIP tokenizer) those two scores are skipped with a line.
      image_size: resize every image to (height, width) first (Pigeon: (512, 512)).
      batch_size: images per model call (rounded up to the mesh's batch multiple).
      fid: compute FID (a D x D matrix square root on the host: ~1 s at D = 1024).
    Returns:
      PersonalizationReport (means, per-sample [N] values, skip lines, FID's features).
    """
    models = MetricModels() if models is None else models
    gen, hist = _images(generated, "generated", 4), _images(history, "history", 5)
    tgt = _images(target, "target", 4)
    n, k = hist.shape[:2]
    if len(gen) != n or len(tgt) != n:
        raise ValueError(
            f"personalization_metrics: generated {len(gen)}, history {n}, target {len(tgt)} "
            "samples; they must match"
        )
    sets = [_Images(x, image_size) for x in (gen, tgt, hist.reshape(n * k, *hist.shape[2:]))]
    sizes = [x.size for x in sets]
    if len(set(sizes)) > 1:
        raise ValueError(
            "personalization_metrics: image sizes differ (generated, target, history: "
            f"{sizes}); pass image_size=(H, W) to resize"
        )
    gen_set, _, hist_set = sets
    pairs = [(gen_set, np.repeat(np.arange(n), k)), (hist_set, np.arange(n * k))]  # [N * K]
    skipped = list(models.skipped)
    per: dict[str, np.ndarray] = {}

    def per_sample(pair_values: np.ndarray) -> np.ndarray:
        return np.asarray(pair_values, np.float64).reshape(n, k).mean(axis=1)

    def batch_for(m: int) -> int:
        scorers = [s for s in (models.clip, models.dino, models.lpips) if s is not None]
        mesh = next((s.mesh for s in scorers if s.mesh is not None), None)
        b = min(batch_size, m)
        if mesh is not None:
            from jaxmethods.train.mesh import batch_size_multiple

            mult = batch_size_multiple(mesh)
            b = -(-b // mult) * mult
        return b

    def features(fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(generated [N, D], target [N, D], history [N * K, D]); one batch shape for all."""
        b = batch_for(n * (k + 2))
        return tuple(_batched(fn, [(x, np.arange(len(x)))], b) for x in sets)

    fid_features, fid_value = None, float("nan")
    if models.clip is not None:
        prep = models.clip_preprocess or ImagePreprocessor()
        f_gen, f_tgt, f_hist = features(lambda x: models.clip.image_features(prep(x)))
        per["clip_image_score"] = _cos100(f_gen, f_tgt)
        per["hist_clip_image_score"] = per_sample(_cos100(np.repeat(f_gen, k, 0), f_hist))
        if fid and n >= 2:
            fid_features = "CLIP image features (projected; Pigeon uses Inception-v3 pool3)"
            fid_value = fid_from_features(f_gen, f_tgt)
        elif fid:
            skipped.append("FID skipped: it needs at least 2 samples")
        if models.clip.tokenizer is None or target_texts is None or history_texts is None:
            why = "no CLIP tokenizer" if models.clip.tokenizer is None else "no texts given"
            skipped.append(f"CLIP score and Hist CLIP score skipped: {why}")
        else:
            texts = _texts(target_texts, history_texts, n, k)
            t = _text_features(models.clip, texts, batch_for(len(texts)))
            per["clip_score"] = _cos100(f_gen, t[:n])
            per["hist_clip_score"] = per_sample(_cos100(np.repeat(f_gen, k, 0), t[n:]))
    if models.dino is not None:
        prep = models.dino_preprocess or DINO_PREPROCESS
        f_gen, f_tgt, f_hist = features(lambda x: models.dino.features(prep(x)))
        per["dino"] = _cos100(f_gen, f_tgt)
        per["hist_dino"] = per_sample(_cos100(np.repeat(f_gen, k, 0), f_hist))
    b = batch_for(n * k)
    if models.lpips is not None:
        per["hist_lpips"] = per_sample(_batched(models.lpips.distance_uint8, pairs, b))
    per["hist_ssim"] = per_sample(_batched(ssim, pairs, b))
    h, w = gen_set.size
    if min(h, w) > MS_SSIM_MIN_SIDE:
        per["hist_ms_ssim"] = per_sample(_batched(ms_ssim, pairs, b))
    else:
        skipped.append(
            f"Hist MS-SSIM skipped: images are {h}x{w}, its 5 scales need "
            f"both sides > {MS_SSIM_MIN_SIDE} (Pigeon resizes to 512: image_size=(512, 512))"
        )
    order = [m for m in PIGEON_NAMES if m in per or (m == "fid" and fid_features)]
    values = {m: (fid_value if m == "fid" else float(np.mean(per[m]))) for m in order}
    return PersonalizationReport(
        values=values,
        per_sample={m: per[m] for m in order if m in per},
        skipped=skipped,
        fid_features=fid_features,
    )


def _text_features(clip: ClipScorer, texts: list[str], batch: int) -> np.ndarray:
    """Projected text features [len(texts), E] in blocks of `batch` (the last padded)."""
    ids, mask = (np.asarray(a) for a in clip.tokenize(texts))
    out = []
    for i in range(0, len(ids), batch):
        part = [a[i : i + batch] for a in (ids, mask)]
        m = len(part[0])
        part = [np.concatenate([a, np.repeat(a[-1:], batch - m, axis=0)]) for a in part]
        out.append(np.asarray(clip.text_features(tuple(part)))[:m])
    return np.concatenate(out)


def _texts(target_texts, history_texts, n: int, k: int) -> list[str]:
    """[target texts (N); history texts (N * K), row-major]; checks the counts."""
    if len(target_texts) != n or len(history_texts) != n:
        raise ValueError(
            f"personalization_metrics: {len(target_texts)} target texts and "
            f"{len(history_texts)} history text lists for {n} samples"
        )
    flat = []
    for i, row in enumerate(history_texts):
        if len(row) != k:
            raise ValueError(f"personalization_metrics: history_texts[{i}] has {len(row)} texts, expected {k}")  # fmt: skip
        flat.extend(row)
    return [*target_texts, *flat]
