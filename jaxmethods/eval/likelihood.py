"""Batched, jitted per-sequence likelihood statistics of a decoder LM (for unlearning metrics).

`sequence_statistics(model, examples, ...)` pads tokenised examples (HF label layout) to a fixed
[batch_size, length] so one compiled program serves the whole dataset, runs the model on device
and returns, per example: the summed NLL over label tokens, their count, and optionally the
Min-K% MIA score and the greedy-prediction matches used by extraction strength.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.data.tofu import pad_examples
from jaxmethods.eval.mia import drop_last_label, min_k_scores
from jaxmethods.losses.unlearning import (
    next_token_labels,
    num_label_tokens,
    sequence_nll,
    token_cross_entropy,
)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _batch_stats(
    graphdef, state, batch: Mapping[str, jax.Array], min_k: float | None, with_matches: bool
) -> dict[str, jax.Array]:
    model = nnx.merge(graphdef, state)
    logits = model(batch["input_ids"], batch["attention_mask"])
    labels = next_token_labels(batch["labels"])
    ce, mask = token_cross_entropy(logits, labels)
    out = {"nll": sequence_nll(ce, mask), "num_tokens": num_label_tokens(mask)}
    if min_k is not None:
        out["min_k"] = min_k_scores(-ce, drop_last_label(mask), min_k)
    if with_matches:
        # Extraction strength compares greedy predictions on all label tokens but the last.
        scored = drop_last_label(mask)
        match = (jnp.argmax(logits, axis=-1) == labels) & scored
        # Left-align each row's scored positions so position 0 is the first label token.
        first = jnp.argmax(scored, axis=-1)
        idx = (first[:, None] + jnp.arange(labels.shape[1])[None, :]) % labels.shape[1]
        out["match"] = jnp.take_along_axis(match, idx, axis=1)
        out["num_scored"] = jnp.sum(scored, axis=-1)
    return out


def sequence_statistics(
    model: nnx.Module,
    examples: Sequence[Mapping[str, Any]],
    *,
    batch_size: int,
    length: int,
    pad_id: int,
    min_k: float | None = None,
    with_matches: bool = False,
) -> dict[str, np.ndarray]:
    """Per-example statistics over label tokens (labels in HF layout, shifted here).

    Args:
      model: a decoder following the `DecoderLM` contract.
      examples: dicts with "input_ids" and "labels" lists (at most `length` tokens).
      batch_size, length: the fixed padded batch shape (one compilation for all batches).
      pad_id: padding token id.
      min_k: when set, also return "min_k" [N], the Min-K% MIA score with that fraction.
      with_matches: also return "match" [N, length] bool (greedy == label, left-aligned over
        the label tokens but the last) and "num_scored" [N] for extraction strength.
    Returns:
      {"nll" [N], "num_tokens" [N], "avg_nll" [N] = nll / max(1, num_tokens), ...} as NumPy.
    """
    graphdef, state = nnx.split(model)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = pad_examples(chunk, length=length, pad_id=pad_id, batch_size=batch_size)
        batch = {k: jnp.asarray(batch[k]) for k in ("input_ids", "attention_mask", "labels")}
        out = jax.device_get(_batch_stats(graphdef, state, batch, min_k, with_matches))
        for k, v in out.items():
            parts.setdefault(k, []).append(np.asarray(v)[: len(chunk)])
    if not parts:
        return {"nll": np.zeros(0), "num_tokens": np.zeros(0), "avg_nll": np.zeros(0)}
    stats = {k: np.concatenate(v) for k, v in parts.items()}
    stats["avg_nll"] = stats["nll"] / np.maximum(stats["num_tokens"], 1.0)
    return stats
