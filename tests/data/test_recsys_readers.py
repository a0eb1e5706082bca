"""Interaction-file readers on small files of each original format, including malformed ones."""

import os

import numpy as np
import pytest

from jaxmethods.data.recsys import (
    CFDataConfig,
    InteractionFormatError,
    index_interactions,
    load_interactions,
    read_atomic_inter,
    read_delimited,
    read_movielens,
)

HERE = os.path.join(os.path.dirname(__file__), "recsys")


def _rows(path):
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def test_atomic_inter_reads_typed_header():
    path = os.path.join(HERE, "ml-tiny.inter")
    raw = read_atomic_inter(path)
    body = [r.split("\t") for r in _rows(path)[1:]]
    assert len(raw) == len(body)
    np.testing.assert_array_equal(raw.users, [r[0] for r in body])
    np.testing.assert_array_equal(raw.items, [r[1] for r in body])
    np.testing.assert_allclose(raw.timestamps, [float(r[3]) for r in body])
    np.testing.assert_allclose(raw.ratings, [float(r[2]) for r in body])
    data = index_interactions(raw)
    assert data.n_users == len({r[0] for r in body})
    assert data.user_tokens[data.user[0]] == body[0][0]
    assert data.item_tokens[data.item[-1]] == body[-1][1]


def test_atomic_inter_malformed_rows_name_file_and_line():
    bad = os.path.join(HERE, "bad_fields.inter")
    with pytest.raises(InteractionFormatError, match=r"bad_fields\.inter:4: expected 4 fields"):
        read_atomic_inter(bad)
    bad = os.path.join(HERE, "bad_float.inter")
    with pytest.raises(InteractionFormatError, match=r"bad_float\.inter:4: field 'rating'"):
        read_atomic_inter(bad)


def test_atomic_inter_bad_header(tmp_path):
    p = tmp_path / "x.inter"
    p.write_text("user_id\titem_id:token\n1\t2\n")
    with pytest.raises(InteractionFormatError, match=r"x\.inter:1: header field 'user_id'"):
        read_atomic_inter(str(p))
    p.write_text("uid:token\titem_id:token\n1\t2\n")
    with pytest.raises(InteractionFormatError, match="no 'user_id' field"):
        read_atomic_inter(str(p))
    p.write_text("")
    with pytest.raises(InteractionFormatError, match="empty file"):
        read_atomic_inter(str(p))


@pytest.mark.parametrize("sub", ["ml100k", "ml1m", "ml20m"])
def test_movielens_formats_agree(sub):
    ref = read_atomic_inter(os.path.join(HERE, "ml-tiny.inter"))
    raw = read_movielens(os.path.join(HERE, sub))
    n = len(raw)
    assert n == 12
    np.testing.assert_array_equal(raw.users, ref.users[:n])
    np.testing.assert_array_equal(raw.items, ref.items[:n])
    np.testing.assert_allclose(raw.timestamps, ref.timestamps[:n])
    np.testing.assert_allclose(raw.ratings, ref.ratings[:n])


def test_movielens_malformed_dat(tmp_path):
    p = tmp_path / "ratings.dat"
    p.write_text("1::2::5::978300760\n1::3::5\n")
    with pytest.raises(InteractionFormatError, match=r"ratings\.dat:2: expected 4 fields"):
        read_movielens(str(p))
    with pytest.raises(ValueError, match="not a MovieLens"):
        read_movielens(os.path.join(HERE, "clicks.csv"))


def test_generic_csv_by_name_and_index():
    path = os.path.join(HERE, "clicks.csv")
    raw = read_delimited(path, user_col="uid", item_col="iid", time_col="ts")
    assert raw.users[0].startswith("u") and raw.items[0].startswith("i") and len(raw) == 10
    by_index = read_delimited(path, user_col=1, item_col=2, header=True)
    np.testing.assert_array_equal(by_index.users, raw.users)
    with pytest.raises(InteractionFormatError, match=r"clicks\.csv:1: no user column 'user'"):
        read_delimited(path, user_col="user", item_col="iid")


def test_load_interactions_from_config_with_min_rating():
    cfg = CFDataConfig(source="atomic", path=HERE, name="ml-tiny", min_rating=3.0)
    data = load_interactions(cfg)
    raw = read_atomic_inter(os.path.join(HERE, "ml-tiny.inter"))
    assert len(data) == int(np.sum(raw.ratings >= 3.0))
    with pytest.raises(ValueError, match=r"config\.data\.path is required"):
        CFDataConfig(source="atomic")
    with pytest.raises(FileNotFoundError, match=r"nope\.inter"):
        load_interactions(CFDataConfig(source="atomic", path=HERE, name="nope"))
    # Without a name, a folder's only .inter file is read; several are ambiguous.
    with pytest.raises(ValueError, match=r"holds 3 \.inter files"):
        load_interactions(CFDataConfig(source="atomic", path=HERE))


def test_atomic_folder_with_one_file(tmp_path):
    (tmp_path / "modcloth.inter").write_text("user_id:token\titem_id:token\nu1\ti1\nu2\ti1\n")
    data = load_interactions(CFDataConfig(source="atomic", path=str(tmp_path)))
    assert (data.n_users, data.n_items) == (2, 1)
