"""Pigeon's stage 2 ("pairwise preference optimization"): sigmoid DPO, beta 0.1, on the LoRA
adapter, against a frozen "reference" LoRA adapter [from the authors' code: `finetune_dpo.py`
loads the SFT adapter twice, as "policy" (trained) and "reference"; the mask generator and the
MLP are frozen].

    graphdef, policy, rest, reference = split_pigeon_dpo(sft_model)
    loss_fn = make_pigeon_dpo_loss_fn(graphdef)
    fit(loss_fn=loss_fn, params=policy, constants=(rest, reference), ...)

The reference adapter is a copy of the SFT LoRA factors (the base weights exist once, in
`rest`). Both models see the same prompt (history masks and `<emb>` vector from one Gumbel key
and one mask ratio ~ U(0, 1) per step, dropout off in the frozen parts); the chosen and rejected
images share it and run in one [2P] forward pass per model. The loss is the shared
`jaxmethods.losses.dpo_loss` (= log 2 when policy == reference).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxmethods.losses import dpo_loss
from jaxmethods.methods.drc.pigeon import PigeonModel
from jaxmethods.models.lora import LoRAParam

PIGEON_DPO_BETA = 0.1


def split_pigeon_dpo(
    model: PigeonModel,
) -> tuple[nnx.GraphDef, nnx.State, nnx.State, nnx.State]:
    """(graphdef, policy LoRA state, rest (LM base, mask generator, MLP), reference LoRA state:
    a copy of the policy's initial factors)."""
    graphdef, lora, rest = nnx.split(model, LoRAParam, ...)
    if not jax.tree.leaves(lora):
        raise ValueError("split_pigeon_dpo: the model's LM has no LoRA factors (apply_lora first)")
    return graphdef, lora, rest, jax.tree.map(jnp.copy, lora)


def completion_logps(
    model: PigeonModel,
    prompt_embeds: jnp.ndarray,
    chosen: jnp.ndarray,
    rejected: jnp.ndarray,
    *,
    dropout_rng: jax.Array | None = None,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Summed log-probs [P] of the chosen and rejected codes [P, N] (+ end) after the prompt."""
    p = chosen.shape[0]
    emb = jnp.concatenate([prompt_embeds, prompt_embeds])
    ce = model.completion_ce(emb, jnp.concatenate([chosen, rejected]), dropout_rng=dropout_rng)
    logp = -jnp.sum(ce, axis=-1)
    return logp[:p], logp[p:]


def make_pigeon_dpo_loss_fn(
    graphdef: nnx.GraphDef, *, beta: float = PIGEON_DPO_BETA, label_smoothing: float = 0.0
):
    """`loss_fn(params, constants, batch, rng)`; params = the policy LoRA state, constants =
    (rest, reference LoRA state). batch: history [P, M, N], reference [P, N], chosen [P, N],
    rejected [P, N] codes. loss = mean sigmoid-DPO; metrics: reward margin and accuracy."""

    def loss_fn(params: Any, constants: Any, batch: dict, rng: jax.Array):
        rest, ref_lora = constants
        policy = nnx.merge(graphdef, params, rest)
        reference = nnx.merge(graphdef, jax.lax.stop_gradient(ref_lora), rest)
        k_ratio, k_gumbel, k_drop = jax.random.split(rng, 3)
        ratio = jax.random.uniform(k_ratio, ())
        _, emb = policy.prompt(
            batch["history"], batch["reference"], ratio, inference=False, gumbel_key=k_gumbel
        )
        emb = jax.lax.stop_gradient(emb)  # the prompt side is frozen in DPO
        chosen, rejected = batch["chosen"], batch["rejected"]
        pc, pr = completion_logps(policy, emb, chosen, rejected, dropout_rng=k_drop)
        rc, rr = completion_logps(reference, emb, chosen, rejected)
        out = dpo_loss(
            pc, pr, jax.lax.stop_gradient(rc), jax.lax.stop_gradient(rr), beta=beta,
            label_smoothing=label_smoothing, loss_type="sigmoid",
        )  # fmt: skip
        metrics = {
            "reward_margin": jnp.mean(out.margins),
            "reward_accuracy": jnp.mean((out.margins > 0).astype(jnp.float32)),
        }
        return jnp.mean(out.losses), metrics

    return loss_fn
