"""Builds the vision parity fixtures in tests/data/hf/vision/ (needs torch + transformers, and
pytorch_msssim for the SSIM references).

  clip/            tiny random `CLIPModel` (hidden 32, 2 layers, image 32, patch 8) + reference.npz
  dinov2/          tiny random `Dinov2Model` (same sizes) + reference.npz
  dinov2_swiglu/   the same with DINOv2-giant's SwiGLU MLP
  ssim_reference.npz  pytorch_msssim `ssim` / `ms_ssim` (Pigeon's settings: data_range 255,
                   per image) on the seeded image pairs of tests/eval/test_image_metrics.py

Images are stored channels-last [B, H, W, 3] (our layout); torch gets them permuted to NCHW.
Run from the repo root:

    PYTHONPATH=. /work/torchenv/bin/python tests/hf/make_vision_fixtures.py
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np

FIXTURE_DIR = os.path.join(os.path.dirname(__file__), "..", "data", "hf", "vision")
VOCAB = 64
EOS = 63

_VISION = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
    image_size=32, patch_size=8, initializer_range=0.2,
)  # fmt: skip
CLIP_KWARGS = dict(
    text_config=dict(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=16, eos_token_id=EOS, bos_token_id=62,
        pad_token_id=0, initializer_range=0.2,
    ),
    vision_config=_VISION, projection_dim=24, logit_scale_init_value=2.0,
)  # fmt: skip
DINO_KWARGS = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2, image_size=32,
    patch_size=8, initializer_range=0.2, layerscale_value=0.7,
)  # fmt: skip
FIXTURES = {
    "clip": ("CLIPConfig", "CLIPModel", CLIP_KWARGS),
    "dinov2": ("Dinov2Config", "Dinov2Model", DINO_KWARGS),
    "dinov2_swiglu": ("Dinov2Config", "Dinov2Model", dict(DINO_KWARGS, use_swiglu_ffn=True)),
}
# Interpolated-position inputs: not the 32x32 pretraining size (6 x 5 patches of 8).
OTHER_SIZE = (48, 40)


def reference_images(size=(32, 32), n: int = 3, seed: int = 1234) -> np.ndarray:
    """Normalised-looking float32 images [n, H, W, 3]."""
    return np.random.RandomState(seed).randn(n, *size, 3).astype(np.float32)


def reference_inputs() -> tuple[np.ndarray, np.ndarray]:
    """(images [3, 32, 32, 3], other-size images [2, 48, 40, 3]) of every fixture."""
    return reference_images(), reference_images(OTHER_SIZE, n=2, seed=77)


def reference_texts() -> dict[str, np.ndarray]:
    """ids [3, 10] right-padded with 0: BOS 62, words 3..61, EOS 63 at positions 9, 5, 2."""
    rng = np.random.RandomState(99)
    ids = np.zeros((3, 10), np.int64)
    mask = np.zeros((3, 10), np.int64)
    for b, n in enumerate((10, 6, 3)):
        ids[b, 0], ids[b, n - 1] = 62, EOS
        ids[b, 1 : n - 1] = rng.randint(3, 62, size=n - 2)
        mask[b, :n] = 1
    return {"input_ids": ids, "attention_mask": mask}


def build_hf_vision(name: str, seed: int = 0):
    """A tiny random transformers vision model of fixture `name` (fp32, eval mode), with
    LayerNorms, biases, layer scales and logit_scale randomised so they are tested."""
    import torch
    import transformers

    config_cls, model_cls, kwargs = FIXTURES[name]
    config = getattr(transformers, config_cls)(**kwargs)
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(config).to(torch.float32).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname or "lambda1" in pname or pname.endswith(".bias"):
                p.add_(0.3 * torch.randn_like(p))
            if pname in ("embeddings.cls_token", "embeddings.position_embeddings"):
                p.mul_(0.5)
    return model


def hf_vision_outputs(name: str, model) -> dict[str, np.ndarray]:
    import torch

    out: dict[str, np.ndarray] = {}
    images, other = reference_inputs()
    nchw = lambda x: torch.tensor(x).permute(0, 3, 1, 2)
    with torch.no_grad():
        if name == "clip":
            texts = reference_texts()
            ids, mask = torch.tensor(texts["input_ids"]), torch.tensor(texts["attention_mask"])
            res = model(input_ids=ids, attention_mask=mask, pixel_values=nchw(images))
            # the towers' own outputs (CLIPModel's *_model_output carry projected poolers)
            vision = model.vision_model(pixel_values=nchw(images))
            text = model.text_model(input_ids=ids, attention_mask=mask)
            out.update(
                vision_last_hidden_state=vision.last_hidden_state.numpy(),
                vision_pooler_output=vision.pooler_output.numpy(),
                text_last_hidden_state=text.last_hidden_state.numpy(),
                text_pooler_output=text.pooler_output.numpy(),
                image_embeds=model.get_image_features(pixel_values=nchw(images)).pooler_output
                .numpy(),
                text_embeds=model.get_text_features(input_ids=ids, attention_mask=mask)
                .pooler_output.numpy(),
                logits_per_image=res.logits_per_image.numpy(),
                input_ids=texts["input_ids"], attention_mask=texts["attention_mask"],
            )  # fmt: skip
            vis = model.vision_model(pixel_values=nchw(other), interpolate_pos_encoding=True)
            out["other_vision_pooler_output"] = vis.pooler_output.numpy()
        else:
            res = model(pixel_values=nchw(images))
            out.update(
                last_hidden_state=res.last_hidden_state.numpy(),
                pooler_output=res.pooler_output.numpy(),
            )
            res = model(pixel_values=nchw(other))
            out["other_last_hidden_state"] = res.last_hidden_state.numpy()
    if name != "dinov2_swiglu":  # the score tests read them; the parity tests regenerate them
        out["pixel_values"] = images
    return out


def ssim_reference() -> dict[str, np.ndarray]:
    """pytorch_msssim on the image pairs of tests/eval/test_image_metrics.py (`ssim_pairs`,
    regenerated there from seeded NumPy; only the values are stored), with Pigeon's call:
    data_range=255, per image."""
    import torch
    from pytorch_msssim import ms_ssim, ssim

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "eval"))
    from test_image_metrics import ssim_pairs

    out = {}
    for tag in ("small", "large"):
        x, y = (torch.tensor(a).permute(0, 3, 1, 2) for a in ssim_pairs(tag))
        out[f"{tag}_ssim"] = ssim(x, y, data_range=255, size_average=False).numpy()
        if tag == "large":
            out[f"{tag}_ms_ssim"] = ms_ssim(x, y, data_range=255, size_average=False).numpy()
    return out


def main() -> None:
    os.makedirs(FIXTURE_DIR, exist_ok=True)
    for name in FIXTURES:
        folder = os.path.join(FIXTURE_DIR, name)
        shutil.rmtree(folder, ignore_errors=True)
        model = build_hf_vision(name, seed=0)
        model.save_pretrained(folder, safe_serialization=True)
        np.savez(os.path.join(folder, "reference.npz"), **hf_vision_outputs(name, model))
        print(f"wrote {folder}", file=sys.stderr)
    np.savez(os.path.join(FIXTURE_DIR, "ssim_reference.npz"), **ssim_reference())
    print(f"wrote {FIXTURE_DIR}/ssim_reference.npz", file=sys.stderr)


if __name__ == "__main__":
    main()
