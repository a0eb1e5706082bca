"""MUSE evaluation of a decoder LM: verbmem / knowmem ROUGE, privleak, extraction strength.

Following open-unlearning's MUSE metrics:
  forget_verbmem_ROUGE   greedy continuation (128 new tokens) of each verbmem prompt, ROUGE-L F1
                         against the ground-truth continuation;
  forget_knowmem_ROUGE / retain_knowmem_ROUGE   few-shot QA (the *_icl rows as in-context turns),
                         greedy answer of at most 32 tokens cut at the stop words, ROUGE-L F1;
  privleak               Min-K% (k = 0.4) MIA AUC on privleak forget vs holdout, compared with the
                         retrained model's AUC (0.5 when unknown);
  extraction_strength    on the verbmem texts (prompt as prefix, continuation as labels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from flax import nnx

from jaxmethods.data.muse import knowmem_examples, pretraining_instance, verbmem_examples
from jaxmethods.data.tofu import left_pad_prompts
from jaxmethods.eval.likelihood import sequence_statistics
from jaxmethods.eval.mia import mia_auc
from jaxmethods.eval.rouge import rouge_l
from jaxmethods.eval.unlearning import extraction_strength, privleak
from jaxmethods.generate import generate
from jaxmethods.losses.unlearning import IGNORE_INDEX

KNOWMEM_STOPWORDS = ("\n\n", "\nQuestion", "Question:")


@dataclass(frozen=True)
class MuseEvalSettings:
    """length: text tokens kept after the BOS (the authors' `max_length: 2048` of their
    Completion/Pretraining datasets: rows hold BOS + 2048 tokens, padded to length + 1).
    prompt_length: left-padded generation prompt length."""

    batch_size: int = 8
    length: int = 2048
    prompt_length: int = 1024
    verbmem_new_tokens: int = 128
    knowmem_new_tokens: int = 32
    min_k: float = 0.4
    use_stemmer: bool = True


def _generate_texts(model, tokenizer, prompts, *, new_tokens, s: MuseEvalSettings) -> list[str]:
    texts = []
    for start in range(0, len(prompts), s.batch_size):
        chunk = prompts[start : start + s.batch_size]
        ids, mask = left_pad_prompts(
            [p[-s.prompt_length :] for p in chunk],
            length=s.prompt_length,
            pad_id=tokenizer.pad_token_id,
            batch_size=s.batch_size,
        )
        out = generate(
            model, ids, mask, max_new_tokens=new_tokens,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
        seqs, lengths = np.asarray(out.sequences), np.asarray(out.lengths)
        for i in range(len(chunk)):
            texts.append(tokenizer.decode(seqs[i, : lengths[i]].tolist(), skip_special_tokens=True))
    return texts


def cut_at_stopwords(text: str, stopwords: Sequence[str]) -> str:
    """Keeps the text before the first occurrence of any stop word, stripped."""
    for w in stopwords:
        if w and w in text:
            text = text.split(w)[0]
    return text.strip()


def verbmem_rouge(model, tokenizer, rows, s: MuseEvalSettings) -> np.ndarray:
    ex = verbmem_examples(tokenizer, rows, max_length=s.length)
    gens = _generate_texts(
        model, tokenizer, [e["prompt_ids"] for e in ex], new_tokens=s.verbmem_new_tokens, s=s
    )
    return np.asarray(
        [
            rouge_l(e["target"], g.strip(), use_stemmer=s.use_stemmer).fmeasure
            for e, g in zip(ex, gens)
        ]
    )


def knowmem_rouge(model, tokenizer, rows, icl_rows, s: MuseEvalSettings) -> np.ndarray:
    ex = knowmem_examples(tokenizer, rows, icl_rows, max_length=s.length)
    gens = _generate_texts(
        model, tokenizer, [e["prompt_ids"] for e in ex], new_tokens=s.knowmem_new_tokens, s=s
    )
    return np.asarray(
        [
            rouge_l(
                e["target"], cut_at_stopwords(g, KNOWMEM_STOPWORDS), use_stemmer=s.use_stemmer
            ).fmeasure
            for e, g in zip(ex, gens)
        ]
    )


def min_k_auc(model, tokenizer, forget_rows, holdout_rows, s: MuseEvalSettings) -> float:
    """Min-K% MIA AUC, forget texts labelled 0 and holdout texts 1."""
    scores = []
    for rows in (forget_rows, holdout_rows):
        ex = [pretraining_instance(tokenizer, r["text"], s.length) for r in rows]
        stats = sequence_statistics(
            model, ex, batch_size=s.batch_size, length=s.length + 1,
            pad_id=tokenizer.pad_token_id, min_k=s.min_k,
        )  # fmt: skip
        scores.append(stats["min_k"])
    return mia_auc(scores[0], scores[1])


def verbmem_extraction_strength(model, tokenizer, rows, s: MuseEvalSettings) -> np.ndarray:
    """Per-row extraction strength; each row keeps its prompt + `s.length` continuation tokens
    (the authors' CompletionDataset truncation)."""
    examples = []
    for r in rows:
        prefix = list(tokenizer(r["prompt"], add_special_tokens=True)["input_ids"])
        full = list(tokenizer(r["prompt"] + " " + r["gt"], add_special_tokens=True)["input_ids"])
        full = full[: len(prefix) + s.length]
        examples.append(
            {"input_ids": full, "labels": [IGNORE_INDEX] * len(prefix) + full[len(prefix) :]}
        )
    # One padded length for the split (a multiple of 128), so the program compiles once.
    length = -(-max(len(e["input_ids"]) for e in examples) // 128) * 128
    stats = sequence_statistics(
        model, examples, batch_size=s.batch_size, length=length,
        pad_id=tokenizer.pad_token_id, with_matches=True,
    )  # fmt: skip
    return extraction_strength(stats["match"], stats["num_scored"])


def evaluate_muse(
    model: nnx.Module,
    tokenizer: Any,
    splits: Mapping[str, Sequence[Mapping]],
    *,
    retrain_auc: float | None = None,
    settings: MuseEvalSettings = MuseEvalSettings(),
) -> dict[str, Any]:
    """All MUSE numbers for one model.

    Args:
      splits: rows keyed "verbmem/forget", "knowmem/forget_qa", "knowmem/forget_qa_icl",
        "knowmem/retain_qa", "knowmem/retain_qa_icl", "privleak/forget", "privleak/holdout".
      retrain_auc: the retrained model's Min-K AUC (its MUSE_EVAL.json `mia_min_k`); None uses
        0.5, open-unlearning's fallback.
    """
    s = settings
    need = ["verbmem/forget", "knowmem/forget_qa", "knowmem/forget_qa_icl", "knowmem/retain_qa",
            "knowmem/retain_qa_icl", "privleak/forget", "privleak/holdout"]  # fmt: skip
    missing = [k for k in need if k not in splits]
    if missing:
        raise KeyError(f"evaluate_muse: missing splits {missing}")
    auc = min_k_auc(model, tokenizer, splits["privleak/forget"], splits["privleak/holdout"], s)
    return {
        "forget_verbmem_ROUGE": float(
            verbmem_rouge(model, tokenizer, splits["verbmem/forget"], s).mean()
        ),
        "forget_knowmem_ROUGE": float(
            knowmem_rouge(
                model, tokenizer, splits["knowmem/forget_qa"], splits["knowmem/forget_qa_icl"], s
            ).mean()
        ),
        "retain_knowmem_ROUGE": float(
            knowmem_rouge(
                model, tokenizer, splits["knowmem/retain_qa"], splits["knowmem/retain_qa_icl"], s
            ).mean()
        ),
        "mia_min_k": auc,
        "privleak": privleak(auc, 0.5 if retrain_auc is None else retrain_auc),
        "extraction_strength": float(
            verbmem_extraction_strength(model, tokenizer, splits["verbmem/forget"], s).mean()
        ),
    }
