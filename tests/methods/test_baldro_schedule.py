"""BalDRO's step arithmetic against a transcription of HF Trainer 4.45's epoch loop, and the
forget/retain stream it consumes."""

import math

import numpy as np
import pytest

from jaxmethods.data.forget_retain import forget_retain_stream, paired_retain_indices
from jaxmethods.data.pipeline import epoch_permutation
from jaxmethods.methods.baldro.schedule import plan_steps
from jaxmethods.train.loop import Eval


def hf_445_loop(num_records, bs, ga, epochs):
    """transformers 4.45 `_inner_training_loop` (1 GPU, DataLoader without drop_last): returns
    (max_steps, the global step at each `on_epoch_end` evaluation, micro-batches consumed)."""
    len_dataloader = math.ceil(num_records / bs)
    max_steps = math.ceil(epochs * max(len_dataloader // ga, 1))
    total_batched_samples, global_step, evals = 0, 0, []
    for _epoch in range(math.ceil(epochs)):
        for _step in range(len_dataloader):
            total_batched_samples += 1
            if total_batched_samples % ga == 0:
                global_step += 1
                if global_step >= max_steps:
                    break
        evals.append(global_step)  # eval_strategy=epoch, also after the stop
        if global_step >= max_steps:
            break
    return max_steps, evals, total_batched_samples


# (forget items, GA) -> optimizer steps of the authors' runs (bs 8, 10 epochs) and the old
# per-epoch-ceil count this project ran before (issue #9).
TOFU_TABLE = [
    ("forget01", 40, 2, 20, 30),
    ("forget01", 40, 4, 10, 20),
    ("forget05", 200, 2, 120, 130),
    ("forget05", 200, 4, 60, 70),
    ("forget10", 400, 2, 250, 250),
    ("forget10", 400, 4, 120, 130),
]


@pytest.mark.parametrize("split,n,ga,steps,old", TOFU_TABLE)
def test_tofu_steps_warmup_and_epoch_evals(split, n, ga, steps, old):
    plan = plan_steps(n, 8, ga, 10, warmup_epochs=1.0)
    want_steps, want_evals, _ = hf_445_loop(n, 8, ga, 10)
    assert plan.max_steps == steps == want_steps, split
    assert math.ceil(math.ceil(n / 8) / ga) * 10 == old  # what the per-epoch ceil gave
    assert plan.epoch_end_steps == tuple(want_evals)
    # the authors' load_trainer_args: int(1.0 * len(dataset)) // (bs * GA * n_gpus)
    assert plan.warmup_steps == int(1.0 * n) // (8 * ga * 1)
    assert plan.epoch_at(plan.max_steps) == pytest.approx(plan.max_steps * ga / math.ceil(n / 8))


def test_forget01_runs_8_epochs_of_data_and_satimp_batches():
    plan = plan_steps(40, 8, 2, 10)
    assert plan.epoch_end_steps == (2, 5, 7, 10, 12, 15, 17, 20)
    assert plan.epoch_at(20) == 8.0
    sat = plan_steps(40, 4, 8, 10, warmup_epochs=1.0)  # TOFU SatImp: bs 4, GA 8
    assert (sat.max_steps, sat.warmup_steps) == (hf_445_loop(40, 4, 8, 10)[0], 1)
    assert plan_steps(7, 2, 1, 3, warmup_steps=5).warmup_steps == 5
    with pytest.raises(ValueError, match="fewer than grad_accum=4"):
        plan_steps(10, 4, 4, 1)


def test_steps_eval_is_due_at_its_steps_and_the_end():
    hook = Eval(lambda s, t: {}, steps=frozenset({2, 5}))
    assert [s for s in range(1, 8) if hook.due(s, last=s == 7)] == [2, 5, 7]


def test_stream_windows_cross_epochs_and_pair_uniformly():
    n, bs, ga = 5, 2, 2
    forget = [{"input_ids": [1, 7, i + 10], "labels": [-100, 7, i + 10]} for i in range(n)]
    retain = [{"input_ids": [1, 8, j + 40], "labels": [-100, 8, j + 40]} for j in range(4)]
    plan = plan_steps(n, bs, ga, 4)
    _, _, micro = hf_445_loop(n, bs, ga, 4)
    stream = forget_retain_stream(forget, retain, micro_batch_size=bs, grad_accum=ga, length=4,
                                  pad_id=0, seed=1, prefetch=0)  # fmt: skip
    blocks = [next(stream) for _ in range(plan.max_steps)]
    assert plan.max_steps * ga == micro  # every consumed micro-batch is used, no short step
    # the micro-batches are DataLoader batches of consecutive epoch permutations
    want = []
    for e in range(4):
        perm = epoch_permutation(n, seed=1, epoch=e).tolist()
        want += [perm[i : i + bs] + [-1] * (bs - len(perm[i : i + bs])) for i in range(0, n, bs)]
    got = []
    for b in blocks:
        ids = np.where(b["forget"]["row_valid"], b["forget"]["input_ids"][:, 2] - 10, -1)
        got += ids.reshape(ga, bs).tolist()
        # a padded forget row has a padded retain row; real rows have a real partner
        np.testing.assert_array_equal(b["forget"]["row_valid"], b["retain"]["row_valid"])
    assert got == want[: len(got)]
    # pairing: the step's seeded draw, uniform over the retain set
    for step, b in enumerate(blocks):
        f_idx = np.asarray(want[step * ga : (step + 1) * ga]).reshape(-1)
        r_idx = paired_retain_indices(f_idx, 4, seed=1, step=step)
        got_r = np.where(b["retain"]["row_valid"], b["retain"]["input_ids"][:, 2] - 40, -1)
        np.testing.assert_array_equal(got_r, r_idx)
    draws = [paired_retain_indices(np.arange(8), 4, seed=2, step=t) for t in range(2000)]
    counts = np.bincount(np.concatenate(draws), minlength=4)
    assert np.all(np.abs(counts / counts.sum() - 0.25) < 0.01)


def test_stream_resumes_exactly():
    forget = [{"input_ids": [1, i + 3], "labels": [-100, i + 3], "ref_nll": float(i)}
              for i in range(7)]  # fmt: skip
    retain = [{"input_ids": [1, j + 30], "labels": [-100, j + 30]} for j in range(5)]
    kw = dict(micro_batch_size=2, grad_accum=2, length=3, pad_id=0, seed=3, prefetch=0,
              extra_forget_fields=("ref_nll",))  # fmt: skip
    a = forget_retain_stream(forget, retain, **kw)
    for _ in range(3):
        next(a)
    state = a.get_state()
    want = [next(a) for _ in range(3)]
    b = forget_retain_stream(forget, retain, **kw)
    b.set_state(state)
    for w in want:
        g = next(b)
        for side in ("forget", "retain"):
            for k in w[side]:
                np.testing.assert_array_equal(g[side][k], w[side][k])
        v = w["forget"]["row_valid"]
        np.testing.assert_array_equal(w["forget"]["ref_nll"][v], w["forget"]["input_ids"][v, 1] - 3)
    with pytest.raises(ValueError, match="no field 'ref_nll'"):
        forget_retain_stream([{"input_ids": [1], "labels": [1]}], retain, **kw)
