"""Builds the HF parity fixtures in tests/data/hf/<name>/ (needs torch + transformers).

For each family a tiny randomly initialised PyTorch transformers model is saved with
`save_pretrained(safe_serialization=True)` next to `reference.npz`: a fixed left-padded batch
(input_ids, attention_mask, position_ids = cumsum(mask) - 1) and the model's fp32 logits (or
scores for the reward model). Run from the repo root:

    .venv/bin/python tests/hf/make_fixtures.py

The parity tests load these with jaxmethods (no torch) and, when torch is importable, also
rebuild fresh models with `build_hf_model` for a live comparison.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np

FIXTURE_DIR = os.path.join(os.path.dirname(__file__), "..", "data", "hf")
VOCAB = 64
PAD_ID = 0

_COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    rms_norm_eps=1e-6,
    initializer_range=0.2,  # large init: logits of O(1), so a 1e-4 tolerance is meaningful
    pad_token_id=PAD_ID,
    bos_token_id=1,
    eos_token_id=2,
)

# name -> (transformers config class name, model class name, config overrides)
FIXTURES: dict[str, tuple[str, str, dict]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(rope_theta=10000.0)),
    "llama3": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(
            rope_theta=500000.0,
            attention_bias=True,
            rope_scaling=dict(
                rope_type="llama3",
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=8,
            ),
        ),
    ),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(tie_word_embeddings=True, rope_theta=1e6)),
    "qwen2_sliding": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(use_sliding_window=True, sliding_window=3, max_window_layers=1),
    ),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(sliding_window=3)),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", dict(head_dim=8, hidden_act="gelu_pytorch_tanh")),
    "llama_reward": ("LlamaConfig", "LlamaForSequenceClassification", dict(num_labels=1)),
}


def reference_batch() -> dict[str, np.ndarray]:
    """A fixed left-padded batch [3, 8] (lengths 8, 5, 2), pad id 0 never used as a real token."""
    rng = np.random.RandomState(1234)
    lengths = [8, 5, 2]
    t = max(lengths)
    ids = np.full((len(lengths), t), PAD_ID, np.int64)
    mask = np.zeros((len(lengths), t), np.int64)
    for b, n in enumerate(lengths):
        ids[b, t - n :] = rng.randint(3, VOCAB, size=n)
        mask[b, t - n :] = 1
    positions = np.maximum(np.cumsum(mask, axis=-1) - 1, 0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": positions}


def build_hf_model(name: str, seed: int = 0):
    """A tiny random transformers model of fixture `name` (fp32, eval mode)."""
    import torch
    import transformers

    config_cls, model_cls, overrides = FIXTURES[name]
    config = getattr(transformers, config_cls)(**{**_COMMON, **overrides})
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(config).to(torch.float32).eval()
    # HF inits norms at 1 (Gemma: 0); randomise them so the norm parameterisation is tested.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname or pname.endswith(".bias"):
                p.add_(0.3 * torch.randn_like(p))
    return model


def hf_outputs(model, batch: dict[str, np.ndarray]) -> np.ndarray:
    """fp32 logits [B, T, V] (causal LM) or scores [B, num_labels] (sequence classification)."""
    import torch

    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(batch["input_ids"]),
            attention_mask=torch.tensor(batch["attention_mask"]),
            position_ids=torch.tensor(batch["position_ids"]),
        )
    return out.logits.float().numpy()


def main() -> None:
    os.makedirs(FIXTURE_DIR, exist_ok=True)
    batch = reference_batch()
    for name in FIXTURES:
        folder = os.path.join(FIXTURE_DIR, name)
        shutil.rmtree(folder, ignore_errors=True)
        model = build_hf_model(name, seed=0)
        model.save_pretrained(folder, safe_serialization=True)
        for extra in ("generation_config.json",):
            path = os.path.join(folder, extra)
            if os.path.exists(path):
                os.remove(path)
        np.savez(os.path.join(folder, "reference.npz"), outputs=hf_outputs(model, batch), **batch)
        print(f"wrote {folder}", file=sys.stderr)
    total = sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(FIXTURE_DIR)
        for f in files
    )
    print(f"fixtures: {total / 1024:.1f} KiB in {FIXTURE_DIR}", file=sys.stderr)


if __name__ == "__main__":
    main()
