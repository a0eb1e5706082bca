"""DEP's trainable/frozen split, its `loss_fn` for the shared trainer, and soft-prompt sampling.

    graphdef, params, frozen = split_dep(model)           # params: the DEPParam leaves only
    loss_fn = make_dep_loss_fn(graphdef)
    fit(loss_fn=loss_fn, params=params, constants=frozen, ...)
    model = nnx.merge(graphdef, result.state.params, frozen)
    out = dep_generate(model, ids, mask, his_diff_emb, max_new_tokens=256, seeds=[...])

A batch holds `input_ids`, `attention_mask`, `labels` [B, T] (HF layout, -100 off the target) and
`his_diff_emb` [B, 16, E].
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.generate import GenerationOutput, generate, per_request_keys
from jaxmethods.losses import (
    masked_mean,
    next_token_labels,
    token_cross_entropy,
    token_cross_entropy_from_hidden,
)
from jaxmethods.losses.sparse_autoencoder import (
    DEP_KL_WEIGHT,
    DEP_RHO,
    DEP_SAE_WEIGHT,
    dep_loss,
)
from jaxmethods.methods.dep.model import DEPModel, DEPParam


def split_dep(model: DEPModel) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """(graphdef, trainable DEPParam state, everything else: the frozen LLM and buffers)."""
    return nnx.split(model, DEPParam, ...)


def make_dep_loss_fn(
    graphdef: nnx.GraphDef,
    *,
    chunk_size: int = 0,
    rho: float = DEP_RHO,
    sae_weight: float = DEP_SAE_WEIGHT,
    kl_weight: float = DEP_KL_WEIGHT,
):
    """`loss_fn(params, constants, batch, rng) -> (loss, metrics)` for `jaxmethods.train.fit`.

    loss = CE_LM (mean over the batch's target tokens, HF's shift) + sae_weight * (SmoothL1 +
    kl_weight * KL(rho)), `jaxmethods.losses.sparse_autoencoder.dep_loss`. `params` are the
    DEPParam leaves, `constants` the rest of the model (never differentiated: the LLM gets no
    weight gradient and no optimizer state). `chunk_size > 0` runs the LM head chunk by chunk.
    """

    def loss_fn(params: Any, constants: Any, batch: dict, rng: jax.Array):
        del rng  # the frozen LLM has no dropout; the adapter none either (as the authors)
        model = nnx.merge(graphdef, params, constants)
        x = batch["his_diff_emb"]
        embeds, z, x_recon = model.input_embeddings(batch["input_ids"], x)
        lm, mask = model.lm, batch["attention_mask"]
        shifted = next_token_labels(batch["labels"])
        if chunk_size > 0:
            h = lm.hidden_states(None, mask, inputs_embeds=embeds)
            ce, scored = token_cross_entropy_from_hidden(
                h, lm.lm_head_kernel(), shifted, chunk_size=chunk_size
            )
        else:
            ce, scored = token_cross_entropy(lm(None, mask, inputs_embeds=embeds), shifted)
        total, terms = dep_loss(
            masked_mean(ce, scored), x, x_recon, z,
            rho=rho, sae_weight=sae_weight, kl_weight=kl_weight,
        )  # fmt: skip
        return total, {**terms, "tokens": jnp.sum(scored).astype(jnp.float32)}

    return loss_fn


@functools.lru_cache(maxsize=16)
def _jit_embeddings(graphdef: nnx.GraphDef):
    def fn(state, input_ids, his_diff_emb):
        return nnx.merge(graphdef, state).input_embeddings(input_ids, his_diff_emb)[0]

    return jax.jit(fn)


def dep_generate(
    model: DEPModel,
    input_ids: Any,
    attention_mask: Any,
    his_diff_emb: Any,
    *,
    max_new_tokens: int,
    seeds: Sequence[int] | None = None,
    rng: jax.Array | None = None,
    do_sample: bool = True,
    temperature: float = 0.8,
    top_p: float = 0.95,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int = 0,
) -> GenerationOutput:
    """Samples continuations of left-padded prompts with the 16 soft tokens injected.

    The prompt embeddings (placeholders replaced) are computed once, then the shared KV-cache
    sampler prefills from them (`generate(..., inputs_embeds=...)`). Defaults are the authors'
    decoding (temperature 0.8, top-p 0.95). `seeds` [B] gives every request its own key
    (reproducible whatever the batch); otherwise `rng` is one key for the batch.

    Args:
      input_ids, attention_mask: [B, T] prompts with placeholders, left padded.
      his_diff_emb: [B, 16, E] history and difference embeddings.
    Returns:
      GenerationOutput(sequences [B, M], lengths [B], logprobs [B, M]).
    """
    if seeds is not None:
        rng = per_request_keys(seeds)
    if do_sample and rng is None:
        raise ValueError("dep_generate: sampling needs `seeds` (one per request) or `rng`")
    graphdef, state = nnx.split(model)
    ids = jnp.asarray(input_ids, jnp.int32)
    embeds = _jit_embeddings(graphdef)(state, ids, jnp.asarray(his_diff_emb))
    return generate(
        model.lm, ids, attention_mask, max_new_tokens=max_new_tokens, do_sample=do_sample,
        temperature=temperature, top_p=top_p, rng=rng, eos_token_id=eos_token_id,
        pad_token_id=pad_token_id, inputs_embeds=embeds,
    )  # fmt: skip
