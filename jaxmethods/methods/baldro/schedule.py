"""HF Trainer's step arithmetic for one unlearning run (transformers 4.45, the authors' pin).

With `bpe` micro-batches per epoch (a DataLoader without `drop_last`) and `GA` micro-batches per
optimizer step, the micro-batch counter runs across epochs, so

    max_steps        = ceil(epochs * max(floor(bpe / GA), 1))        (`hf_max_steps`)
    end of epoch e   = optimizer step floor((e + 1) * bpe / GA)      (evaluated, eval_strategy=epoch)
    warmup (TOFU)    = int(warmup_epochs * |forget|) // (bs * GA)    (the authors' `warmup_epochs`)

Training stops at `max_steps`, possibly inside an epoch (forget01, bs 8, GA 2, 10 epochs: 5
micro-batches per epoch, 20 steps = 8 epochs of data), where HF evaluates once more.
"""

from __future__ import annotations

from dataclasses import dataclass

from jaxmethods.data.pipeline import batches_per_epoch
from jaxmethods.data.tofu import warmup_steps as tofu_warmup_steps
from jaxmethods.train.optim import hf_max_steps


@dataclass(frozen=True)
class StepPlan:
    """Optimizer steps, warmup and evaluation steps of one run (see the module docstring)."""

    batches_per_epoch: int
    grad_accum: int
    max_steps: int
    warmup_steps: int
    epoch_end_steps: tuple[int, ...]

    def epoch_at(self, step: int) -> float:
        """Epochs of data consumed after `step` optimizer steps (HF's `state.epoch`)."""
        return step * self.grad_accum / self.batches_per_epoch


def plan_steps(
    num_records: int,
    micro_batch_size: int,
    grad_accum: int,
    epochs: float,
    *,
    warmup_epochs: float = 0.0,
    warmup_steps: int = 0,
) -> StepPlan:
    """The `StepPlan` of `epochs` epochs over `num_records` forget items.

    Args:
      micro_batch_size: the global micro-batch (per-device batch x devices).
      warmup_epochs: > 0 applies TOFU's rule; otherwise `warmup_steps` is kept.
    Raises:
      ValueError when an epoch has fewer micro-batches than `grad_accum` (HF then steps once
      per epoch on a short window, a special case not reproduced here).
    """
    bpe = batches_per_epoch(num_records, micro_batch_size)
    if bpe < grad_accum:
        raise ValueError(
            f"{num_records} forget items in micro-batches of {micro_batch_size} give {bpe} "
            f"micro-batches per epoch, fewer than grad_accum={grad_accum}; lower optim.grad_accum "
            "or train.micro_batch_size"
        )
    total = hf_max_steps(bpe, grad_accum, epochs)
    if warmup_epochs > 0:
        warmup_steps = tofu_warmup_steps(
            num_records, micro_batch_size, grad_accum, warmup_epochs=warmup_epochs
        )
    ends, e = [], 0
    while (step := (e + 1) * bpe // grad_accum) < total:
        ends.append(step)
        e += 1
    return StepPlan(bpe, grad_accum, total, warmup_steps, (*ends, total))
