"""Forget/retain unlearning batches as a resumable grain pipeline (open-unlearning's
`ForgetRetainDataset` anchored on the forget set, HF Trainer's epoch/accumulation layout).

Record order and accumulation come from `jaxmethods.data.pipeline.step_indices`: each epoch
visits the forget set in a fresh permutation, batches like a DataLoader without `drop_last` (the
epoch's last micro-batch is short and padded with -1), and one optimizer step takes `grad_accum`
consecutive micro-batches, so accumulation windows run across epoch boundaries (transformers
4.45). Each forget item is paired with a retain item drawn uniformly at random with replacement,
fresh at every visit, as `ForgetRetainDataset.__getitem__` does with `torch.randint`; the draw is
seeded by `(seed, step)`, so a resumed stream redraws the same pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from jaxmethods.data.pipeline import BatchStream, batches_per_epoch, step_indices, step_stream
from jaxmethods.losses.unlearning import IGNORE_INDEX


def gather_examples(
    examples: Sequence[Mapping[str, Any]],
    indices: np.ndarray,
    *,
    length: int,
    pad_id: int,
    extra_fields: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Right-padded arrays of `examples[indices]`, row by row; index -1 gives an empty row.

    Returns {"input_ids" [B, L] int32, "attention_mask" [B, L] int32, "labels" [B, L] int32
    (HF layout, -100 on prompt and padding), "row_valid" [B] bool} plus one float32 [B] array
    per name in `extra_fields` (per-example scalars such as "ref_nll"; 0 on empty rows).
    Rows keep their positions, so micro-batch boundaries inside the block are preserved.
    """
    b = len(indices)
    ids = np.full((b, length), pad_id, np.int32)
    mask = np.zeros((b, length), np.int32)
    labels = np.full((b, length), IGNORE_INDEX, np.int32)
    valid = np.zeros((b,), bool)
    extra = {name: np.zeros((b,), np.float32) for name in extra_fields}
    for row, i in enumerate(np.asarray(indices).tolist()):
        if i < 0:
            continue
        ex = examples[i]
        n = len(ex["input_ids"])
        if n > length:
            raise ValueError(f"example {i} has {n} tokens > the padded length {length}")
        ids[row, :n], mask[row, :n], labels[row, :n] = ex["input_ids"], 1, ex["labels"]
        valid[row] = True
        for name in extra_fields:
            extra[name][row] = float(ex[name])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "row_valid": valid, **extra}


def paired_retain_indices(forget_indices: np.ndarray, num_retain: int, *, seed: int, step: int):
    """A uniformly random retain index per forget row of optimizer step `step` (-1 stays -1)."""
    if num_retain < 1:
        raise ValueError("the retain set is empty")
    draw = np.random.default_rng([seed, step]).integers(0, num_retain, size=len(forget_indices))
    return np.where(np.asarray(forget_indices) < 0, -1, draw)


class ForgetRetainCollate:
    """`(step, [grad_accum, micro] forget index block)` -> {"forget": {...}, "retain": {...}}.

    Both sides hold `gather_examples` arrays of [grad_accum * micro, length]; the forget side also
    carries `extra_forget_fields` (e.g. the precomputed reference NLL "ref_nll").
    """

    def __init__(
        self,
        forget: Sequence[Mapping[str, Any]],
        retain: Sequence[Mapping[str, Any]],
        *,
        length: int,
        pad_id: int,
        seed: int = 0,
        extra_forget_fields: Sequence[str] = (),
    ):
        for name in extra_forget_fields:
            missing = [i for i, ex in enumerate(forget) if name not in ex]
            if missing:
                raise ValueError(f"forget example {missing[0]} has no field '{name}'")
        self.forget, self.retain = forget, retain
        self.length, self.pad_id, self.seed = length, pad_id, seed
        self.extra = tuple(extra_forget_fields)

    def __call__(self, element: tuple[int, Any]) -> dict[str, dict[str, np.ndarray]]:
        step, block = element
        f_idx = np.asarray(block, np.int64).reshape(-1)
        r_idx = paired_retain_indices(f_idx, len(self.retain), seed=self.seed, step=int(step))
        kw = {"length": self.length, "pad_id": self.pad_id}
        return {
            "forget": gather_examples(self.forget, f_idx, extra_fields=self.extra, **kw),
            "retain": gather_examples(self.retain, r_idx, **kw),
        }


def forget_retain_stream(
    forget: Sequence[Mapping[str, Any]],
    retain: Sequence[Mapping[str, Any]],
    *,
    micro_batch_size: int,
    grad_accum: int = 1,
    length: int,
    pad_id: int,
    seed: int = 0,
    extra_forget_fields: Sequence[str] = (),
    prefetch: int = 2,
) -> BatchStream:
    """The resumable stream of unlearning steps (`BatchStream.get_state/set_state`).

    Args:
      forget, retain: tokenised examples (dicts with "input_ids" and "labels" lists).
      micro_batch_size: pairs per micro-batch (the authors' per-device batch x devices).
      grad_accum: micro-batches per optimizer step, stacked along axis 0.
      length: padded sequence length L (every example must fit).
      pad_id: the tokenizer's pad id.
      seed: shuffling and pairing seed.
      extra_forget_fields: per-example scalar fields of `forget` copied into the batch.
    """
    if not forget:
        raise ValueError("the forget set is empty")
    collate = ForgetRetainCollate(
        forget, retain, length=length, pad_id=pad_id, seed=seed,
        extra_forget_fields=extra_forget_fields,
    )  # fmt: skip
    blocks = step_indices(len(forget), micro_batch_size, grad_accum, seed=seed)
    return BatchStream(
        blocks.map_with_index(lambda i, block: (i, block)),
        collate,
        batches_per_epoch=batches_per_epoch(len(forget), micro_batch_size),
        prefetch=prefetch,
    )


def sft_stream(
    examples: Sequence[Mapping[str, Any]],
    *,
    batch_size: int,
    length: int,
    pad_id: int,
    seed: int = 0,
    grad_accum: int = 1,
    prefetch: int = 2,
    gather: Callable[..., dict[str, np.ndarray]] | None = None,
) -> BatchStream:
    """Epoch-shuffled padded batches of QA examples for plain fine-tuning.

    `gather(examples, indices, length=, pad_id=)` collates one global batch (default
    `gather_examples`; DPO passes its pair collate)."""
    if not examples:
        raise ValueError("no examples to fine-tune on")
    gather = gather_examples if gather is None else gather
    return step_stream(
        len(examples),
        lambda idx: gather(examples, idx, length=length, pad_id=pad_id),
        micro_batch_size=batch_size, grad_accum=grad_accum, seed=seed, prefetch=prefetch,
    )  # fmt: skip
