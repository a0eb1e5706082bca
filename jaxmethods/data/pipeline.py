"""Epoch-shuffled, resumable batch streams on grain, shared by every method.

The one epoch-permutation implementation of the project is grain's `MapDataset.shuffle`, which
draws a fresh permutation for every epoch from `(seed, epoch)`. On top of it:

- `micro_batch_indices`: a PyTorch-DataLoader-like stream (each epoch's last batch short unless
  `drop_last`), padded with -1 to a fixed size, epoch after epoch, without end;
- `step_indices`: `grad_accum` consecutive micro-batches per optimizer step, so accumulation
  windows run across epoch boundaries exactly as in HF Trainer (`jaxmethods.train.optim`);
- `BatchStream`: the iterator the train loop consumes, `collate`d to fixed-shape host arrays,
  with a JSON-serialisable `get_state()/set_state()` stored in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grain
import numpy as np

PAD_INDEX = -1


def batches_per_epoch(num_records: int, batch_size: int, *, drop_last: bool = False) -> int:
    """Length of a PyTorch DataLoader over `num_records` (the last batch short unless dropped)."""
    if num_records < 1 or batch_size < 1:
        raise ValueError(f"need records and a batch size >= 1, got {num_records}, {batch_size}")
    return num_records // batch_size if drop_last else -(-num_records // batch_size)


def record_order(num_records: int, *, seed: int, shuffle: bool = True) -> grain.MapDataset:
    """An endless stream of record indices: epoch after epoch, each in a fresh permutation."""
    if num_records < 1:
        raise ValueError(f"cannot iterate over an empty dataset (num_records={num_records})")
    ds = grain.MapDataset.range(num_records)
    return (ds.shuffle(seed=seed) if shuffle else ds).repeat()


def epoch_permutation(num_records: int, *, seed: int, epoch: int) -> np.ndarray:
    """The record order of epoch `epoch` (0-based) of `record_order(num_records, seed=seed)`."""
    order = record_order(num_records, seed=seed)
    start = epoch * num_records
    return np.asarray([order[start + i] for i in range(num_records)], np.int64)


def _pad(indices: np.ndarray, size: int) -> np.ndarray:
    out = np.full((size,), PAD_INDEX, np.int64)
    out[: len(indices)] = indices
    return out


def micro_batch_indices(
    num_records: int,
    batch_size: int,
    *,
    seed: int,
    shuffle: bool = True,
    drop_last: bool = False,
) -> grain.MapDataset:
    """Endless [batch_size] int64 index batches, per epoch like a DataLoader; -1 pads short ones."""
    if num_records < 1:
        raise ValueError(f"cannot iterate over an empty dataset (num_records={num_records})")
    if drop_last and num_records < batch_size:
        raise ValueError(f"batch_size={batch_size} exceeds the {num_records} records (drop_last)")
    ds = grain.MapDataset.range(num_records)
    if shuffle:
        ds = ds.shuffle(seed=seed)
    ds = ds.batch(batch_size, drop_remainder=drop_last).repeat()
    return ds.map(lambda idx: _pad(np.asarray(idx), batch_size))


def step_indices(
    num_records: int,
    micro_batch_size: int,
    grad_accum: int = 1,
    *,
    seed: int,
    shuffle: bool = True,
    drop_last: bool = False,
) -> grain.MapDataset:
    """Endless [grad_accum, micro_batch_size] index blocks: one optimizer step each."""
    micro = micro_batch_indices(
        num_records, micro_batch_size, seed=seed, shuffle=shuffle, drop_last=drop_last
    )
    return micro.batch(grad_accum, drop_remainder=True)


class BatchStream:
    """The train loop's data iterator: `dataset` elements through `collate`, resumable.

    Args:
      dataset: a grain `MapDataset` (e.g. `step_indices(...)`).
      collate: element -> pytree of fixed-shape numpy arrays (one global batch).
      batches_per_epoch: micro-batches per epoch, for step arithmetic and logging.
      prefetch: elements collated ahead in a background thread (0 = in the caller's thread).
    """

    def __init__(
        self,
        dataset: grain.MapDataset,
        collate: Callable[[Any], Any],
        *,
        batches_per_epoch: int = 0,
        prefetch: int = 2,
    ):
        self.batches_per_epoch = batches_per_epoch
        options = grain.ReadOptions(num_threads=1 if prefetch else 0, prefetch_buffer_size=prefetch)
        self._dataset = dataset.map(collate).to_iter_dataset(options)
        self._it = iter(self._dataset)

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Any:
        return next(self._it)

    def get_state(self) -> dict:
        return dict(self._it.get_state())

    def set_state(self, state: dict) -> None:
        self._it.set_state(dict(state))


def step_stream(
    num_records: int,
    collate: Callable[[np.ndarray], Any],
    *,
    micro_batch_size: int,
    grad_accum: int = 1,
    seed: int,
    shuffle: bool = True,
    drop_last: bool = False,
    prefetch: int = 2,
) -> BatchStream:
    """`BatchStream` over `step_indices`; `collate` gets [grad_accum * micro_batch_size] indices
    (row-major over the micro-batches, -1 = padding row) and returns one global batch."""
    ds = step_indices(
        num_records, micro_batch_size, grad_accum, seed=seed, shuffle=shuffle, drop_last=drop_last
    )
    return BatchStream(
        ds,
        lambda block: collate(np.asarray(block).reshape(-1)),
        batches_per_epoch=batches_per_epoch(num_records, micro_batch_size, drop_last=drop_last),
        prefetch=prefetch,
    )
