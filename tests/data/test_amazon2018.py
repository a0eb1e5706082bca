"""Amazon 2018 pipeline on tiny raw files of the original format (tests/data/amazon/).

Fixture: users U0..U5 each review the six items A0001..A0006 inside 2017-10..2018-11; items
A0007 (`<span id` title), A0008 (21-word title) and A0009 (no title) are filtered out; A0010 has
4 reviews and user U9 has 4 reviews (both fall to the 5-core); A0011 has 5 reviews in Nov 2016,
inside the window only once the start year moves back. A0005 and A0006 share a title.
"""

import json
import os
import random

import pytest

from jaxmethods.data import amazon2018 as A

HERE = os.path.join(os.path.dirname(__file__), "amazon")


@pytest.fixture(scope="module")
def raw():
    reviews = list(A.read_json_lines(os.path.join(HERE, "Toys_and_Games_5.json.gz")))
    meta = list(A.read_json_lines(os.path.join(HERE, "meta_Toys_and_Games.json.gz")))
    return reviews, meta


def test_filters_kcore_and_split(raw):
    reviews, meta = raw
    s = A.process_reviews(reviews, meta, min_items=1)
    assert s.start == (2017, 10)
    titles = {t for t, _ in s.info}
    assert titles == {
        "Red Fox Saga Vol. 1",
        "Red Fox Saga Vol. 2",
        '"Blue Owl" & Friends'.strip('"'),
        "Green Frog Puzzle",
        "Shared Title",
    }
    assert len(s.info) == 6  # the two "Shared Title" items keep distinct ids
    samples = s.train + s.valid + s.test
    assert len(samples) == 6 * 5  # six users, interactions 1..5 of each
    assert (len(s.train), len(s.valid), len(s.test)) == (24, 3, 3)
    assert {x.user_id for x in samples} == {f"U{u}" for u in range(6)}
    stamps = [x.timestamp for x in samples]
    assert stamps == sorted(stamps)  # chronological split
    for x in samples:
        assert 1 <= len(x.history_item_title) <= 10
        assert x.history_timestamp == sorted(x.history_timestamp)
        assert max(x.history_timestamp) <= x.timestamp
        assert len(x.item_asins) == len(x.history_item_id) == len(x.history_rating)


def test_item_ids_follow_seeded_shuffle_of_first_appearance(raw):
    reviews, meta = raw
    s = A.process_reviews(reviews, meta, min_items=1)
    kept, items, _ = A.k_core_window(reviews, meta, min_items=1)
    expected = list(items)
    random.seed(42)
    random.shuffle(expected)
    id_title, _ = A._titles(meta)
    assert s.info == [(id_title[a], i) for i, a in enumerate(expected)]
    first_seen = list(dict.fromkeys(r["asin"] for r in kept))
    assert items == first_seen


def test_history_window_is_last_ten():
    reviews = [
        {"reviewerID": "u", "asin": f"i{j}", "unixReviewTime": 1510000000 + j, "overall": 5.0}
        for j in range(13)
    ]
    meta = [{"asin": f"i{j}", "title": f"Item {j}"} for j in range(13)]
    s = A.process_reviews(reviews, meta, k=1, min_items=1)
    last = (s.train + s.valid + s.test)[-1]
    assert last.item_title == "Item 12"
    assert last.history_item_title == [f"Item {j}" for j in range(2, 12)]


def test_window_moves_back_until_enough_items(raw):
    reviews, meta = raw
    s = A.process_reviews(reviews, meta, min_items=7)
    assert s.start == (2016, 10)
    assert "Older Item" in {t for t, _ in s.info}
    assert len(s.info) == 7


def test_process_category_writes_the_authors_files(tmp_path, raw):
    paths = A.process_category("Toys_and_Games", HERE, str(tmp_path), min_items=1)
    assert paths["train"].endswith("train/Toys_and_Games_5_2017-10-2018-11.csv")
    train = A.read_samples_csv(paths["train"])
    s = A.process_reviews(*raw, min_items=1)
    assert train == s.train
    assert A.read_info_file(paths["info"]) == s.info
    freq = A.read_item_frequency(paths["item_frequency"])
    # Distinct ids sharing a title overwrite each other (compute_item_freq.py), so the JSON sum
    # can fall below the number of train rows.
    shared = [x for x in s.train if x.item_title == "Shared Title"]
    last_shared_id = list(
        dict.fromkeys(x.item_id for x in s.train if x.item_title == "Shared Title")
    )[-1]
    assert freq["Shared Title"] == sum(x.item_id == last_shared_id for x in shared)
    assert sum(freq.values()) <= len(s.train)
    with open(paths["train"]) as f:
        assert f.readline().strip().split(",") == list(A.CSV_COLUMNS)


def test_reads_ready_made_csv_and_info():
    rows = A.read_samples_csv(os.path.join(HERE, "Video_Games_ready.csv"))
    assert len(rows) == 3
    assert rows[1].history_item_title == [
        "Super Mario Odyssey - Nintendo Switch",
        "Assassin's Creed Origins, Deluxe",
    ]
    assert rows[1].history_item_id == [3, 1] and rows[1].item_id == 0
    assert rows[0].item_title == "Zelda: Breath of the Wild" and rows[0].rating == 4.0
    info = A.read_info_file(os.path.join(HERE, "Video_Games_info.txt"))
    assert info[1] == ("Assassin's Creed Origins, Deluxe", 1)
    assert A.item_frequency(rows, info) == {
        "Zelda: Breath of the Wild": 1,
        "Madden NFL 18": 1,
        "Super Mario Odyssey - Nintendo Switch": 1,
    }


def test_clear_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(A.CSV_COLUMNS) + "\nu,['a'],b,[1,2,0,x\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: malformed row"):
        A.read_samples_csv(str(bad))
    missing = tmp_path / "missing.csv"
    missing.write_text("user_id,item_id\nu,1\n")
    with pytest.raises(ValueError, match="missing column"):
        A.read_samples_csv(str(missing))
    lines = tmp_path / "x.json"
    lines.write_text('{"a": 1}\nnot json at all\n')
    with pytest.raises(ValueError, match=r"x.json:2"):
        list(A.read_json_lines(str(lines)))
    info = tmp_path / "info.txt"
    info.write_text("Title\tnotanint\n")
    with pytest.raises(ValueError, match=r"info.txt:1"):
        A.read_info_file(str(info))
    with pytest.raises(FileNotFoundError, match=r"Nope_5\.json"):
        A.process_category("Nope", str(tmp_path), str(tmp_path))
    freq = tmp_path / "f.json"
    freq.write_text(json.dumps(["a"]))
    with pytest.raises(ValueError, match="title -> frequency"):
        A.read_item_frequency(str(freq))


def test_non_finite_ratings_and_undecodable_files_name_themselves(tmp_path):
    row = ["u", "['a']", "b", "[1]", "2", "['A']", "B", "[5.0]", "nan", "[1]", "2"]
    bad = tmp_path / "nan.csv"
    bad.write_text(",".join(A.CSV_COLUMNS) + "\n" + ",".join(f'"{x}"' for x in row) + "\n")
    with pytest.raises(ValueError, match=r"nan.csv:2: rating is not finite"):
        A.read_samples_csv(str(bad))
    row[7], row[8] = "[1e999]", "5.0"  # overflows to inf
    bad.write_text(",".join(A.CSV_COLUMNS) + "\n" + ",".join(f'"{x}"' for x in row) + "\n")
    with pytest.raises(ValueError, match=r"nan.csv:2: history_rating is not finite"):
        A.read_samples_csv(str(bad))
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 50)
    with pytest.raises(ValueError, match=r"bin.csv: not a UTF-8 text file"):
        A.read_samples_csv(str(binary))
    gz = tmp_path / "x.json.gz"
    gz.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"x.json.gz: not a UTF-8 text file"):
        list(A.read_json_lines(str(gz)))
    freq = tmp_path / "f.json"
    freq.write_text('{"a": NaN}')
    with pytest.raises(ValueError, match=r"title -> frequency \(finite"):
        A.read_item_frequency(str(freq))
