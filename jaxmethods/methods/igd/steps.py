"""IGD's pure loss for the shared train step, and the jitted validation loss.

The loss never materialises fp32 [B, T, V] logits: the final hidden states and the LM-head
kernel go through the shared chunked log-softmax, then `weighted_token_nll` (IGD eq. 8).
CFT's second term needs log-softmax(logits - cf_logits); since the LM head is linear (no bias),
logits - cf_logits = (h - h_cf) @ W, so the same chunked kernel computes it exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.losses import chunked_token_logprobs, masked_mean, weighted_token_nll
from jaxmethods.methods.igd.dataset import TokenizedExamples, assemble_batch


def make_loss_fn(
    graphdef: nnx.GraphDef,
    *,
    cft_alpha: float = 0.0,
    chunk_size: int = 256,
    use_dropout: bool = False,
) -> Callable[[Any, Any, dict, jax.Array], tuple[jax.Array, dict]]:
    """`loss_fn(params, frozen, batch, rng) -> (loss, metrics)` for `make_train_step`.

    batch: the arrays of `dataset.assemble_batch` ([B, T] input_ids, attention_mask, labels,
    loss_mask, weights; plus cf_input_ids / cf_attention_mask when `cft_alpha > 0`).
    metrics: "ce" (unweighted token-mean CE) and, with CFT, "weighted_ce" and "cf_ce".
    """

    def loss_fn(params, frozen, batch, rng):
        model = nnx.merge(graphdef, params, frozen)
        keys = jax.random.split(rng) if use_dropout else (None, None)
        h = model.hidden_states(batch["input_ids"], batch["attention_mask"], dropout_rng=keys[0])
        kernel = model.lm_head_kernel()
        labels, mask, w = batch["labels"], batch["loss_mask"], batch["weights"]
        logps = chunked_token_logprobs(h, kernel, labels, chunk_size=chunk_size)
        loss = weighted_token_nll(logps, w, mask)
        metrics = {"ce": masked_mean(-logps, mask)}
        if cft_alpha > 0:
            h_cf = model.hidden_states(
                batch["cf_input_ids"], batch["cf_attention_mask"], dropout_rng=keys[1]
            )
            cf_logps = chunked_token_logprobs(h - h_cf, kernel, labels, chunk_size=chunk_size)
            cf = weighted_token_nll(cf_logps, w, mask)
            metrics |= {"weighted_ce": loss, "cf_ce": cf}
            loss = loss + cft_alpha * cf
        return loss, metrics

    return loss_fn


def make_eval_loss(graphdef: nnx.GraphDef, *, chunk_size: int = 256) -> Callable:
    """Jitted `(params, frozen, batch) -> (weighted loss, number of real rows)` of one batch."""
    loss_fn = make_loss_fn(graphdef, chunk_size=chunk_size)

    @jax.jit
    def eval_loss(params, frozen, batch):
        loss, _ = loss_fn(params, frozen, batch, jax.random.key(0))
        return loss, jnp.sum(jnp.any(batch["loss_mask"], axis=-1))

    return eval_loss


def validation_loss(
    eval_loss: Callable,
    params: Any,
    frozen: Any,
    examples: TokenizedExamples,
    *,
    batch_size: int,
    seq_len: int,
    pad_id: int,
    put: Callable[[dict], dict] = lambda b: b,
) -> float:
    """HF-style eval loss: each batch's sum(w * CE) / sum(w), averaged over batches weighted by
    their number of rows. The tail batch is padded with rows that carry no target tokens."""
    n = len(examples)
    total, rows = 0.0, 0
    pending = []
    for start in range(0, n, batch_size):
        idx = list(range(start, min(start + batch_size, n)))
        batch = assemble_batch(examples, idx + [idx[0]] * (batch_size - len(idx)), seq_len,
                               pad_id=pad_id)  # fmt: skip
        for key in ("loss_mask", "weights", "labels"):
            batch[key][len(idx) :] = 0
        pending.append(eval_loss(params, frozen, put(batch)))
    for loss, count in pending:  # one host sync at the end
        count = int(count)
        total += float(loss) * count
        rows += count
    return total / max(rows, 1)
