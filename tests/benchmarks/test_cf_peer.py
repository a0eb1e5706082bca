"""benchmarks/cf_epoch.py --peer recbole: both sides read the same interactions.

The synthetic interactions are written as a RecBole atomic file; our atomic reader must read
back exactly the interactions written (as a multiset of (user, item) pairs). Where RecBole is
installed, RecBole's own reader must see the same users, items and interaction count.
"""

import dataclasses
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from benchmarks.cf_epoch import write_atomic
from jaxmethods.data.recsys import load_cf_split
from jaxmethods.data.recsys.dataset import CFDataConfig


def _pairs(split) -> np.ndarray:
    users = np.concatenate([split.train.user, split.valid.user, split.test.user])
    items = np.concatenate([split.train.item, split.valid.item, split.test.item])
    return np.stack([users, items], axis=1)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    cfg = CFDataConfig(n_users=40, n_items=30, interactions_per_user=6, seed=3)
    split = load_cf_split(cfg)
    root = str(tmp_path_factory.mktemp("atomic"))
    name = "synth"
    assert write_atomic(split, root, name) == os.path.join(root, name)
    return split, root, name


def test_atomic_file_reads_back_the_same_interactions(written):
    split, root, name = written
    path = os.path.join(root, name, f"{name}.inter")
    with open(path) as f:
        header, *lines = f.read().splitlines()
    assert header == "user_id:token\titem_id:token"
    rows = sorted(tuple(int(tok[1:]) for tok in line.split("\t")) for line in lines)
    assert rows == sorted(map(tuple, _pairs(split).tolist()))
    again = load_cf_split(
        dataclasses.replace(CFDataConfig(), source="atomic", path=os.path.join(root, name),
                            name=name)
    )  # fmt: skip
    assert (again.n_users, again.n_items) == (split.n_users, split.n_items)
    assert len(_pairs(again)) == len(lines)


def test_recbole_reads_the_same_counts(written):
    pytest.importorskip("recbole")
    from recbole.config import Config
    from recbole.data import create_dataset

    from benchmarks.cf_torch_baseline import numpy2_aliases_for_recbole

    numpy2_aliases_for_recbole()
    split, root, name = written
    config = Config(
        model="BPR", dataset=name,
        config_dict={"data_path": os.path.join(root), "load_col": {"inter": ["user_id", "item_id"]},
                     "device": "cpu", "use_gpu": False, "show_progress": False},
    )  # fmt: skip
    data = create_dataset(config)
    # RecBole counts the [PAD] id 0 in user_num / item_num.
    assert (data.user_num - 1, data.item_num - 1) == (split.n_users, split.n_items)
    assert data.inter_num == len(_pairs(split))
