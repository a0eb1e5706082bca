"""MRM repeats: users and conversations re-split with seed + r, mean ± std over repeats."""

import os

import numpy as np
import pytest

from configs import mrm as mrm_configs
from jaxmethods.data.pipeline import epoch_permutation
from jaxmethods.data.synthetic_prefs import make_synthetic_corpus
from jaxmethods.methods.mrm import run as mrm_run
from jaxmethods.methods.mrm.config import from_config_dict
from jaxmethods.methods.mrm.report import aggregate, format_table
from jaxmethods.methods.mrm.tasks import MetaTaskIterator
from jaxmethods.train.config import ConfigError


def test_aggregate_is_mean_and_population_std():
    runs = [{"eval/overall_acc": 0.5, "step": 4, "x": "a"}, {"eval/overall_acc": 0.8, "step": 4}]
    out = aggregate(runs)
    assert out["mean/eval/overall_acc"] == pytest.approx(0.65)
    assert out["std/eval/overall_acc"] == pytest.approx(
        np.sqrt(((0.5 - 0.65) ** 2 + (0.8 - 0.65) ** 2) / 2)
    )
    assert out["rep1/eval/overall_acc"] == 0.8 and "mean/x" not in out


def test_table_shows_mean_pm_std():
    metrics = {
        f"{s}/eval/{c}": v
        for s, v in (("mean", 0.7), ("std", 0.05))
        for c in ("seen_acc", "unseen_acc", "overall_acc", "worst10_acc")
    }
    table = format_table(metrics, (), 0.1, repeats=3)
    assert "| MRM (adapted) | 0.700 ± 0.050 | 0.700 ± 0.050 |" in table
    assert "global Bradley-Terry" not in table  # no baseline results, no row


def test_user_order_is_the_shared_epoch_permutation():
    corpus, _ = make_synthetic_corpus(20, 4, pairs_per_user=(4, 6), convs_per_user=(2, 3), seed=1)
    seen, _ = corpus.seen_unseen(1)
    it = MetaTaskIterator(corpus, seen, tasks_per_batch=len(seen), val_ratio=0.5, seed=5)
    for epoch in range(2):
        np.testing.assert_array_equal(
            next(it)["user"], epoch_permutation(len(seen), seed=5, epoch=epoch)
        )


def test_split_seed_re_splits_the_same_pairs():
    kwargs = dict(pairs_per_user=(4, 8), convs_per_user=(2, 4), seed=3)
    a, _ = make_synthetic_corpus(30, 4, **kwargs)
    same, _ = make_synthetic_corpus(30, 4, split_seed=3, **kwargs)
    b, _ = make_synthetic_corpus(30, 4, split_seed=4, **kwargs)
    np.testing.assert_array_equal(a.chosen, same.chosen)
    seen = lambda c: {c.users[i] for i in c.seen_unseen()[0]}
    assert seen(a) != seen(b)
    pairs = lambda c: sorted(
        zip(c.embeddings[c.chosen][:, 0].tolist(), c.embeddings[c.rejected][:, 0].tolist())
    )
    assert pairs(a) == pairs(b)  # the same judgements, split differently


def test_repeats_of_a_split_corpus_need_a_protocol():
    c = mrm_configs.get_config("tiny,repeats=2")
    c.data.source, c.data.path = "corpus", "somewhere"
    with pytest.raises(ConfigError, match=r"config\.repeats"):
        from_config_dict(c)


@pytest.mark.slow
def test_repeats_re_split_train_in_sub_workdirs_and_report_mean_std(tmp_path):
    c = mrm_configs.get_config("tiny,repeats=2,epochs=1")
    out = mrm_run.run(c, str(tmp_path / "two"))
    single = mrm_run.run(mrm_configs.get_config("tiny,epochs=1"), str(tmp_path / "one"))
    assert os.path.isdir(tmp_path / "two" / "repeat_0" / "checkpoints")
    assert os.path.isdir(tmp_path / "two" / "repeat_1" / "checkpoints")
    assert out["rep0/eval/overall_acc"] == single["eval/overall_acc"]  # repeat 0 = seed + 0
    values = [out[f"rep{r}/eval/overall_acc"] for r in range(2)]
    assert out["mean/eval/overall_acc"] == pytest.approx(np.mean(values))
    assert out["std/eval/overall_acc"] == pytest.approx(np.std(values))
    assert "±" in out["tables"]["mrm"]
    again = mrm_run.run(c, str(tmp_path / "two"))  # both repeats resume
    assert again["rep1/resumed_from"] == again["rep1/step"]
