"""Pigeon's stage-1 SFT around `PigeonModel`: the trainable split by Variable type (LoRA, mask
generator, reference MLP), the loss function for `jaxmethods.train.fit`, and generation.

    graphdef, params, frozen = split_pigeon(model)
    fit(loss_fn=make_pigeon_sft_loss_fn(graphdef), params=params, constants=frozen, ...)
    codes = pigeon_generate(nnx.merge(graphdef, params, frozen), history, reference)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.generate import generate, per_request_keys
from jaxmethods.methods.drc.image_lm import VisualTokenProcessor
from jaxmethods.methods.drc.pigeon import PigeonModel, PigeonParam
from jaxmethods.models.lora import LoRAParam


def pigeon_trainable_filter() -> Any:
    """SFT trains the LoRA factors, the mask generator and the reference MLP."""
    return nnx.Any(PigeonParam, LoRAParam)


def split_pigeon(model: PigeonModel) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    return nnx.split(model, pigeon_trainable_filter(), ...)


def make_pigeon_sft_loss_fn(graphdef: nnx.GraphDef, *, per_example_metrics: bool = True):
    """`loss_fn(params, constants, batch, rng)` of Pigeon's stage 1.

    batch: history [B, M, N], target [B, N] codes; optional reference [B, N] (default: the
    target itself, masked, as Pigeon trains). One target mask ratio ~ U(0, 1) per step (Pigeon:
    `random.uniform(0, 1)` per forward). loss = mean over rows of the mean CE of the target's
    visual ids + end.
    """

    def loss_fn(params: Any, constants: Any, batch: dict, rng: jax.Array):
        model = nnx.merge(graphdef, params, constants)
        k_ratio, k_gumbel, k_drop, k_lora = jax.random.split(rng, 4)
        ratio = jax.random.uniform(k_ratio, ())
        target = batch["target"]
        reference = batch.get("reference", target)
        _, emb = model.prompt(
            batch["history"], reference, ratio, inference=False, gumbel_key=k_gumbel,
            dropout_key=k_drop,
        )  # fmt: skip
        ce = jnp.mean(model.completion_ce(emb, target, dropout_rng=k_lora), axis=-1)
        metrics = {"ce": jnp.mean(ce), "mask_ratio": ratio}
        if per_example_metrics:
            metrics["per_example_loss"] = jax.lax.stop_gradient(ce)
        return jnp.mean(ce), metrics

    return loss_fn


@functools.lru_cache(maxsize=16)
def _jit_prompt(graphdef: nnx.GraphDef):
    def fn(state, history, reference, ratio, key):
        model = nnx.merge(graphdef, state)
        return model.prompt(history, reference, ratio, inference=True, gumbel_key=key)

    return jax.jit(fn)


def pigeon_generate(
    model: PigeonModel,
    history: Any,
    reference: Any,
    *,
    mask_ratio: float = 0.2,
    seed: int = 0,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    seeds: Sequence[int] | None = None,
) -> np.ndarray:
    """Pigeon inference: codes [B, N] of the generated image (text ids suppressed).

    history [B, M, N], reference [B, N] codes; mask_ratio: alpha_r, the fraction of reference
    tokens masked (Pigeon sweeps 0.0..1.0); seed: Gumbel noise of the masks; greedy or
    sampling (`do_sample`, per-row `seeds`). Pigeon decodes with 4 beams; the shared
    `beam_search` takes no `inputs_embeds` (soft prompts), so beams are not offered here.
    """
    v = model.vocab
    history = jnp.asarray(v.to_lm_ids(history, field="history") - v.visual_offset)
    reference = jnp.asarray(v.to_lm_ids(reference, field="reference") - v.visual_offset)
    graphdef, state = nnx.split(model)
    ids, emb = _jit_prompt(graphdef)(
        state, history, reference, jnp.float32(mask_ratio), jax.random.key(seed)
    )
    n = reference.shape[1]
    rng = per_request_keys(seeds) if seeds is not None else jax.random.key(seed)
    out = generate(
        model.lm, ids, None, max_new_tokens=n, do_sample=do_sample, temperature=temperature,
        top_k=top_k, rng=rng if do_sample else None,
        logits_processor=VisualTokenProcessor(v, allow_end=False), inputs_embeds=emb,
    )  # fmt: skip
    return v.to_codes(np.asarray(out.sequences))
