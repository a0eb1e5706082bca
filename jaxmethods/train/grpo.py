"""Generic GRPO trainer (Shao et al. 2024; TRL's `GRPOTrainer` semantics) on the shared loop.

    result = train_grpo(model=model, tokenizer=tok, prompts=prompt_stream(records, ...),
                        reward_fn=judge, compose=compose, cfg=GRPOConfig(...), optim=optim,
                        num_steps=375, mesh=mesh, workdir=workdir)

One step (= one rollout batch, see docs/grpo.md):
  1. `prompts_per_step` prompt records -> `group_size` completions each, sampled in one
     KV-cache `generate` call over all prompts x G on the training mesh;
  2. `reward_fn(records, texts) -> [B, R]` scores on a worker thread (overlapping the sampling
     of the next batch when `overlap_rewards`), `compose(scores, lengths, features) -> [B]`;
  3. group advantages (`grpo_advantages`);
  4. old (sampling policy) and reference log-probs, once per batch;
  5. `num_iterations` jitted clipped-surrogate updates (`grpo_loss`), each accumulating
     gradients over micro-batches of `micro_batch_size` completions.

The shared `train_loop` drives it, so checkpoints (with the prompt iterator's position),
resume, SIGTERM, the NaN guard and `metrics.jsonl` are the same as every other method's. Its
data iterator is the `RolloutStream`, whose batches the step samples from its own (possibly
just restored) state; the jitted update itself is pure and has no host sync.

`num_steps` counts rollout batches; the optimizer takes `num_steps * num_iterations` steps
(its schedule is built for that many).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from jaxmethods.losses.policy_gradient import ADVANTAGE_SCALES
from jaxmethods.models.lora import LoRAParam
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train.grpo_loss import make_grpo_loss_fn
from jaxmethods.train.grpo_rollout import RewardFnError, RolloutStream, prompt_stream
from jaxmethods.train.loop import DataIterator, train_loop
from jaxmethods.train.mesh import batch_size_multiple, data_sharding
from jaxmethods.train.metrics import MetricWriter, is_writer, read_jsonl
from jaxmethods.train.optim import OptimConfig, make_optimizer
from jaxmethods.train.trainer import (
    LoopConfig,
    compile_step,
    create_state,
    make_checkpointer,
    shard_and_place,
)

log = logging.getLogger(__name__)

__all__ = [
    "ComposeFn",
    "GRPOConfig",
    "GRPOResult",
    "RewardFn",
    "RewardFnError",
    "prompt_stream",
    "train_grpo",
]

LOSS_NORMS = ("token", "sequence", "dr_grpo")
REFERENCES = ("frozen", "lora_base", "none")
TRAINABLE = ("auto", "lora", "all")

# reward_fn(prompt_records, completion_texts) -> [B, R] float32 scores (host side; may call
# remote judges; raises on failure). Row i*G + g is prompt i, sample g.
RewardFn = Callable[[Sequence[Mapping[str, Any]], Sequence[str]], np.ndarray]
# compose(scores [B, R], completion_lengths [B] int32, features {name: [B, ...]}) -> [B]
# float32 rewards; pure and jittable. A non-finite reward marks the completion unscored
# (advantage 0, left out of its group's statistics).
ComposeFn = Callable[[jax.Array, jax.Array, Mapping[str, jax.Array]], jax.Array]


@dataclass(frozen=True)
class GRPOConfig:
    """The `grpo` section of a method config (TRL `GRPOConfig` names in brackets).

    group_size: G completions per prompt [num_generations].
    prompts_per_step: prompts per optimizer step; B = prompts_per_step x G completions.
    max_prompt_length: prompts are left-truncated to this many tokens and left-padded.
    max_new_tokens: [max_completion_length].
    temperature, top_p, top_k: the sampler; log-probs use logits / temperature, as TRL.
    num_iterations: mu, clipped-surrogate updates per rollout batch.
    micro_batch_size: completions per gradient-accumulation micro-batch (0: B, or B /
      optim.grad_accum when that is > 1).
    clip_eps_low, clip_eps_high: [epsilon, epsilon_high].
    loss_norm: "token" (DAPO: Σ over the active tokens of the whole accumulated batch / their
      count; TRL "dapo"/"bnpo"), "sequence" (per-sequence token mean, then the batch mean; TRL
      "grpo"), "dr_grpo" (Σ / (B x max_new_tokens)).
    kl_coef: beta of the k3 KL; 0 skips the reference pass.
    reference: "frozen" (a copy of the initial trainable parameters), "lora_base" (the LoRA
      policy with B = 0: the base model, no second copy), or "none" (needs kl_coef 0).
    advantage_scale: as `jaxmethods.losses.grpo_advantages` ("group" = TRL's default).
    overlap_rewards: score batch n on a thread while batch n+1 is sampled; the update is then
      one step off-policy (corrected by the old log-probs of the policy that sampled). False
      gives the strictly on-policy order (and an exactly reproducible resume).
    export_every: steps between HF safetensors exports to `<export_dir>/step_<n>` (0: only the
      final export to `<export_dir>`).
    logits_chunk_size: LM-head chunk (positions) of the log-prob passes; 0 = unchunked.
    bucket_lengths: pad prompts and trim completions to power-of-two lengths (fewer FLOPs,
      a few more compilations); False = always max_prompt_length + max_new_tokens.
    """

    group_size: int = 8
    prompts_per_step: int = 8
    max_prompt_length: int = 1024
    max_new_tokens: int = 1024
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    num_iterations: int = 1
    micro_batch_size: int = 0
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.2
    loss_norm: str = "token"
    kl_coef: float = 0.01
    reference: str = "frozen"
    advantage_scale: str = "group"
    overlap_rewards: bool = True
    export_every: int = 0
    logits_chunk_size: int = 0
    bucket_lengths: bool = True

    def __post_init__(self):
        positive = ("group_size", "prompts_per_step", "max_prompt_length", "max_new_tokens")
        for name in (*positive, "num_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"grpo.{name}: must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2 and self.advantage_scale != "none":
            raise ValueError("grpo.group_size: group advantages need at least 2 samples")
        for name, value, allowed in (
            ("loss_norm", self.loss_norm, LOSS_NORMS),
            ("reference", self.reference, REFERENCES),
            ("advantage_scale", self.advantage_scale, ADVANTAGE_SCALES),
        ):
            if value not in allowed:
                raise ValueError(f"grpo.{name}: {value!r} is not one of {allowed}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError(
                f"grpo: need temperature > 0, 0 < top_p <= 1, top_k >= 0; got "
                f"{self.temperature}, {self.top_p}, {self.top_k}"
            )
        if self.kl_coef != 0 and self.reference == "none":
            raise ValueError(
                f"grpo.kl_coef={self.kl_coef} needs a reference ('frozen' or 'lora_base')"
            )
        if self.micro_batch_size < 0 or self.export_every < 0 or self.logits_chunk_size < 0:
            raise ValueError("grpo: micro_batch_size, export_every, logits_chunk_size must be >= 0")

    @property
    def batch_size(self) -> int:
        """Completions per step, B = prompts_per_step x group_size."""
        return self.prompts_per_step * self.group_size


@dataclass
class GRPOResult:
    """metrics: the rows of `<workdir>/metrics.jsonl`; model: the trained model (the one
    passed in, updated in place); final_step; export_dir: the final HF export."""

    metrics: list[dict] = field(default_factory=list)
    model: Any = None
    final_step: int = 0
    export_dir: str | None = None


def micro_batches(cfg: GRPOConfig, optim: OptimConfig, mesh: Mesh) -> int:
    """Gradient-accumulation micro-batches per update (validated against the mesh)."""
    b = cfg.batch_size
    micro = cfg.micro_batch_size
    if micro == 0:
        if b % optim.grad_accum:
            raise ValueError(
                f"optim.grad_accum={optim.grad_accum} does not divide the {b} completions per "
                f"step (grpo.prompts_per_step x grpo.group_size)"
            )
        micro = b // optim.grad_accum
    elif optim.grad_accum not in (1, b // micro):
        raise ValueError(
            f"set either grpo.micro_batch_size ({micro}) or optim.grad_accum "
            f"({optim.grad_accum}), not both"
        )
    if b % micro:
        raise ValueError(
            f"grpo.micro_batch_size={micro} does not divide the {b} completions per step"
        )
    n = batch_size_multiple(mesh)
    if micro % n:
        raise ValueError(
            f"grpo: micro-batches of {micro} completions do not split over the {n} devices of "
            f"the batch axes; make micro_batch_size (or B = {b}) a multiple of {n}"
        )
    return b // micro


def _trainable_filter(model: nnx.Module, trainable: str) -> type[nnx.Variable]:
    if trainable not in TRAINABLE:
        raise ValueError(f"train_grpo: trainable={trainable!r} is not one of {TRAINABLE}")
    has_lora = bool(jax.tree.leaves(nnx.state(model, LoRAParam)))
    if trainable == "lora" and not has_lora:
        raise ValueError("train_grpo: trainable='lora' but the model has no LoRA adapters")
    return LoRAParam if has_lora and trainable != "all" else nnx.Param


def _export(graphdef, params, rest, path: str, tokenizer: Any) -> str:
    if is_writer():
        from jaxmethods.hf import save_pretrained

        save_pretrained(nnx.merge(graphdef, params, rest), path, tokenizer=tokenizer)
        log.info("exported the policy (HF safetensors) to %s", path)
    return path


def train_grpo(
    *,
    model: nnx.Module,
    tokenizer: Any,
    prompts: DataIterator,
    reward_fn: RewardFn,
    compose: ComposeFn,
    cfg: GRPOConfig,
    optim: OptimConfig,
    num_steps: int,
    mesh: Mesh,
    workdir: str,
    loop: LoopConfig | None = None,
    reward_names: Sequence[str] = (),
    feature_keys: Sequence[str] = (),
    trainable: str = "auto",
    export_dir: str | None = None,
    seed: int = 0,
) -> GRPOResult:
    """Trains `model` in place with GRPO for `num_steps` rollout batches; resumable.

    Args:
      model: a decoder (`DecoderLM`, with LoRA adapters or not). On resume pass the same
        initial model: the "frozen" reference is copied from it before the checkpoint is
        restored.
      tokenizer: HF tokenizer; encodes the (already chat-templated) prompts without special
        tokens, decodes completions without them; its EOS ends a completion.
      prompts: resumable iterator of lists of `prompts_per_step` records {"prompt": str, ...}
        (e.g. `prompt_stream`); its position is saved in every checkpoint.
      reward_fn, compose: see `RewardFn`, `ComposeFn`. When `reward_fn` raises, the rollout is
        written to `<workdir>/rollouts/step_<n>.jsonl` and `RewardFnError` names it.
      cfg, optim: the `grpo` and `optim` sections; `optim.grad_accum` may stand for
        `cfg.micro_batch_size`.
      loop: checkpoints and logging (default: checkpoint every 100 steps, log every step).
      reward_names: names of the R score columns (logged as `scores/<name>`).
      feature_keys: numeric record fields passed to `compose` as features ([B] each).
      trainable: "auto" (the LoRA factors when the model has adapters, else every Param),
        "lora" or "all".
      export_dir: HF export folder (default `<workdir>/hf_export`).
    Returns:
      `GRPOResult`; metrics per step (`<workdir>/metrics.jsonl`): loss, kl, clip_frac,
      ratio_mean, grad_norm, reward/mean, reward/std, reward/valid_frac, scores/<name>,
      completion/length, completion/max_length_frac, throughput/rollout_tokens_per_s,
      throughput/train_tokens_per_s, time/{rollout,logprob,update,judge,judge_wait,
      iteration}_s, time/device_idle_frac.
    """
    loop = loop or LoopConfig(log_every=1)
    export_dir = export_dir or os.path.join(workdir, "hf_export")
    accum = micro_batches(cfg, optim, mesh)
    mu = cfg.num_iterations
    graphdef, params, rest = nnx.split(model, _trainable_filter(model, trainable), ...)
    rest, rest_shardings = shard_and_place(rest, mesh, DECODER_SHARDING_RULES)
    reference = "none" if cfg.kl_coef == 0 else cfg.reference
    if reference == "lora_base" and not jax.tree.leaves(nnx.state(model, LoRAParam)):
        raise ValueError("grpo.reference='lora_base' needs a model with LoRA adapters")
    tx = make_optimizer(optim, num_steps * mu)
    state, shardings = create_state(params, tx, mesh, rules=DECODER_SHARDING_RULES, seed=seed)
    ref_params = jax.tree.map(jnp.copy, state.params) if reference == "frozen" else None
    del params
    update = compile_step(
        tx, mesh, shardings, grad_accum=accum, constants_shardings=rest_shardings,
        loss_fn=make_grpo_loss_fn(
            graphdef, micro_batches=accum, eps_low=cfg.clip_eps_low,
            eps_high=cfg.clip_eps_high, norm=cfg.loss_norm, kl_coef=cfg.kl_coef,
            max_completion_length=cfg.max_new_tokens, temperature=cfg.temperature,
            chunk_size=cfg.logits_chunk_size,
        ),
    )  # fmt: skip
    stream = RolloutStream(
        prompts=prompts, tokenizer=tokenizer, reward_fn=reward_fn, compose=compose, cfg=cfg,
        graphdef=graphdef, rest=rest, ref_params=ref_params, reference=reference,
        need_old_logp=mu > 1 or cfg.overlap_rewards, mesh=mesh, workdir=workdir,
        feature_keys=feature_keys, reward_names=reward_names, seed=seed,
    )  # fmt: skip
    clock = {"last": None}

    def step_fn(state, rest, _placeholder):
        """One GRPO iteration: rollout (from this state's policy), scoring, mu updates."""
        t_start = time.perf_counter()
        step = int(jax.device_get(state.step)) // mu + 1
        batch, stats = stream.next_batch(state.params, step)
        t0 = time.perf_counter()
        history = []
        for _ in range(mu):
            state, metrics = update(state, rest, batch)
            history.append(metrics)
        jax.block_until_ready(state.params)
        update_s = time.perf_counter() - t0
        metrics = {k: jnp.mean(jnp.stack([m[k] for m in history])) for k in history[0]}
        metrics["finite"] = jnp.min(jnp.stack([m["finite"] for m in history]))
        train_tokens = mu * float(jnp.sum(batch["attention_mask"]))
        now = time.perf_counter()
        wall = now - (clock["last"] or t_start)
        clock["last"] = now
        busy = stats.get("time/rollout_s", 0.0) + stats.get("time/logprob_s", 0.0) + update_s
        stats |= {
            "time/update_s": update_s,
            "time/iteration_s": wall,
            "time/device_idle_frac": max(0.0, 1.0 - busy / max(wall, 1e-9)),
            "throughput/train_tokens_per_s": train_tokens / max(update_s, 1e-9),
        }
        if cfg.export_every and step % cfg.export_every == 0 and step < num_steps:
            finite = bool(jax.device_get(metrics["finite"]))
            if finite:
                _export(graphdef, state.params, rest, os.path.join(export_dir, f"step_{step}"),
                        tokenizer)  # fmt: skip
        return state, {**metrics, **stats}

    checkpointer = make_checkpointer(loop, workdir)
    writer = MetricWriter(workdir, sinks=loop.metric_sinks, run_name="grpo")
    try:
        result = train_loop(
            step_fn=step_fn, state=state, constants=rest, batches=stream, num_steps=num_steps,
            workdir=workdir, batch_sharding=data_sharding(mesh), checkpointer=checkpointer,
            log_every=loop.log_every, items_per_step=cfg.batch_size, item_name="completions",
            progress=loop.progress, desc="grpo", writer=writer,
        )  # fmt: skip
    finally:
        stream.close()
        writer.close()
        if checkpointer is not None:
            checkpointer.close()
    nnx.update(model, result.state.params)
    _export(graphdef, result.state.params, rest, export_dir, tokenizer)
    return GRPOResult(
        metrics=read_jsonl(os.path.join(workdir, "metrics.jsonl")),
        model=model,
        final_step=result.step,
        export_dir=export_dir,
    )
