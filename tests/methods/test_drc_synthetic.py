"""The styled-shapes world: glyph cells where they belong, colours are the palette's, users keep
one style, references keep the target's semantics in another style."""

from __future__ import annotations

import numpy as np
import pytest

from jaxmethods.methods.drc.synthetic import (
    LAYOUTS,
    NUM_POSES,
    PALETTES,
    SHAPES,
    Items,
    WorldConfig,
    make_users,
    reference_items,
    render,
)

WORLD = WorldConfig(noise=0.0)


@pytest.mark.parametrize("pose", [0, 5, 10, 15])
def test_shape_cells_follow_the_pose(pose):
    """The cells holding a shape are the pose's layout at its offset; every shape cell holds
    the same motif; the square is the cell less a 1-px margin."""
    img = render(WORLD, Items(np.array([1]), np.array([pose]), np.array([0])))[0]  # square
    fg = np.asarray(PALETTES[0][0]) * 2 - 1
    is_fg = np.all(np.abs(img - fg) < 1e-5, -1).reshape(4, 8, 4, 8).transpose(0, 2, 1, 3)
    layout, offset = divmod(pose, 4)
    want = np.zeros((4, 4), bool)
    dy, dx = divmod(offset, 2)
    for r, row in enumerate(LAYOUTS[tuple(LAYOUTS)[layout]]):
        for c, ch in enumerate(row):
            want[dy + r, dx + c] = ch == "#"
    np.testing.assert_array_equal(is_fg.any((2, 3)), want)
    cells = is_fg[want]
    assert np.all(cells == cells[0])
    assert cells[0].sum() == 36 and not cells[0][0].any() and cells[0][1:7, 1:7].all()


@pytest.mark.parametrize("shape", range(4))
def test_shapes_differ(shape):
    items = Items(np.arange(4), np.zeros(4, int), np.zeros(4, int))
    x = render(WORLD, items)
    others = [k for k in range(4) if k != shape]
    assert all(np.abs(x[shape] - x[k]).max() > 0.5 for k in others)
    assert SHAPES[shape] in ("circle", "square", "triangle", "cross")


def test_background_palette_and_stripes():
    items = Items(np.array([0, 0]), np.array([0, 0]), np.array([2, 3]))  # palette 1 plain/stripes
    plain, striped = render(WORLD, items)
    bg = np.asarray(PALETTES[1][1]) * 2 - 1
    np.testing.assert_allclose(plain[31, 31], bg, atol=1e-6)  # corner cell: background
    np.testing.assert_allclose(striped[24, 31], bg, atol=1e-6)  # upper half of a cell: light
    dark = (np.asarray(PALETTES[1][1]) * WORLD.stripe_dim) * 2 - 1
    np.testing.assert_allclose(striped[28, 31], dark, atol=1e-6)  # lower half: dark


def test_users_share_style_and_references_change_it():
    u = make_users(WorldConfig(), num_users=6, seq_len=8, seed=3)
    assert u.sequences.shape == (6, 8)
    for k in range(6):
        assert np.all(u.items.style[u.sequences[k]] == u.style[k])
    targets = u.items.take(u.sequences[:, -1])
    ref = reference_items(WorldConfig(), targets, u.style, seed=1)
    assert np.all(ref.style != u.style)
    np.testing.assert_array_equal(ref.shape, targets.shape)
    np.testing.assert_array_equal(ref.pose, targets.pose)
    assert u.items.pose.min() >= 0 and u.items.pose.max() < NUM_POSES


def test_bad_labels_name_the_item():
    with pytest.raises(ValueError, match="item 1: style = 8"):
        render(WORLD, Items(np.array([0, 0]), np.array([0, 0]), np.array([0, 8])))


def test_world_data_windows_and_references():
    from jaxmethods.methods.drc.synthetic import world_data

    wd = world_data(WorldConfig(), num_users=20, seq_len=8, split_mode="random", seed=0)
    every = [s for v in wd.splits.values() for s in v]
    assert len(every) == 20 * 3 and {k: len(v) for k, v in wd.splits.items()} == {
        "train": 48, "valid": 6, "test": 6}  # fmt: skip
    for s in every:
        seq = wd.users.sequences[s.uid].tolist()
        i = seq.index(s.history[0])
        assert [*s.history, s.target] == seq[i : i + 6]
    test = wd.splits["test"]
    targets = wd.users.items.take(np.asarray([s.target for s in test]))
    np.testing.assert_array_equal(wd.references.shape, targets.shape)
    assert np.all(wd.references.style != wd.users.style[[s.uid for s in test]])


@pytest.mark.parametrize("shape", range(4))
def test_notch_motifs_are_the_cell_less_one_quadrant(shape):
    """motifs="notch": every shape cell is foreground but for quadrant `shape` (tl, tr, bl, br),
    which shows the background; other cells are all background."""
    world = WorldConfig(noise=0.0, motifs="notch")
    img = render(world, Items(np.array([shape]), np.array([0]), np.array([0])))[0]
    fg = np.asarray(PALETTES[0][0]) * 2 - 1
    is_fg = np.all(np.abs(img - fg) < 1e-5, -1).reshape(4, 8, 4, 8).transpose(0, 2, 1, 3)
    dy, dx = divmod(shape, 2)
    want = np.ones((8, 8), bool)
    want[4 * dy : 4 * dy + 4, 4 * dx : 4 * dx + 4] = False
    for r, row in enumerate(LAYOUTS["ring"]):  # pose 0: the ring at offset (0, 0)
        for c, ch in enumerate(row):
            np.testing.assert_array_equal(is_fg[r, c], want if ch == "#" else np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"WorldConfig\.motifs"):
        WorldConfig(motifs="stars")


def test_restyle_keeps_semantics_and_changes_style():
    """restyle: picked rows are their item's shape and pose in another style (rendered here
    item by item), the other rows are untouched."""
    from jaxmethods.methods.drc.synthetic import restyle

    world = WorldConfig(noise=0.0, motifs="notch")
    items = Items(np.arange(8) % 4, np.arange(8) * 2, np.arange(8) % 8)
    x = render(world, items)
    y = restyle(world, items, x, 0.5, np.random.default_rng(0))
    moved = np.abs(y - x).reshape(8, -1).max(1) > 0
    assert 0 < moved.sum() < 8
    np.testing.assert_array_equal(y[~moved], x[~moved])
    for i in np.flatnonzero(moved):
        one = slice(i, i + 1)
        styles = [
            s for s in range(8)
            if np.array_equal(render(world, Items(items.shape[one], items.pose[one],
                                                  np.array([s])))[0], y[i])
        ]  # fmt: skip
        assert len(styles) == 1 and styles[0] != items.style[i]
