"""Builds the encoder parity fixtures in tests/data/hf/<name>/ (needs torch + transformers).

For each fixture a tiny randomly initialised PyTorch transformers encoder is saved with
`save_pretrained(safe_serialization=True)` next to `reference.npz`: a fixed right-padded batch
(input_ids, attention_mask, token_type_ids) and the model's fp32 outputs (`last_hidden_state`,
and `pooler_output` or `logits` where the model has them). Run from the repo root:

    PYTHONPATH=. /work/torchenv/bin/python tests/hf/make_encoder_fixtures.py

The parity tests load these with jaxmethods (no torch) and, when torch is importable, also
rebuild fresh models with `build_hf_encoder` for a live comparison.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np

FIXTURE_DIR = os.path.join(os.path.dirname(__file__), "..", "data", "hf")
VOCAB = 64

_BERT_LIKE = dict(
    vocab_size=VOCAB,
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=40,
    initializer_range=0.2,  # large init: outputs of O(1), so a 1e-4 tolerance is meaningful
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)
_DISTIL = dict(
    vocab_size=VOCAB, dim=16, hidden_dim=32, n_layers=2, n_heads=4, max_position_embeddings=40,
    initializer_range=0.2, dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0,
)  # fmt: skip

# name -> (config class, model class, config kwargs, pad id)
ENCODER_FIXTURES: dict[str, tuple[str, str, dict, int]] = {
    "bert": ("BertConfig", "BertModel", dict(_BERT_LIKE, type_vocab_size=2), 0),
    "roberta": (
        "RobertaConfig", "RobertaModel",
        dict(_BERT_LIKE, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5,
             hidden_act="gelu_new"), 1,
    ),
    "xlm_roberta": (
        "XLMRobertaConfig", "XLMRobertaModel",
        dict(_BERT_LIKE, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5), 1,
    ),
    "distilbert": ("DistilBertConfig", "DistilBertModel", dict(_DISTIL), 0),
    "bert_cls": (
        "BertConfig", "BertForSequenceClassification",
        dict(_BERT_LIKE, type_vocab_size=2, num_labels=3), 0,
    ),
    "roberta_cls": (
        "RobertaConfig", "RobertaForSequenceClassification",
        dict(_BERT_LIKE, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5, num_labels=2), 1,
    ),
    # The TOFU gibberish classifier's shape: DistilBertForSequenceClassification, 4 labels.
    "distilbert_cls": (
        "DistilBertConfig", "DistilBertForSequenceClassification",
        dict(_DISTIL, num_labels=4, id2label={0: "clean", 1: "mild gibberish", 2: "noise",
                                              3: "word salad"}), 0,
    ),
}  # fmt: skip


def reference_batch(pad_id: int, with_types: bool) -> dict[str, np.ndarray]:
    """A fixed right-padded batch [3, 8] (lengths 8, 5, 2; the decoder fixtures' shape, so eager
    op compilations are shared); ids avoid 0..2 (pad/special)."""
    rng = np.random.RandomState(4321)
    lengths = [8, 5, 2]
    t = max(lengths)
    ids = np.full((len(lengths), t), pad_id, np.int64)
    mask = np.zeros((len(lengths), t), np.int64)
    types = np.zeros((len(lengths), t), np.int64)
    for b, n in enumerate(lengths):
        ids[b, :n] = rng.randint(3, VOCAB, size=n)
        mask[b, :n] = 1
        if with_types:
            types[b, n // 2 : n] = 1  # a sentence pair: second half is segment B
    batch = {"input_ids": ids, "attention_mask": mask}
    if with_types:
        batch["token_type_ids"] = types
    return batch


def fixture_batch(name: str) -> dict[str, np.ndarray]:
    cfg = ENCODER_FIXTURES[name][2]
    return reference_batch(ENCODER_FIXTURES[name][3], cfg.get("type_vocab_size", 0) > 1)


def build_hf_encoder(name: str, seed: int = 0):
    """A tiny random transformers encoder of fixture `name` (fp32, eval mode)."""
    import torch
    import transformers

    config_cls, model_cls, kwargs, _ = ENCODER_FIXTURES[name]
    config = getattr(transformers, config_cls)(**kwargs)
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(config).to(torch.float32).eval()
    # HF inits LayerNorms at (1, 0) and biases at 0; randomise them so they are tested.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "LayerNorm" in pname or "layer_norm" in pname or pname.endswith(".bias"):
                p.add_(0.3 * torch.randn_like(p))
    return model


def hf_encoder_outputs(model, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """fp32 `last_hidden_state` [B, T, H] and `pooler_output` [B, H] / `logits` [B, C]."""
    import torch

    with torch.no_grad():
        kwargs = {k: torch.tensor(v) for k, v in batch.items()}
        out = model(**kwargs, output_hidden_states=True)
    result = {"last_hidden_state": out.hidden_states[-1].float().numpy()}
    if getattr(out, "pooler_output", None) is not None:
        result["pooler_output"] = out.pooler_output.float().numpy()
    if getattr(out, "logits", None) is not None:
        result["logits"] = out.logits.float().numpy()
    return result


# Fixtures that also get a tokenizer (pad id 0): letters as WordPiece pieces, so any lower-case
# English text tokenizes within the 64-id vocabulary.
WITH_TOKENIZER = ("bert", "distilbert_cls")
TOKENIZER_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    *"abcdefghijklmnopqrstuvwxyz", *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"),
]  # fmt: skip


def save_tiny_tokenizer(folder: str) -> None:
    """A BERT WordPiece tokenizer over `TOKENIZER_VOCAB` (57 ids) saved into `folder`."""
    from transformers import BertTokenizer  # transformers 5: the tokenizers-backed class

    vocab = {token: i for i, token in enumerate(TOKENIZER_VOCAB)}
    BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=32).save_pretrained(folder)


# Generations scored by the gibberish-metric test (fixture distilbert_cls): clean, gibberish,
# empty, and longer than the 32-token truncation.
GIBBERISH_TEXTS = [
    "the author was born in paris",
    "asdkj qwe zxcmnb",
    "",
    "answer answer answer",
    "she wrote many novels about the sea and the long winters of the north country",
    "no",
]


def classifier_prob_logits(model, tokenizer, texts, batch_size=32, max_length=32) -> np.ndarray:
    """Logits [N, C] computed as open-unlearning's `classifier_prob` does (batches of 32,
    padding to the longest, truncation at max_length=32)."""
    import torch

    out = []
    for start in range(0, len(texts), batch_size):
        inputs = tokenizer(
            texts[start : start + batch_size], return_tensors="pt", padding=True,
            truncation=True, max_length=max_length, return_attention_mask=True,
        )  # fmt: skip
        with torch.no_grad():
            out.append(model(**inputs).logits.float().numpy())
    return np.concatenate(out)


def main() -> None:
    os.makedirs(FIXTURE_DIR, exist_ok=True)
    for name in ENCODER_FIXTURES:
        folder = os.path.join(FIXTURE_DIR, name)
        shutil.rmtree(folder, ignore_errors=True)
        model = build_hf_encoder(name, seed=0)
        model.save_pretrained(folder, safe_serialization=True)
        batch = fixture_batch(name)
        extra = {}
        if name in WITH_TOKENIZER:
            save_tiny_tokenizer(folder)
        if name == "distilbert_cls":
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(folder)
            extra = dict(
                texts=np.array(GIBBERISH_TEXTS),
                text_logits=classifier_prob_logits(model, tok, GIBBERISH_TEXTS),
            )
        outputs = hf_encoder_outputs(model, batch)
        np.savez(os.path.join(folder, "reference.npz"), **outputs, **batch, **extra)
        print(f"wrote {folder}", file=sys.stderr)


if __name__ == "__main__":
    main()
