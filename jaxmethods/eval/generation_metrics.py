"""Text-generation metrics of DEP's evaluation (the authors' `evaluate` calls), none hand-written:

- ROUGE-1 / ROUGE-L F1 through `rouge-score` (`RougeScorer(["rouge1", "rougeL"])`, no stemmer,
  as `evaluate.load("rouge")`), per sample, then averaged (`evaluate` reports the bootstrap
  median of the same per-sample F1s, which equals the mean up to resampling noise);
- METEOR through `nltk.translate.meteor_score.meteor_score` (alpha 0.9, beta 3, gamma 0.5, as
  `evaluate.load("meteor")`), per sample, then averaged;
- sacreBLEU through `sacrebleu.corpus_bleu` (corpus level, 0-100, `evaluate`'s "score");
- BERTScore F1 through `bert_score.score` (the `torch` extra), default model
  `allenai/led-base-16384` as the authors.

Predictions and references are `.strip()`ed, as the authors.

NLTK data. `evaluate`'s METEOR tokenises with `nltk.word_tokenize` (needs `punkt_tab`) and
matches synonyms through WordNet (needs `wordnet`); neither ships with nltk and neither can be
downloaded offline. `MeteorOptions()` (the default, the authors' metric) raises a clear error
naming `python -m nltk.downloader wordnet punkt_tab` when they are missing. Offline runs (the
demo, the tests) may opt in to `MeteorOptions(wordnet=False, tokenizer="wordpunct")`: nltk's
same `meteor_score` with a WordNet stand-in that has no synsets (exact and Porter-stem matches
only) and `nltk.wordpunct_tokenize` (a regex, no data); the metric is then reported under the
name `meteor_label(options)` = "METEOR (exact+stem, no WordNet synonyms)", never as METEOR.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jaxmethods.eval.qa import mean_and_stderr
from jaxmethods.eval.rouge import rouge1, rouge_l

DOWNLOAD_HINT = "python -m nltk.downloader wordnet punkt_tab"
BERTSCORE_MODEL = "allenai/led-base-16384"


@dataclass(frozen=True)
class MeteorOptions:
    """wordnet: match WordNet synonyms (nltk's `wordnet` corpus must be installed); False uses a
    stand-in with no synsets. tokenizer: "punkt" (`nltk.word_tokenize`, as `evaluate`; needs
    `punkt_tab`) or "wordpunct" (`nltk.wordpunct_tokenize`, no data)."""

    wordnet: bool = True
    tokenizer: str = "punkt"

    def __post_init__(self):
        if self.tokenizer not in ("punkt", "wordpunct"):
            raise ValueError(
                f"MeteorOptions.tokenizer: {self.tokenizer!r} is not 'punkt' or 'wordpunct'"
            )


def meteor_label(options: MeteorOptions) -> str:
    """The name a METEOR score computed with `options` is reported under."""
    if options.wordnet and options.tokenizer == "punkt":
        return "METEOR"
    parts = [] if options.wordnet else ["exact+stem, no WordNet synonyms"]
    if options.tokenizer != "punkt":
        parts.append(f"{options.tokenizer} tokens")
    return f"METEOR ({'; '.join(parts)})"


class _NoSynonyms:
    """A WordNet stand-in for nltk's `meteor_score(..., wordnet=)`: no word has synsets, so only
    the exact and stem stages match."""

    @staticmethod
    def synsets(word: str, *args, **kwargs) -> list:
        return []


def _require(resource: str, why: str) -> None:
    import nltk

    try:
        nltk.data.find(resource)
    except LookupError as e:
        raise LookupError(
            f"generation_metrics: METEOR needs nltk's {resource!r} ({why}), which is not "
            f"installed; run `{DOWNLOAD_HINT}` (online once), or opt in to "
            f"MeteorOptions(wordnet=False, tokenizer='wordpunct') for an offline score reported "
            f"as {meteor_label(MeteorOptions(False, 'wordpunct'))!r}"
        ) from e


@functools.cache
def _meteor_setup(options: MeteorOptions):
    from nltk import word_tokenize, wordpunct_tokenize

    if options.wordnet:
        _require("corpora/wordnet", "synonym matching")
        from nltk.corpus import wordnet
    else:
        wordnet = _NoSynonyms()
    if options.tokenizer == "punkt":
        _require("tokenizers/punkt_tab", "word_tokenize")
        tokenize = word_tokenize
    else:
        tokenize = wordpunct_tokenize
    return wordnet, tokenize


def _check(references: Sequence[str], predictions: Sequence[str]) -> tuple[list, list]:
    if len(references) != len(predictions):
        raise ValueError(
            f"generation_metrics: {len(references)} references but {len(predictions)} predictions"
        )
    return [r.strip() for r in references], [p.strip() for p in predictions]


def rouge_f1(references: Sequence[str], predictions: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-sample ROUGE-1 and ROUGE-L F1: {"rouge1": [N], "rougeL": [N]}."""
    refs, preds = _check(references, predictions)
    return {
        "rouge1": np.array([rouge1(r, p).fmeasure for r, p in zip(refs, preds)]),
        "rougeL": np.array([rouge_l(r, p).fmeasure for r, p in zip(refs, preds)]),
    }


def meteor(
    references: Sequence[str], predictions: Sequence[str], options: MeteorOptions = MeteorOptions()
) -> np.ndarray:
    """Per-sample METEOR [N] (nltk; one reference per prediction)."""
    from nltk.translate.meteor_score import meteor_score

    refs, preds = _check(references, predictions)
    wordnet, tokenize = _meteor_setup(options)
    return np.array(
        [meteor_score([tokenize(r)], tokenize(p), wordnet=wordnet) for r, p in zip(refs, preds)]
    )


def sacrebleu_score(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Corpus sacreBLEU, 0-100 (`sacrebleu.corpus_bleu(predictions, [references]).score`)."""
    import sacrebleu

    refs, preds = _check(references, predictions)
    return float(sacrebleu.corpus_bleu(preds, [refs]).score)


def bertscore_f1(
    references: Sequence[str],
    predictions: Sequence[str],
    *,
    model_type: str = BERTSCORE_MODEL,
    batch_size: int = 16,
) -> np.ndarray:
    """Per-sample BERTScore F1 [N] (`bert_score.score`; the `torch` extra)."""
    try:
        import bert_score
    except ImportError as e:
        raise ImportError(
            "generation_metrics.bertscore_f1 needs the `torch` extra (torch and bert-score): "
            "pip install 'jaxmethods[torch]'"
        ) from e
    refs, preds = _check(references, predictions)
    _, _, f1 = bert_score.score(preds, refs, model_type=model_type, batch_size=batch_size)
    return f1.numpy()


def generation_metrics(
    references: Sequence[str],
    predictions: Sequence[str],
    *,
    meteor_options: MeteorOptions = MeteorOptions(),
    bertscore: bool = False,
    bertscore_model: str = BERTSCORE_MODEL,
) -> dict[str, float]:
    """Flat means and standard errors: rouge1, rougeL, meteor (+ `_se` each), sacrebleu
    [, bertscore_f1 (+ `_se`)]. `meteor_label(meteor_options)` names the METEOR variant."""
    per_sample = rouge_f1(references, predictions)
    per_sample["meteor"] = meteor(references, predictions, meteor_options)
    if bertscore:
        per_sample["bertscore_f1"] = bertscore_f1(
            references, predictions, model_type=bertscore_model
        )
    out: dict[str, float] = {}
    for name, values in per_sample.items():
        out[name], out[f"{name}_se"] = mean_and_stderr(values)
    out["sacrebleu"] = sacrebleu_score(references, predictions)
    return out


__all__ = [
    "BERTSCORE_MODEL",
    "MeteorOptions",
    "bertscore_f1",
    "generation_metrics",
    "meteor",
    "meteor_label",
    "rouge_f1",
    "sacrebleu_score",
]
