"""Pigeon's metric set on the committed tiny CLIP / DINOv2 (`tests/data/hf/vision`) and tiny
LPIPS (`tests/data/lpips`) fixtures: identical images give CLIP image score 100, DINO 100,
SSIM 1, LPIPS 0; the history averaging and the pairing (generated i with its own K history
images) against a NumPy loop over features computed directly; skip lines and bad input."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

from jaxmethods.eval import personalization_metrics as pm
from jaxmethods.eval.image_metrics import fid_from_features, ssim
from jaxmethods.eval.lpips import LPIPSScorer
from jaxmethods.eval.personalization_metrics import (
    CLIP_ID,
    DINO_ID,
    MetricModels,
    load_metric_models,
    personalization_metrics,
)
from jaxmethods.hf.lpips_loading import load_lpips
from jaxmethods.hf.vision_loading import load_vision_model
from jaxmethods.models.vision import ClipScorer, DinoScorer, ImagePreprocessor
from jaxmethods.models.vision.preprocess import IMAGENET_MEAN, IMAGENET_STD

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
VISION = os.path.join(DATA, "hf", "vision")
N, K = 2, 3
TARGET_TEXTS = ["a red circle", "a blue square"]
HISTORY_TEXTS = [["a red dot", "red cat", "a circle"], ["blue", "a square box", "sky"]]


class WordTokenizer:
    """HF-tokenizer-shaped stand-in for the tiny CLIP (vocab 64): bos 62, words -> 1..61 by
    crc32, eos 63, padded with 0 to max_length."""

    def __call__(self, texts, *, padding, max_length, truncation, return_tensors):
        ids = np.zeros((len(texts), max_length), np.int32)
        for i, t in enumerate(texts):
            row = [62, *[1 + zlib.crc32(w.encode()) % 61 for w in t.split()][: max_length - 2]]
            row.append(63)
            ids[i, : len(row)] = row
        return {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int32)}


def _models() -> MetricModels:
    clip = load_vision_model(os.path.join(VISION, "clip"), "float32")
    dino = load_vision_model(os.path.join(VISION, "dinov2"), "float32")
    return MetricModels(
        clip=ClipScorer(clip, WordTokenizer()),
        clip_preprocess=ImagePreprocessor(32, (32, 32)),
        dino=DinoScorer(dino),
        dino_preprocess=ImagePreprocessor(32, (32, 32), IMAGENET_MEAN, IMAGENET_STD),
        lpips=LPIPSScorer(load_lpips(os.path.join(DATA, "lpips", "tiny_lpips.safetensors"))),
    )


def _cos100(a, b):
    return 100 * float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_metric_set_on_tiny_models():
    """Identical images, then the history averaging against a NumPy loop. One test, so that the
    five compiled programs (CLIP image / text, DINO, LPIPS, SSIM) are not compiled again on
    another xdist worker."""
    models = _models()
    # identical images: CLIP image score 100, DINO 100, SSIM 1, LPIPS 0
    rng = np.random.default_rng(0)
    gen = rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
    hist = np.repeat(gen[:, None], K, axis=1)
    texts = [[t] * K for t in TARGET_TEXTS]
    r = personalization_metrics(
        gen, hist, gen, models, target_texts=TARGET_TEXTS, history_texts=texts
    )
    for m in ("clip_image_score", "dino", "hist_clip_image_score", "hist_dino"):
        np.testing.assert_allclose(r.per_sample[m], 100.0, atol=1e-3, err_msg=m)
    np.testing.assert_allclose(r.per_sample["hist_ssim"], 1.0, atol=1e-6)
    np.testing.assert_allclose(r.per_sample["hist_lpips"], 0.0, atol=1e-7)
    np.testing.assert_allclose(r.per_sample["hist_clip_score"], r.per_sample["clip_score"])
    assert abs(r.values["fid"]) < 1e-3
    assert list(r.values) == [
        "fid", "dino", "clip_score", "clip_image_score", "hist_lpips", "hist_dino",
        "hist_clip_score", "hist_clip_image_score", "hist_ssim",
    ]  # fmt: skip
    assert r.skipped == [
        "Hist MS-SSIM skipped: images are 32x32, its 5 scales need both sides > 160 (Pigeon "
        "resizes to 512: image_size=(512, 512))"
    ]
    assert "[Hist SSIM]: 1.0000" in r.lines()

    # different images: every per-sample value against a NumPy loop over directly computed
    # features / pair values (the same batch shapes: no new compile)
    rng = np.random.default_rng(1)
    gen = rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
    hist = rng.integers(0, 256, (N, K, 32, 32, 3), dtype=np.uint8)
    tgt = rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
    r = personalization_metrics(
        gen, hist, tgt, models, target_texts=TARGET_TEXTS, history_texts=HISTORY_TEXTS
    )
    flat = hist.reshape(N * K, 32, 32, 3)
    everything = np.concatenate([gen, tgt, flat])  # the batch shape the metrics use: no compile
    clip = np.asarray(models.clip.image_features(models.clip_preprocess(everything)), np.float64)
    dino = np.asarray(models.dino.features(models.dino_preprocess(everything)), np.float64)
    text = np.asarray(
        models.clip.text_features(TARGET_TEXTS + [t for row in HISTORY_TEXTS for t in row]),
        np.float64,
    )
    pair_gen = np.repeat(gen, K, axis=0)
    lp = np.asarray(models.lpips.distance_uint8(pair_gen, flat))
    ss = np.asarray(ssim(pair_gen.astype(np.float32), flat.astype(np.float32)))
    want = {m: np.zeros(N) for m in r.per_sample}
    for i in range(N):
        want["clip_image_score"][i] = _cos100(clip[i], clip[N + i])
        want["dino"][i] = _cos100(dino[i], dino[N + i])
        want["clip_score"][i] = _cos100(clip[i], text[i])
        for j in range(K):
            p = i * K + j
            want["hist_clip_image_score"][i] += _cos100(clip[i], clip[2 * N + p]) / K
            want["hist_dino"][i] += _cos100(dino[i], dino[2 * N + p]) / K
            want["hist_clip_score"][i] += _cos100(clip[i], text[N + p]) / K
            want["hist_lpips"][i] += lp[p] / K
            want["hist_ssim"][i] += ss[p] / K
    for m, w in want.items():
        np.testing.assert_allclose(r.per_sample[m], w, rtol=1e-4, atol=1e-4, err_msg=m)
        assert r.values[m] == pytest.approx(np.mean(w), rel=1e-4, abs=1e-4)
    # FID between the generated and the target sets of CLIP features (fid_from_features itself
    # is tested in test_image_metrics)
    assert r.values["fid"] == pytest.approx(fid_from_features(clip[:N], clip[N : 2 * N]), rel=1e-3)
    assert r.fid_features.startswith("CLIP image features")
    se = r.standard_errors()["hist_ssim"]
    assert se == pytest.approx(np.std(want["hist_ssim"], ddof=1) / np.sqrt(N), rel=1e-4)


def test_missing_weights_skip_with_a_line_and_ssim_still_runs(tmp_path):
    loaded = load_metric_models(clip=tmp_path / "clip", lpips_weights=tmp_path / "l.safetensors")
    assert loaded.clip is loaded.dino is loaded.lpips is None
    assert len(loaded.skipped) == 3
    assert "CLIP image score" in loaded.skipped[0] and CLIP_ID in loaded.skipped[0]
    assert loaded.skipped[1].startswith("DINO and Hist DINO skipped: no DINOv2 path given")
    assert DINO_ID in loaded.skipped[1]
    assert loaded.skipped[2].startswith("Hist LPIPS skipped:") and "l.safetensors" in loaded.skipped[2]  # fmt: skip
    rng = np.random.default_rng(2)
    gen = rng.integers(0, 256, (N, 32, 32, 1), dtype=np.uint8)  # grayscale: repeated to RGB
    hist = rng.integers(0, 256, (N, K, 32, 32, 3), dtype=np.uint8)
    r = personalization_metrics(gen, hist, gen, loaded)
    assert list(r.values) == ["hist_ssim"] and r.skipped[:3] == loaded.skipped
    want = np.asarray(ssim(np.repeat(np.repeat(gen, 3, -1), K, 0).astype(np.float32),
                           hist.reshape(N * K, 32, 32, 3).astype(np.float32)))  # fmt: skip
    np.testing.assert_allclose(r.per_sample["hist_ssim"], want.reshape(N, K).mean(1), rtol=1e-5)


def test_resize_and_ms_ssim_wiring(monkeypatch):
    """image_size resizes every set (bilinear, rounded to 0..255 integers) and turns MS-SSIM on;
    SSIM / MS-SSIM are replaced by NumPy stand-ins here (they are tested in test_image_metrics)
    to check which pairs reach them and how they are averaged."""
    seen = []

    def fake(name):
        def metric(x, y):
            x, y = np.asarray(x), np.asarray(y)
            seen.append((name, x.shape, y.shape, np.array_equal(x, np.round(x))))
            return x.mean(axis=(1, 2, 3)) - y.mean(axis=(1, 2, 3))

        return metric

    monkeypatch.setattr(pm, "ssim", fake("ssim"))
    monkeypatch.setattr(pm, "ms_ssim", fake("ms_ssim"))
    gen = np.stack([np.full((32, 32, 3), v, np.uint8) for v in (10, 200)])
    hist = np.stack([np.full((K, 32, 32, 3), v, np.uint8) for v in (50, 100)])
    hist[1, 2] = 0
    r = personalization_metrics(gen, hist, gen, image_size=(168, 176), batch_size=4)
    assert {name for name, *_ in seen} == {"ssim", "ms_ssim"}
    assert all(a == b == (4, 168, 176, 3) and rounded for _, a, b, rounded in seen)
    want = np.array([10 - 50, 200 - (100 + 100 + 0) / 3])  # mean over each sample's K pairs
    np.testing.assert_allclose(r.per_sample["hist_ssim"], want, atol=1e-4)
    np.testing.assert_allclose(r.per_sample["hist_ms_ssim"], want, atol=1e-4)
    assert list(r.values) == ["hist_ssim", "hist_ms_ssim"]


def test_bad_input_is_named():
    img = np.zeros((N, 32, 32, 3), np.uint8)
    hist = np.zeros((N, K, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=r"history must be \[N, K, H, W, 3\]"):
        personalization_metrics(img, img, img)
    with pytest.raises(ValueError, match="generated 1, history 2, target 2"):
        personalization_metrics(img[:1], hist, img)
    with pytest.raises(ValueError, match=r"target must be .*\(2, 32, 32, 2\)"):
        personalization_metrics(img, hist, np.zeros((N, 32, 32, 2)))
    with pytest.raises(ValueError, match=r"image sizes differ .* pass image_size"):
        personalization_metrics(img, hist, np.zeros((N, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=r"generated looks like \[0, 1\] images"):
        personalization_metrics(np.full((N, 32, 32, 3), 0.5), hist, img)
