"""Training and generation around `DRCModel`: the trainable split by Variable type, the stage-1
and stage-2 loss functions for `jaxmethods.train.fit`, and personalized-image generation.

    graphdef, params, frozen = split_drc(model)
    loss_fn = make_stage1_loss_fn(graphdef, model.cfg)        # batch: anchor/pos_style/pos_sem
    fit(loss_fn=loss_fn, params=params, constants=frozen, ...)
    codes = drc_generate(nnx.merge(graphdef, params, frozen), history, reference)
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
from jaxmethods.methods.drc.fusion import FusionParam
from jaxmethods.methods.drc.image_lm import VisualTokenProcessor
from jaxmethods.methods.drc.model import DRCConfig, DRCModel
from jaxmethods.methods.drc.towers import TowerParam
from jaxmethods.models.lora import LoRAParam


def drc_trainable_filter(model_cfg: DRCConfig) -> Any:
    """The Variable types DRC trains: towers and fusion (+ LoRA factors when `train_lora`)."""
    types = (TowerParam, FusionParam) + ((LoRAParam,) if model_cfg.train_lora else ())
    return nnx.Any(*types)


def split_drc(model: DRCModel) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """(graphdef, trainable state, frozen rest: the LM and its buffers)."""
    return nnx.split(model, drc_trainable_filter(model.cfg), ...)


def _weights(batch: dict, b: int) -> jnp.ndarray:
    w = batch.get("weight")
    return jnp.ones((b,), jnp.float32) if w is None else jnp.asarray(w, jnp.float32)


def make_stage1_loss_fn(graphdef: nnx.GraphDef, cfg: DRCConfig):
    """`loss_fn(params, constants, batch, rng) -> (loss, metrics)` for `jaxmethods.train.fit`.

    batch: anchor, pos_style, pos_sem [B, N] int32 codes; weight [B] float32 (importance
    weights 1/(N p); optional, default 1). loss = mean_b weight_b * l_b with
    l = CE_comp + cross_weight * CE_cross. metrics: ce_composed, ce_cross (unweighted means over
    the rows that computed them), per_triplet_loss [B] (when `cfg.per_example_metrics`).
    """

    def loss_fn(params: Any, constants: Any, batch: dict, rng: jax.Array):
        model = nnx.merge(graphdef, params, constants)
        drop = rng if cfg.train_lora else None
        ce_c, ce_x = model.stage1_ce(
            batch["anchor"], batch["pos_style"], batch["pos_sem"], dropout_rng=drop
        )
        per = model.stage1_per_triplet(ce_c, ce_x)
        b = per.shape[0]
        loss = jnp.mean(_weights(batch, b) * per)
        if cfg.cross_mode == "split":
            n_c = jnp.maximum(jnp.sum(jnp.arange(b) % 2 == 0), 1)
            n_x = jnp.maximum(b - n_c, 1)
        else:
            n_c = n_x = b
        metrics = {"ce_composed": jnp.sum(ce_c) / n_c, "ce_cross": jnp.sum(ce_x) / n_x}
        if cfg.per_example_metrics:
            metrics["per_triplet_loss"] = jax.lax.stop_gradient(per)
        return loss, metrics

    return loss_fn


def make_stage2_loss_fn(graphdef: nnx.GraphDef, cfg: DRCConfig):
    """`loss_fn` of stage 2. batch: history [B, M, N], reference [B, N] (augmented), target
    [B, N] int32 codes; optional history_mask [B, M], reference_kv [B, N], weight [B].
    loss = mean_b weight_b CE_b; metrics: ce, per_example_loss [B]."""

    def loss_fn(params: Any, constants: Any, batch: dict, rng: jax.Array):
        model = nnx.merge(graphdef, params, constants)
        ce = model.stage2_ce(
            batch["history"], batch["reference"], batch["target"],
            history_mask=batch.get("history_mask"), reference_kv=batch.get("reference_kv"),
            dropout_rng=rng if cfg.train_lora else None,
        )  # fmt: skip
        loss = jnp.mean(_weights(batch, ce.shape[0]) * ce)
        metrics = {"ce": jnp.mean(ce)}
        if cfg.per_example_metrics:
            metrics["per_example_loss"] = jax.lax.stop_gradient(ce)
        return loss, metrics

    return loss_fn


@functools.lru_cache(maxsize=16)
def _jit_stage2_prompt(graphdef: nnx.GraphDef):
    def fn(state, history, reference, history_mask):
        model = nnx.merge(graphdef, state)
        latents = model.stage2_latents(history, reference, history_mask)
        prompt = model._prompt_ids(history.shape[0], model._stage2_prefix(history, reference))
        return prompt, model.prompt_embeddings(prompt, latents)

    return jax.jit(fn)


def drc_generate(
    model: DRCModel,
    history: Any,
    reference: Any,
    *,
    history_mask: Any = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seeds: Sequence[int] | None = None,
    rng: jax.Array | None = None,
) -> np.ndarray:
    """Generates the N visual codes of a personalized image per row (text ids suppressed).

    Args:
      history: [B, M, N] codes; reference: [B, N] codes (N = tokens per image, fixed).
      history_mask: [B, M] real history images (None = all).
      do_sample / temperature / top_k / top_p: decoding (default greedy).
      seeds: one per row (reproducible whatever the batch), or `rng` for the batch.
    Returns:
      codes [B, N] int32 in [0, codebook_size).
    """
    v = model.vocab
    history = jnp.asarray(v.to_lm_ids(history, field="history") - v.visual_offset)
    reference = jnp.asarray(v.to_lm_ids(reference, field="reference") - v.visual_offset)
    mask = jnp.ones(history.shape[:2], bool) if history_mask is None else jnp.asarray(history_mask)
    if history_mask is not None and model.cfg.history_in_prompt:
        raise ValueError(
            "drc_generate: history_mask needs DRCConfig.history_in_prompt=False (the history "
            "images listed in the prompt are not masked at generation); pass equal-length "
            "histories, or keep the history out of the prompt (the default)"
        )
    graphdef, state = nnx.split(model)
    prompt, embeds = _jit_stage2_prompt(graphdef)(state, history, reference, mask)
    if seeds is not None:
        rng = per_request_keys(seeds)
    n = reference.shape[1]
    out = generate(
        model.lm, prompt, None, max_new_tokens=n, do_sample=do_sample, temperature=temperature,
        top_k=top_k, top_p=top_p, rng=rng, logits_processor=VisualTokenProcessor(v, allow_end=False),
        inputs_embeds=embeds,
    )  # fmt: skip
    return v.to_codes(np.asarray(out.sequences))
