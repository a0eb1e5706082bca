"""Encoder benchmark: embeddings/s of `TextEncoder.embed` against PyTorch transformers.

One random BERT checkpoint (HF safetensors written with NumPy) is loaded by both sides:
  1. ours: `TextEncoder(load_pretrained(folder), tokenizer).embed(texts, batch_size)`, i.e.
     tokenize, sort by length, pad to power-of-two buckets, one jitted program per bucket, CLS
     pooling, rows back in input order. The first call (tracing + compiling every bucket) is
     reported apart (`ours_first_call_s`, and `ours_compile_s` = first call - median call);
     then warm-up and timed calls (median / p90), alternating with torch call by call.
  2. torch (when importable): `BertModel.from_pretrained(folder)` in eval / inference mode on the
     same texts through the same tokenizer, length-sorted batches padded to the longest row
     (dynamic padding, HF's usual inference recipe), CLS pooling.
Texts are random words of a synthetic WordPiece vocabulary with lengths uniform in
[min_words, max_words], so both sides see the same token counts.

    python benchmarks/encode.py --size small --out runs/bench/encode_small.json       # CPU
    python benchmarks/encode.py --size base --dtype bfloat16 --out runs/bench/encode_gpu.json

Sizes: tiny (2 x 32), small (4 x 256), base (the BERT-base shape, 12 x 768).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import numpy as np
from flax import nnx

from benchmarks.timing import environment, time_calls, write_json
from jaxmethods.hf import load_pretrained
from jaxmethods.hf.encoder_keys import encoder_rules
from jaxmethods.hf.key_map import KeyMap
from jaxmethods.hf.layout import path_string
from jaxmethods.models.encoder import EncoderModel
from jaxmethods.models.encoder_config import EncoderConfig
from jaxmethods.models.text_encoder import TextEncoder

SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4),
    "small": dict(hidden_size=256, intermediate_size=1024, num_layers=4, num_heads=4),
    "base": dict(hidden_size=768, intermediate_size=3072, num_layers=12, num_heads=12),
}
WORDS = 2000


def write_checkpoint(folder: str, cfg: EncoderConfig, seed: int = 0) -> None:
    """A random BERT checkpoint in HF layout (config.json + model.safetensors) and a WordPiece
    tokenizer whose vocabulary is [PAD] [UNK] [CLS] [SEP] [MASK] w0 .. w{WORDS-1}."""
    from safetensors.numpy import save_file
    from transformers import BertTokenizer

    model = EncoderModel(cfg, pooler=True, rngs=nnx.Rngs(seed))
    key_map = KeyMap(encoder_rules("bert", None))
    tensors = {}
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        key, transpose = key_map.to_checkpoint(path_string(path))
        value = np.asarray(var[...], np.float32)
        tensors[key] = np.ascontiguousarray(value.T if transpose else value)
    save_file(tensors, os.path.join(folder, "model.safetensors"), {"format": "pt"})
    hf = dict(
        model_type="bert", architectures=["BertModel"], vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings, type_vocab_size=2,
        hidden_act="gelu", layer_norm_eps=1e-12, pad_token_id=0,
    )  # fmt: skip
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(hf, f)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(f"w{i}" for i in range(WORDS))]
    BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}).save_pretrained(folder)


def random_texts(n: int, min_words: int, max_words: int, seed: int = 0) -> list[str]:
    rng = np.random.RandomState(seed)
    lengths = rng.randint(min_words, max_words + 1, size=n)
    return [" ".join(f"w{w}" for w in rng.randint(0, WORDS, size=k)) for k in lengths]


def torch_embedder(folder: str, tokenizer, batch_size: int, dtype: str):
    """A callable texts -> [N, H] float32 CLS embeddings with transformers' BertModel."""
    import torch
    from transformers import BertModel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = BertModel.from_pretrained(folder, attn_implementation="sdpa").to(device).eval()
    if dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    torch.set_num_threads(os.cpu_count() or 1)

    def embed(texts: list[str], max_length: int) -> np.ndarray:
        ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out = np.zeros((len(ids), model.config.hidden_size), np.float32)
        with torch.inference_mode():
            for start in range(0, len(ids), batch_size):
                rows = order[start : start + batch_size]
                width = max(len(ids[i]) for i in rows)
                batch = torch.zeros((len(rows), width), dtype=torch.long)
                mask = torch.zeros_like(batch)
                for r, i in enumerate(rows):
                    batch[r, : len(ids[i])] = torch.tensor(ids[i])
                    mask[r, : len(ids[i])] = 1
                h = model(input_ids=batch.to(device), attention_mask=mask.to(device))
                out[rows] = h.last_hidden_state[:, 0].float().cpu().numpy()
        return out

    return embed, device


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument("--num-texts", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--min-words", type=int, default=8)
    p.add_argument("--max-words", type=int, default=120)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--dtype", default=None, help="compute dtype (default: fp32 CPU, bf16 GPU)")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--out", default="runs/bench/encode.json")
    args = p.parse_args(argv)

    dtype = args.dtype or ("float32" if jax.default_backend() == "cpu" else "bfloat16")
    cfg = EncoderConfig(
        vocab_size=WORDS + 5, max_position_embeddings=max(512, args.max_length),
        **SIZES[args.size],
    )  # fmt: skip
    texts = random_texts(args.num_texts, args.min_words, args.max_words)
    record: dict[str, Any] = dict(
        benchmark="encode", size=args.size, config=SIZES[args.size], dtype=dtype,
        num_texts=args.num_texts, batch_size=args.batch_size, max_length=args.max_length,
        words_per_text=[args.min_words, args.max_words], env=environment(),
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        write_checkpoint(folder, cfg)
        from jaxmethods.hf import load_tokenizer

        tokenizer = load_tokenizer(folder)
        lengths = [len(x) for x in tokenizer(texts, truncation=True, max_length=args.max_length)[
            "input_ids"]]  # fmt: skip
        record["tokens_per_text_mean"] = float(np.mean(lengths))
        enc = TextEncoder(load_pretrained(folder, dtype), tokenizer, pooling="cls",
                          max_length=args.max_length)  # fmt: skip
        start = time.perf_counter()
        ours_first = enc.embed(texts, args.batch_size)
        record["ours_first_call_s"] = time.perf_counter() - start
        record["ours_compiled_buckets"] = enc.trace_count
        sides = {"ours": lambda: enc.embed(texts, args.batch_size)}
        if not args.no_torch:
            try:
                embed, device = torch_embedder(folder, tokenizer, args.batch_size, dtype)
            except ImportError as e:
                record["torch"] = f"skipped: {e}"
            else:
                theirs = embed(texts, args.max_length)
                record["max_abs_diff_vs_torch"] = float(np.abs(theirs - ours_first).max())
                sides["torch"] = lambda: embed(texts, args.max_length)
                record["torch_device"] = device
        # Rounds alternate the sides, so load changes on a shared machine hit both alike.
        samples: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.iters):
            for name, call in sides.items():
                stats = time_calls(call, warmup=args.warmup if not samples[name] else 0, iters=1)
                samples[name].append(stats["median_s"])
        assert enc.trace_count == record["ours_compiled_buckets"], "embed retraced"
        for name, times in samples.items():
            median, p90 = statistics.median(times), float(np.percentile(times, 90))
            record[name] = dict(
                median_s=median, p90_s=p90, min_s=min(times), samples_s=times,
                iters=args.iters, warmup=args.warmup,
                embeddings_per_s=args.num_texts / median,
                embeddings_per_s_p90=args.num_texts / p90,
            )  # fmt: skip
        # tracing + compiling every bucket: the first call minus a steady-state call
        record["ours_compile_s"] = record["ours_first_call_s"] - record["ours"]["median_s"]
        if "torch" in samples:
            record["speedup_ours_vs_torch"] = (
                record["torch"]["median_s"] / record["ours"]["median_s"]
            )
    write_json(args.out, record)
    summary = {k: record[k] for k in ("size", "dtype", "ours_compile_s",
                                      "ours_compiled_buckets") if k in record}  # fmt: skip
    summary["ours_emb_per_s"] = record["ours"]["embeddings_per_s"]
    if isinstance(record.get("torch"), dict):
        summary["torch_emb_per_s"] = record["torch"]["embeddings_per_s"]
        summary["speedup"] = record["speedup_ours_vs_torch"]
        summary["max_abs_diff"] = record["max_abs_diff_vs_torch"]
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
