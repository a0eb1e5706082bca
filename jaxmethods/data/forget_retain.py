"""Forget/retain pairing and fixed-shape unlearning batches (open-unlearning's
`ForgetRetainDataset` anchored on the forget set, plus HF Trainer's epoch/accumulation layout).

Each epoch visits the forget set in a seeded random order; every forget item is paired with a
retain item drawn uniformly at random (with replacement), as `ForgetRetainDataset.__getitem__`
does with `torch.randint`. One optimizer step takes `grad_accum` micro-batches of
`micro_batch_size` pairs; the epoch's last micro-batch may be short and the last step may hold
fewer micro-batches, like HF's dataloader without `drop_last`. Shapes stay static: short
micro-batches are padded with invalid rows (`row_valid = False`), missing micro-batches are
all-invalid, and `loss_scale` (per row, constant within a micro-batch) re-weights the step's
micro-batch average to the mean over the real micro-batches, as HF does for a short final
accumulation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxmethods.data.tofu import pad_examples


def steps_per_epoch(num_forget: int, micro_batch_size: int, grad_accum: int) -> int:
    """ceil(ceil(N / micro_batch_size) / grad_accum): HF Trainer's optimizer steps per epoch."""
    return math.ceil(math.ceil(num_forget / micro_batch_size) / grad_accum)


def pair_indices(
    num_forget: int, num_retain: int, seed: int, epoch: int
) -> tuple[np.ndarray, np.ndarray]:
    """(forget order, paired retain index) for one epoch, reproducible from (seed, epoch)."""
    if num_forget < 1 or num_retain < 1:
        raise ValueError(f"need forget and retain items, got {num_forget} and {num_retain}")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(num_forget)
    retain = rng.integers(0, num_retain, size=num_forget)
    return order, retain


class ForgetRetainBatches:
    """Iterator of host batches {"forget": {...}, "retain": {...}} with static shapes.

    Each side holds `pad_examples` arrays of [grad_accum * micro_batch_size, L] plus, for the
    forget side, any per-example float fields listed in `extra_forget_fields` (e.g. "ref_nll")
    and "loss_scale" [B]. Supports `get_state` / `set_state` for exact resume.

    Args:
      forget, retain: tokenised examples (dicts with "input_ids" and "labels" lists).
      micro_batch_size: pairs per micro-batch (the original per-device batch x devices).
      grad_accum: micro-batches per optimizer step.
      length: padded sequence length L (every example must fit).
      pad_id: the tokenizer's pad id.
      seed: shuffling / pairing seed.
      extra_forget_fields: per-example scalar fields of `forget` copied into the batch.
    """

    def __init__(
        self,
        forget: Sequence[Mapping[str, Any]],
        retain: Sequence[Mapping[str, Any]],
        *,
        micro_batch_size: int,
        grad_accum: int = 1,
        length: int,
        pad_id: int,
        seed: int = 0,
        extra_forget_fields: Sequence[str] = (),
    ):
        if micro_batch_size < 1 or grad_accum < 1:
            raise ValueError(
                f"micro_batch_size and grad_accum must be >= 1, got {micro_batch_size}, "
                f"{grad_accum}"
            )
        for f in extra_forget_fields:
            missing = [i for i, ex in enumerate(forget) if f not in ex]
            if missing:
                raise ValueError(f"forget example {missing[0]} has no field '{f}'")
        self.forget, self.retain = list(forget), list(retain)
        self.micro, self.accum = micro_batch_size, grad_accum
        self.length, self.pad_id, self.seed = length, pad_id, seed
        self.extra = tuple(extra_forget_fields)
        self.steps_per_epoch = steps_per_epoch(len(self.forget), micro_batch_size, grad_accum)
        self.epoch, self.step_in_epoch = 0, 0
        self._epoch_cache: tuple[int, np.ndarray, np.ndarray] | None = None

    def get_state(self) -> dict:
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch}

    def set_state(self, state: Mapping[str, int]) -> None:
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])

    def __iter__(self) -> ForgetRetainBatches:
        return self

    def _pairs(self) -> tuple[np.ndarray, np.ndarray]:
        if self._epoch_cache is None or self._epoch_cache[0] != self.epoch:
            order, retain = pair_indices(len(self.forget), len(self.retain), self.seed, self.epoch)
            self._epoch_cache = (self.epoch, order, retain)
        return self._epoch_cache[1], self._epoch_cache[2]

    def __next__(self) -> dict[str, dict[str, np.ndarray]]:
        order, retain_idx = self._pairs()
        start = self.step_in_epoch * self.micro * self.accum
        n_total = len(self.forget)
        n_micro_real = min(self.accum, math.ceil((n_total - start) / self.micro))
        forget_parts, retain_parts, scales = [], [], []
        for m in range(self.accum):
            lo = start + m * self.micro
            sel = np.arange(lo, min(lo + self.micro, n_total)) if m < n_micro_real else []
            f_ex = [self.forget[order[i]] for i in sel]
            r_ex = [self.retain[retain_idx[i]] for i in sel]
            f = pad_examples(f_ex, length=self.length, pad_id=self.pad_id, batch_size=self.micro)
            for name in self.extra:
                col = np.zeros((self.micro,), np.float32)
                col[: len(f_ex)] = [float(ex[name]) for ex in f_ex]
                f[name] = col
            forget_parts.append(f)
            retain_parts.append(
                pad_examples(r_ex, length=self.length, pad_id=self.pad_id, batch_size=self.micro)
            )
            scale = self.accum / n_micro_real if m < n_micro_real else 0.0
            scales.append(np.full((self.micro,), scale, np.float32))
        forget = {k: np.concatenate([p[k] for p in forget_parts]) for k in forget_parts[0]}
        forget["loss_scale"] = np.concatenate(scales)
        retain = {k: np.concatenate([p[k] for p in retain_parts]) for k in retain_parts[0]}
        self.step_in_epoch += 1
        if self.step_in_epoch == self.steps_per_epoch:
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
        return {"forget": forget, "retain": retain}
