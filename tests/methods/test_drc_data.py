"""Pigeon's formats on tiny `.npy` fixtures in the original layout (sticker and movie), the
sliding window / 8:1:1 split, triplet mining rules, the prompt, image size / channel handling."""

from __future__ import annotations

import os

import numpy as np
import pytest

from jaxmethods.methods.drc.data import (
    Sample,
    fit_image,
    item_metadata,
    load_image,
    load_pigeon,
    pigeon_prompt,
    sliding_windows,
    split_samples,
)
from jaxmethods.methods.drc.item_codes import check_item_codes, load_codes
from jaxmethods.methods.drc.triplets import build_triplets, mining_keys

EMOS = ("Happiness", "Sadness", "Anger")


def _save(folder, name, obj):
    np.save(os.path.join(folder, name), np.array(obj, dtype=object), allow_pickle=True)


def _sticker_folder(tmp_path, *, splits: bool):
    """4 users, one theme each, 10 stickers per user (40 items)."""
    folder = str(tmp_path)
    _save(folder, "mapped_anno_dict.npy", {i: {"emo": EMOS[i % 3], "text": ""} for i in range(40)})
    np.save(
        os.path.join(folder, "sticker_semantics.npy"), np.array([f"cap {i}" for i in range(40)])
    )
    np.save(
        os.path.join(folder, "all_image_paths.npy"), np.array([f"t/{i}.png" for i in range(40)])
    )
    users = {u: {100 + u: list(range(10 * u, 10 * u + 10))} for u in range(4)}
    _save(folder, "mapped_user_dict.npy", users)
    if splits:
        for name, lo in (("train", 0), ("valid", 3), ("test", 4)):
            _save(folder, f"{name}.npy", {0: {100: [list(range(lo, lo + 6))]}})
    return folder, users


def test_windows_and_split():
    assert sliding_windows(list(range(8))) == [[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6],
                                               [2, 3, 4, 5, 6, 7]]  # fmt: skip
    assert sliding_windows(list(range(5))) == []


def test_sticker_rebuilds_splits(tmp_path):
    folder, users = _sticker_folder(tmp_path, splits=False)
    data = load_pigeon(folder, "sticker", seed=0)
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sizes == {"train": 16, "valid": 2, "test": 2}  # 4 users x 5 windows, 8:1:1
    every = sorted((s.uid, s.history, s.target) for v in data.splits.values() for s in v)
    want = sorted((u, tuple(w[:5]), w[5]) for u, g in users.items()
                  for w in sliding_windows(g[100 + u]))  # fmt: skip
    assert every == want
    rows = sorted((s for v in data.splits.values() for s in v), key=lambda s: (s.uid, s.target))
    chrono = split_samples(rows, mode="chronological")  # per user: 3 train, 1 valid, 1 test
    assert [s.target for s in chrono["test"]] == [9, 19, 29, 39]
    assert [s.target for s in chrono["valid"]] == [8, 18, 28, 38]
    prompt = pigeon_prompt(data, data.splits["test"][0])
    assert prompt.count("<img>") == 6 and prompt.endswith("<emb>\nResponse: <img>")
    assert f"emotion of {EMOS[data.splits['test'][0].target % 3]}." in prompt
    meta = item_metadata(data)
    style, sem = mining_keys("sticker", meta)
    trip = build_triplets(style, sem, seed=0)
    assert len(trip) == 40
    a, s, m = trip.T
    assert np.all(style[a] == style[s]) and np.all(sem[a] != sem[s])
    assert np.all(sem[a] == sem[m]) and np.all(style[a] != style[m])


def test_sticker_split_files_and_errors(tmp_path):
    folder, _ = _sticker_folder(tmp_path, splits=True)
    data = load_pigeon(folder, "sticker")
    assert data.splits["valid"][0].history == (3, 4, 5, 6, 7) and data.splits["test"][0].target == 9
    _save(folder, "valid.npy", {0: {100: [[1, 2, 3, 4, 5, 6], [1, 2, 3]]}})
    with pytest.raises(ValueError, match=r"valid\.npy: user 0, genre 100, row 1: .* got 3"):
        load_pigeon(folder, "sticker")
    _save(folder, "valid.npy", {0: {100: [[1, 2, 3, 4, 5, 99]]}})
    with pytest.raises(ValueError, match=r"row 0: iids \[99\] are outside \[0, 40\)"):
        load_pigeon(folder, "sticker")
    os.remove(os.path.join(folder, "mapped_anno_dict.npy"))
    with pytest.raises(FileNotFoundError, match=r"mapped_anno_dict\.npy: missing"):
        load_pigeon(folder, "sticker")


def _movie_folder(tmp_path, *, num_users: int = 2, per_user: int = 7):
    """Users 7, 8, ... with `per_user` posters each (genre 0), no split files, no image paths."""
    folder, n = str(tmp_path), num_users * per_user
    genres = ("Action|Drama", "Comedy", "Drama|Crime")
    movies = {i: {"title": f"Film {i} (199{i % 10})", "genres": genres[i % 3], "intro": "x"}
              for i in range(n)}  # fmt: skip
    _save(folder, "mapped_movies.npy", movies)
    np.save(
        os.path.join(folder, "movie_semantics.npy"), np.array([f"poster {i}" for i in range(n)])
    )
    seqs = {7 + u: {0: list(range(u * per_user, (u + 1) * per_user))} for u in range(num_users)}
    _save(folder, "user_seq_dict.npy", seqs)
    return folder


def test_movie_format(tmp_path):
    folder = _movie_folder(tmp_path)
    data = load_pigeon(folder, "movie")
    assert sum(len(v) for v in data.splits.values()) == 4 and data.image_paths is None
    s = data.splits["train"][0]
    prompt = pigeon_prompt(data, s)
    assert f"The target movie is titled 'Film {s.target}'. poster {s.target} <emb>" in prompt
    meta = item_metadata(data)
    assert meta["genre"][0] == "Action" and meta["uid"][8] == 8
    style, sem = mining_keys("movie", meta)
    trip = build_triplets(style, sem, seed=1)
    a, p, m = trip.T
    assert len(trip) > 0 and np.all(style[a] == style[p]) and np.all(sem[a] == sem[m])


def test_image_size_and_channels(tmp_path):
    from PIL import Image

    rgba = np.zeros((48, 40, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128
    Image.fromarray(rgba).save(tmp_path / "a.png")
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(tmp_path / "g.png")
    x = load_image(str(tmp_path / "a.png"), 32)
    assert x.shape == (32, 32, 3)
    np.testing.assert_allclose(x[..., 0], 1.0) and np.testing.assert_allclose(x[..., 1], -1.0)
    g = load_image(str(tmp_path / "g.png"), 32)
    np.testing.assert_allclose(g, 1.0)
    with pytest.raises(ValueError, match=r"a\.png: shape \(48, 40, 4\) is not \[32, 32, 3\]"):
        load_image(str(tmp_path / "a.png"), 32, on_mismatch="reject")
    ok = np.zeros((32, 32, 3), np.float32)
    np.testing.assert_array_equal(fit_image(ok, 32, on_mismatch="reject"), ok)
    with pytest.raises(ValueError, match="is not an image"):
        fit_image(np.zeros((32, 32, 5)), 32)


def test_codes_file_formats(tmp_path):
    codes = np.arange(24).reshape(6, 4) % 5
    np.save(tmp_path / "c.npy", codes)
    ic = load_codes(str(tmp_path / "c.npy"))
    np.testing.assert_array_equal(ic.codes, codes)
    assert ic.features is None and ic.augmented is None
    feats, aug = np.ones((5, 3), np.float32), codes[:, None].repeat(2, 1)
    np.savez(tmp_path / "c.npz", codes=codes, codebook=feats, aug_codes=aug)
    ic = load_codes(str(tmp_path / "c.npz"))
    assert ic.features.shape == (5, 3) and ic.augmented.shape == (6, 2, 4)
    window = {"train": [Sample("u", "g", (0, 1, 2, 3, 4), 5)]}
    check_item_codes(ic, window, 5)
    with pytest.raises(ValueError, match=r"c\.npz: 'codebook' has 5 rows, the codebook 6"):
        check_item_codes(ic, window, 6)
    ic.augmented[2, 1, 0] = 7
    msg = r"item 2 \(in train window 0 \(user 'u', genre 'g'\)\): aug_codes ids \[7\]"
    with pytest.raises(ValueError, match=msg):
        check_item_codes(ic, window, 5)
    np.save(tmp_path / "r.npy", np.array([[1, 2], [3]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"r\.npy: holds Python objects \(ragged rows\?\)"):
        load_codes(str(tmp_path / "r.npy"))
    np.savez(tmp_path / "f.npz", codes=codes.astype(np.float32))
    with pytest.raises(ValueError, match=r"f\.npz: 'codes' must be \[num_items, N\] integers"):
        load_codes(str(tmp_path / "f.npz"))
    with pytest.raises(FileNotFoundError, match=r"x\.npy: missing"):
        load_codes(str(tmp_path / "x.npy"))
