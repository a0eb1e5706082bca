"""TOFU evaluation of a decoder LM: forget quality, model utility and their ingredients.

Mirrors open-unlearning's TOFU metric set (`configs/eval/tofu_metrics`):
  forget_Truth_Ratio   forgetXX_perturbed, correct = paraphrased_answer, wrong = perturbed_answer,
                       aggregated mean(min(TR, 1/TR)); its per-question values feed
  forget_quality       KS p-value against the retain model's forget TRs;
  model_utility        harmonic mean of
                       retain_Q_A_Prob / _ROUGE / _Truth_Ratio  (retain_perturbed; TR with the
                         paraphrased answer as correct),
                       ra_* and wf_*  (real_authors_perturbed, world_facts_perturbed; probability
                         normalised over the options, TR with the answer as correct);
  forget_Q_A_Prob / forget_Q_A_ROUGE   side metrics on the forget split;
  forget_Q_A_gibberish  mean probability that the forget-split generations (the ones
                       forget_Q_A_ROUGE scores) are "clean" text under the gibberish classifier
                       (`jaxmethods.eval.gibberish`); only with `settings.gibberish_classifier`
                       set and its weights available, otherwise left out with one log line.
ROUGE is ROUGE-L recall of the greedy generation (max 200 new tokens) against the answer, with
rouge_score's tokenizer and Porter stemming as in the authors' scorer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from flax import nnx

from jaxmethods.data.tofu import LLAMA2_CHAT_TEMPLATE, QATemplate, left_pad_prompts, tokenize_qa
from jaxmethods.eval.gibberish import TextClassifier, gibberish_score
from jaxmethods.eval.likelihood import sequence_statistics
from jaxmethods.eval.rouge import rouge_l
from jaxmethods.eval.unlearning import (
    answer_probability,
    ks_forget_quality,
    model_utility,
    normalized_answer_probability,
    truth_ratio,
    truth_ratio_closer_to_1,
    truth_ratio_true_better,
)
from jaxmethods.generate import generate


@dataclass(frozen=True)
class TofuEvalSettings:
    """Shapes and generation settings of the evaluation (fixed shapes: one compile per kind).

    batch_size: rows per likelihood / generation batch. length: padded QA length (512 in TOFU).
    prompt_length: padded prompt length for generation. max_new_tokens: 200 in TOFU.
    use_stemmer: Porter-stem ROUGE tokens (the authors' scorer does).
    gibberish_classifier: path or hub id of the forget_Q_A_gibberish classifier
      (`jaxmethods.eval.gibberish.GIBBERISH_CLASSIFIER` in the authors' setup); None skips it.
    """

    batch_size: int = 32
    length: int = 512
    prompt_length: int = 256
    max_new_tokens: int = 200
    use_stemmer: bool = True
    template: QATemplate = LLAMA2_CHAT_TEMPLATE
    gibberish_classifier: str | None = None


def _avg_nll(model, tokenizer, questions, answers, s: TofuEvalSettings) -> np.ndarray:
    examples = [
        tokenize_qa(tokenizer, s.template, q, a, max_length=s.length)
        for q, a in zip(questions, answers)
    ]
    stats = sequence_statistics(
        model, examples, batch_size=s.batch_size, length=s.length, pad_id=tokenizer.pad_token_id
    )
    return stats["avg_nll"]


def _avg_nll_options(model, tokenizer, rows, key: str, s: TofuEvalSettings) -> np.ndarray:
    """[N, M] avg-NLLs of a list field (M answers per row; M must be equal across rows)."""
    counts = {len(r[key]) for r in rows}
    if len(counts) != 1:
        raise ValueError(f"rows have different numbers of '{key}' entries: {sorted(counts)}")
    m = counts.pop()
    qs = [r["question"] for r in rows for _ in range(m)]
    ans = [a for r in rows for a in r[key]]
    return _avg_nll(model, tokenizer, qs, ans, s).reshape(len(rows), m)


def greedy_answers(
    model: nnx.Module, tokenizer: Any, questions: Sequence[str], s: TofuEvalSettings
) -> list[str]:
    """Greedy generations for the questions (prompt = the template up to the answer)."""
    prompts = [
        tokenize_qa(tokenizer, s.template, q, "", max_length=s.length)["prompt_ids"]
        for q in questions
    ]
    texts = []
    for start in range(0, len(prompts), s.batch_size):
        chunk = prompts[start : start + s.batch_size]
        ids, mask = left_pad_prompts(
            chunk, length=s.prompt_length, pad_id=tokenizer.pad_token_id, batch_size=s.batch_size
        )
        out = generate(
            model,
            ids,
            mask,
            max_new_tokens=s.max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        seqs, lengths = np.asarray(out.sequences), np.asarray(out.lengths)
        for i in range(len(chunk)):
            text = tokenizer.decode(seqs[i, : lengths[i]].tolist(), skip_special_tokens=True)
            texts.append(text.strip())
    return texts


def rouge_recall(
    model: nnx.Module,
    tokenizer: Any,
    rows: Sequence[Mapping],
    s: TofuEvalSettings,
    generations: Sequence[str] | None = None,
) -> np.ndarray:
    """Per-question ROUGE-L recall of the greedy answer against the reference answer
    (`generations`: the greedy answers when already computed)."""
    if generations is None:
        generations = greedy_answers(model, tokenizer, [r["question"] for r in rows], s)
    return np.asarray(
        [
            rouge_l(r["answer"], g, use_stemmer=s.use_stemmer).recall
            for r, g in zip(rows, generations)
        ]
    )


def forget_truth_ratios(
    model: nnx.Module, tokenizer: Any, rows: Sequence[Mapping], s: TofuEvalSettings
) -> np.ndarray:
    """Per-question TR on a forgetXX_perturbed split (paraphrased vs perturbed answers)."""
    correct = _avg_nll(
        model, tokenizer, [r["question"] for r in rows], [r["paraphrased_answer"] for r in rows], s
    )
    return truth_ratio(correct, _avg_nll_options(model, tokenizer, rows, "perturbed_answer", s))


def evaluate_tofu(
    model: nnx.Module,
    tokenizer: Any,
    splits: Mapping[str, Sequence[Mapping]],
    *,
    forget_config: str,
    retain_truth_ratios: np.ndarray | None = None,
    settings: TofuEvalSettings = TofuEvalSettings(),
    with_rouge: bool = True,
    gibberish: TextClassifier | None = None,
) -> dict[str, Any]:
    """All TOFU numbers for one model.

    Args:
      model, tokenizer: the model under evaluation and its tokenizer (pad/eos ids set).
      splits: rows by config name; needs f"{forget_config}_perturbed", "retain_perturbed",
        "real_authors_perturbed", "world_facts_perturbed" (and `forget_config` for the side
        metrics).
      forget_config: e.g. "forget01".
      retain_truth_ratios: the retain model's per-question forget TRs (TOFU_EVAL.json); without
        them forget_quality is None.
      with_rouge: generate for the ROUGE terms (set False for a likelihood-only pass; the model
        utility and forget_Q_A_gibberish are then None).
      gibberish: a loaded gibberish classifier (else `settings.gibberish_classifier` is loaded,
        once per process; None when neither is given or the weights are unavailable).
    Returns:
      a dict with "forget_quality", "model_utility", the nine utility terms, "forget_Truth_Ratio",
      "forget_Q_A_Prob", "forget_Q_A_ROUGE", "forget_Q_A_gibberish" (None when skipped) and
      "forget_truth_ratio_values" (a list).
    """
    s = settings
    need = [f"{forget_config}_perturbed", "retain_perturbed", "real_authors_perturbed",
            "world_facts_perturbed"]  # fmt: skip
    missing = [k for k in need if k not in splits]
    if missing:
        raise KeyError(f"evaluate_tofu: missing splits {missing}")
    out: dict[str, Any] = {}
    forget_rows = splits[f"{forget_config}_perturbed"]
    tr_forget = forget_truth_ratios(model, tokenizer, forget_rows, s)
    out["forget_truth_ratio_values"] = tr_forget.tolist()
    out["forget_Truth_Ratio"] = truth_ratio_closer_to_1(tr_forget)
    out["forget_quality"] = (
        None if retain_truth_ratios is None else ks_forget_quality(tr_forget, retain_truth_ratios)
    )
    qa_rows = splits.get(forget_config, forget_rows)
    forget_avg = _avg_nll(
        model, tokenizer, [r["question"] for r in qa_rows], [r["answer"] for r in qa_rows], s
    )
    out["forget_Q_A_Prob"] = float(answer_probability(forget_avg).mean())

    retain = splits["retain_perturbed"]
    r_q = [r["question"] for r in retain]
    retain_avg = _avg_nll(model, tokenizer, r_q, [r["answer"] for r in retain], s)
    out["retain_Q_A_Prob"] = float(answer_probability(retain_avg).mean())
    para = _avg_nll(model, tokenizer, r_q, [r["paraphrased_answer"] for r in retain], s)
    pert = _avg_nll_options(model, tokenizer, retain, "perturbed_answer", s)
    out["retain_Truth_Ratio"] = truth_ratio_true_better(truth_ratio(para, pert))

    for prefix, name in (("ra", "real_authors_perturbed"), ("wf", "world_facts_perturbed")):
        rows = splits[name]
        correct = _avg_nll(
            model, tokenizer, [r["question"] for r in rows], [r["answer"] for r in rows], s
        )
        wrong = _avg_nll_options(model, tokenizer, rows, "perturbed_answer", s)
        out[f"{prefix}_Q_A_Prob_normalised"] = float(
            normalized_answer_probability(correct, wrong).mean()
        )
        out[f"{prefix}_Truth_Ratio"] = truth_ratio_true_better(truth_ratio(correct, wrong))

    if with_rouge:
        out["retain_Q_A_ROUGE"] = float(rouge_recall(model, tokenizer, retain, s).mean())
        out["ra_Q_A_ROUGE"] = float(
            rouge_recall(model, tokenizer, splits["real_authors_perturbed"], s).mean()
        )
        out["wf_Q_A_ROUGE"] = float(
            rouge_recall(model, tokenizer, splits["world_facts_perturbed"], s).mean()
        )
        forget_gens = greedy_answers(model, tokenizer, [r["question"] for r in qa_rows], s)
        out["forget_Q_A_ROUGE"] = float(
            rouge_recall(model, tokenizer, qa_rows, s, forget_gens).mean()
        )
        out["model_utility"] = model_utility(out)
        scored = gibberish_score(forget_gens, gibberish or s.gibberish_classifier)
        out["forget_Q_A_gibberish"] = None if scored is None else scored["agg_value"]
    else:
        out["model_utility"] = None
        out["forget_Q_A_gibberish"] = None
    return out
