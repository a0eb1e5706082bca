"""IGD's pure loss for the shared trainer, and the validation loss that drives early stopping.

The loss never materialises fp32 [B, T, V] logits: the final hidden states and the LM-head
kernel go through the shared chunked log-softmax, then `weighted_token_nll` (IGD eq. 8):

    L = sum_t w_{t+1} * -log p(labels_{t+1} | h_t) / sum_t w_{t+1}

over the label tokens of the micro-batch (HF labels, shifted here). CFT's second term needs
log-softmax(logits - cf_logits); since the LM head is linear (no bias),
logits - cf_logits = (h - h_cf) @ W, so the same chunked kernel computes it exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from flax import nnx

from jaxmethods.data.pipeline import PAD_INDEX
from jaxmethods.losses import chunked_token_logprobs, masked_mean, weighted_token_nll
from jaxmethods.losses.token_weighted import shift_labels_and_weights
from jaxmethods.methods.igd.dataset import TokenizedExamples, assemble_batch


def make_loss_fn(
    graphdef: nnx.GraphDef,
    *,
    cft_alpha: float = 0.0,
    chunk_size: int = 256,
    use_dropout: bool = False,
) -> Callable[[Any, Any, dict, jax.Array], tuple[jax.Array, dict]]:
    """`loss_fn(params, base, batch, rng) -> (loss, metrics)` for `jaxmethods.train.fit`.

    params: the trained variables; base: the rest of the model (frozen weights when LoRA is on).
    batch: the arrays of `dataset.assemble_batch` ([B, T] input_ids, attention_mask, labels,
    weights; plus cf_input_ids / cf_attention_mask when `cft_alpha > 0`).
    metrics: "ce" (unweighted token-mean CE) and, with CFT, "weighted_ce" and "cf_ce".
    chunk_size: positions per chunk of the LM-head log-softmax (0 = the whole sequence).
    """

    def loss_fn(params, base, batch, rng):
        model = nnx.merge(graphdef, params, base)
        keys = jax.random.split(rng) if use_dropout else (None, None)
        h = model.hidden_states(batch["input_ids"], batch["attention_mask"], dropout_rng=keys[0])
        kernel = model.lm_head_kernel()
        chunk = chunk_size or h.shape[1]
        labels, w, mask = shift_labels_and_weights(batch["labels"], batch["weights"])
        logps = chunked_token_logprobs(h, kernel, labels, chunk_size=chunk)
        loss = weighted_token_nll(logps, w, mask)
        metrics = {"ce": masked_mean(-logps, mask)}
        if cft_alpha > 0:
            h_cf = model.hidden_states(
                batch["cf_input_ids"], batch["cf_attention_mask"], dropout_rng=keys[1]
            )
            cf_logps = chunked_token_logprobs(h - h_cf, kernel, labels, chunk_size=chunk)
            cf = weighted_token_nll(cf_logps, w, mask)
            metrics |= {"weighted_ce": loss, "cf_ce": cf}
            loss = loss + cft_alpha * cf
        return loss, metrics

    return loss_fn


def make_eval_loss(graphdef: nnx.GraphDef, *, chunk_size: int = 256) -> Callable:
    """Jitted `(params, base, batch) -> weighted loss` of one batch (no dropout, no CFT term)."""
    loss_fn = make_loss_fn(graphdef, chunk_size=chunk_size)

    @jax.jit
    def eval_loss(params, base, batch):
        return loss_fn(params, base, batch, jax.random.key(0))[0]

    return eval_loss


def validation_loss(
    eval_loss: Callable,
    params: Any,
    base: Any,
    examples: TokenizedExamples,
    *,
    batch_size: int,
    seq_len: int,
    pad_id: int,
    put: Callable[[dict], dict] = lambda b: b,
) -> float:
    """HF Trainer's eval loss: each batch's sum(w * CE) / sum(w), averaged over the batches
    weighted by their number of rows (`loss.repeat(batch_size)`, then the mean). Batches run
    in order; the short last one is padded with label-free rows (index -1)."""
    n = len(examples)
    pending = []
    for start in range(0, n, batch_size):
        idx = np.full(batch_size, PAD_INDEX, np.int64)
        rows = min(batch_size, n - start)
        idx[:rows] = np.arange(start, start + rows)
        batch = assemble_batch(examples, idx, seq_len, pad_id=pad_id)
        pending.append((eval_loss(params, base, put(batch)), rows))
    # One host sync at the end.
    total = sum(float(loss) * rows for loss, rows in pending)
    return total / n
