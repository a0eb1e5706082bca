"""TOFU / MUSE `forget_Q_A_gibberish`: a text classifier's probability of "clean" text.

open-unlearning (`configs/eval/tofu_metrics/forget_Q_A_gibberish.yaml`, handler
`classifier_prob` in `src/evals/metrics/utility.py`) scores each greedy forget-set generation
(the text its forget_Q_A_ROUGE step produced) with the HF classifier
`madhurjindal/autonlp-Gibberish-Detector-492513457` (a DistilBertForSequenceClassification with
labels 0 clean, 1 mild gibberish, 2 noise, 3 word salad):

    p_i  = softmax(logits(tokenize(text_i, truncation=True, max_length=32)))[class_id = 0]
    agg  = mean_i p_i                (batch size 32; padding does not change the logits)

`TextClassifier` runs the classifier with our encoder (`jaxmethods.hf.load_pretrained`,
length-bucketed jitted batches as in `TextEncoder`). `load_text_classifier` returns None, with
one logged line, when the weights are neither local nor fetchable (offline, not cached), so the
metric is skipped rather than failing the evaluation.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from jaxmethods.models.text_encoder import batch_rows, length_buckets, run_bucketed

log = logging.getLogger(__name__)

GIBBERISH_CLASSIFIER = "madhurjindal/autonlp-Gibberish-Detector-492513457"


@dataclass(frozen=True)
class ClassifierProbSettings:
    """open-unlearning's `forget_Q_A_gibberish` settings: batch_size 32, max_length 32 tokens,
    class_id 0 (the classifier's "clean" label)."""

    batch_size: int = 32
    max_length: int = 32
    class_id: int = 0


class TextClassifier:
    """An `EncoderModel` with a classification head + its tokenizer: texts -> class probabilities.

    Args:
      model: an `EncoderModel` with `classifier` (e.g. `load_pretrained(path)` of a
        *ForSequenceClassification checkpoint).
      tokenizer: its HF tokenizer.
      max_length: truncation length in tokens.
      mesh: shard batches over the mesh's data axes.
    """

    def __init__(self, model: nnx.Module, tokenizer: Any, *, max_length: int = 512,
                 mesh: Mesh | None = None):  # fmt: skip
        if getattr(model, "classifier", None) is None:
            raise ValueError("TextClassifier: the model has no classification head")
        self.model, self.tokenizer, self.mesh = model, tokenizer, mesh
        self.max_length = int(min(max_length, model.config.max_tokens))
        self.buckets = length_buckets(self.max_length, min(16, self.max_length))
        graphdef, self._state = nnx.split(model)

        def probs(state, ids, mask):
            logits = nnx.merge(graphdef, state).logits(ids, mask)
            return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

        self._probs = jax.jit(probs)

    def probabilities(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """softmax(logits) [N, num_labels] float32, in input order."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.model.num_labels), np.float32)
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        sharding, multiple = None, 1
        if self.mesh is not None:
            from jaxmethods.train.mesh import batch_size_multiple, data_sharding

            sharding, multiple = data_sharding(self.mesh), batch_size_multiple(self.mesh)
        return run_bucketed(
            functools.partial(self._probs, self._state), ids,
            batch_size=batch_rows(len(ids), batch_size, multiple), buckets=self.buckets,
            pad_id=self.tokenizer.pad_token_id, sharding=sharding,
        )  # fmt: skip


def classifier_prob(
    classifier: TextClassifier,
    texts: Sequence[str],
    settings: ClassifierProbSettings = ClassifierProbSettings(),
) -> dict[str, Any]:
    """open-unlearning's `classifier_prob`: {"agg_value": mean_i p_i, "values": [p_i]} with
    p_i = softmax(logits_i)[class_id]. `classifier.max_length` is the truncation length."""
    probs = classifier.probabilities(texts, settings.batch_size)
    if probs.shape[0] and not 0 <= settings.class_id < probs.shape[1]:
        raise ValueError(
            f"classifier_prob: class_id {settings.class_id} is out of range for "
            f"{probs.shape[1]} labels"
        )
    values = probs[:, settings.class_id] if probs.shape[0] else np.zeros(0, np.float32)
    agg = float(values.mean()) if values.size else None
    return {"agg_value": agg, "values": values.tolist()}


@functools.lru_cache(maxsize=4)
def load_text_classifier(
    path_or_id: str = GIBBERISH_CLASSIFIER,
    *,
    max_length: int = ClassifierProbSettings.max_length,
    dtype: str | None = None,
) -> TextClassifier | None:
    """The classifier at `path_or_id` (local folder or hub id), or None after one log line when
    its weights cannot be found or fetched (offline and not cached). Cached per arguments."""
    from jaxmethods.hf import load_pretrained, load_tokenizer, resolve_model_path

    try:
        folder = resolve_model_path(path_or_id)
        model = load_pretrained(folder, dtype, head="sequence_classification")
    except OSError as e:  # missing folder, hub / offline error, or no *.safetensors weights
        log.warning(
            "text classifier %r is not available (%s): metrics that need it are skipped",
            path_or_id, str(e).splitlines()[0] if str(e) else type(e).__name__,
        )  # fmt: skip
        return None
    return TextClassifier(model, load_tokenizer(folder), max_length=max_length)


def gibberish_score(
    texts: Sequence[str],
    classifier: TextClassifier | str | os.PathLike | None = GIBBERISH_CLASSIFIER,
    settings: ClassifierProbSettings = ClassifierProbSettings(),
) -> dict[str, Any] | None:
    """`classifier_prob` of `texts` under the gibberish classifier (a `TextClassifier`, or a path
    / hub id loaded with `load_text_classifier`); None when that classifier is unavailable."""
    if classifier is None:
        return None
    if not isinstance(classifier, TextClassifier):
        classifier = load_text_classifier(os.fspath(classifier), max_length=settings.max_length)
        if classifier is None:
            return None
    return classifier_prob(classifier, texts, settings)
