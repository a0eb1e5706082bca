"""The grain batch streams: one permutation per epoch, DataLoader-like batches, exact resume."""

import json

import numpy as np
import pytest

from jaxmethods.data.pipeline import (
    BatchStream,
    batches_per_epoch,
    epoch_permutation,
    micro_batch_indices,
    step_stream,
)


def test_each_epoch_is_a_fresh_permutation_reproducible_from_the_seed():
    perms = [epoch_permutation(50, seed=7, epoch=e) for e in range(3)]
    for p in perms:
        assert sorted(p) == list(range(50))
    assert not np.array_equal(perms[0], perms[1])
    np.testing.assert_array_equal(perms[1], epoch_permutation(50, seed=7, epoch=1))
    assert not np.array_equal(perms[0], epoch_permutation(50, seed=8, epoch=0))


def test_micro_batches_follow_the_epoch_permutation_with_a_padded_tail():
    ds = micro_batch_indices(10, 4, seed=3)
    assert batches_per_epoch(10, 4) == 3 and batches_per_epoch(10, 4, drop_last=True) == 2
    epoch1 = np.concatenate([ds[i] for i in range(3, 6)])
    np.testing.assert_array_equal(epoch1[:10], epoch_permutation(10, seed=3, epoch=1))
    assert (epoch1[10:] == -1).all()
    dropped = micro_batch_indices(10, 4, seed=3, drop_last=True)
    assert all((dropped[i] >= 0).all() for i in range(6))


def test_unshuffled_stream_is_in_order():
    ds = micro_batch_indices(5, 2, seed=0, shuffle=False)
    assert [list(ds[i]) for i in range(4)] == [[0, 1], [2, 3], [4, -1], [0, 1]]


def test_stream_state_is_json_and_resumes_exactly():
    def collate(idx):
        return {"idx": idx, "x": np.where(idx >= 0, idx * 10, 0).astype(np.float32)}

    a = step_stream(23, collate, micro_batch_size=4, grad_accum=2, seed=5)
    for _ in range(4):
        next(a)
    state = json.loads(json.dumps(a.get_state()))
    rest = [next(a)["idx"] for _ in range(5)]
    b = step_stream(23, collate, micro_batch_size=4, grad_accum=2, seed=5)
    b.set_state(state)
    np.testing.assert_array_equal(np.stack(rest), np.stack([next(b)["idx"] for _ in range(5)]))
    assert a.batches_per_epoch == 6


def test_batch_stream_without_prefetch_and_empty_data_errors():
    stream = BatchStream(micro_batch_indices(3, 2, seed=0), lambda x: x * 2, prefetch=0)
    assert next(stream).shape == (2,)
    with pytest.raises(ValueError, match="empty dataset"):
        micro_batch_indices(0, 2, seed=0)
    with pytest.raises(ValueError, match="exceeds"):
        micro_batch_indices(3, 4, seed=0, drop_last=True)
