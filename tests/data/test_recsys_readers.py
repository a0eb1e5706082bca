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


def test_binary_file_names_itself_and_the_line(tmp_path):
    p = tmp_path / "binary.inter"
    p.write_bytes(b"user_id:token\titem_id:token\nu1\ti1\n\x89PNG\r\n\x1a\n\x00\xff\n")
    with pytest.raises(InteractionFormatError, match=r"binary\.inter:3: not UTF-8 text"):
        read_atomic_inter(str(p))
    p = tmp_path / "ratings.csv"
    p.write_bytes("userId,movieId,rating,timestamp\n1,2,5,3\n".encode("utf-16"))
    with pytest.raises(InteractionFormatError, match=r"ratings\.csv:1: not UTF-8 text"):
        read_movielens(str(p))


def test_utf8_byte_order_mark_is_not_part_of_the_header(tmp_path):
    p = tmp_path / "bom.inter"
    p.write_bytes("\ufeffuser_id:token\titem_id:token\nu1\ti1\n".encode())
    assert len(read_atomic_inter(str(p))) == 1


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity"])
@pytest.mark.parametrize("field", ["rating", "timestamp"])
def test_non_finite_rating_or_timestamp_names_file_line_and_field(tmp_path, value, field):
    row = {"rating": "4", "timestamp": "100"} | {field: value}
    p = tmp_path / "x.inter"
    p.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\ti1\t5\t99\n"
        f"u2\ti2\t{row['rating']}\t{row['timestamp']}\n"
    )
    with pytest.raises(
        InteractionFormatError, match=rf"x\.inter:3: field '{field}' must be a finite number"
    ):
        read_atomic_inter(str(p))
    p = tmp_path / "u.data"
    p.write_text(f"1\t2\t5\t99\n1\t3\t{row['rating']}\t{row['timestamp']}\n")
    with pytest.raises(InteractionFormatError, match=r"u\.data:2: field 'column [23]'"):
        read_movielens(str(p))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": (0.8, -0.1, 0.3)}, r"config\.data\.split"),
        ({"split": (0.0, 0.5, 0.5)}, r"config\.data\.split"),
        ({"split": (0.8, float("nan"), 0.1)}, r"config\.data\.split"),
        ({"order": "chrono"}, r"config\.data\.order"),
        ({"min_rating": float("nan")}, r"config\.data\.min_rating"),
        ({"user_k": -1}, r"config\.data\.user_k"),
        ({"n_users": 0}, r"config\.data\.n_users"),
        ({"noise_frac": 1.0}, r"config\.data\.noise_frac"),
    ],
)
def test_data_config_rejects_bad_values_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CFDataConfig(**kwargs)
