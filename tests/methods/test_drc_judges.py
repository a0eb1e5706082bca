"""Judges: the collapse rate and accuracies against a brute-force loop, mean / s.e. against the
formula, and an MLP judge that learns the world's style and shape."""

from __future__ import annotations

import numpy as np
import pytest

from jaxmethods.methods.drc.judges import (
    cell_features,
    episode_scores,
    mean_se,
    paired_difference,
    train_judges,
)
from jaxmethods.methods.drc.synthetic import Items, WorldConfig, random_items, render


def test_episode_scores_brute_force():
    rng = np.random.default_rng(0)
    n = 200
    user = rng.integers(8, size=n)
    ref = (user + 1 + rng.integers(7, size=n)) % 8
    ref_shape, hist = rng.integers(4, size=n), rng.integers(4, size=(n, 5))
    sp, hp = rng.integers(8, size=n), rng.integers(4, size=n)
    out = episode_scores(sp, hp, user_style=user, ref_style=ref, ref_shape=ref_shape,
                         hist_shapes=hist)  # fmt: skip
    for i in range(n):
        style_c = sp[i] == ref[i]
        sem_c = hp[i] != ref_shape[i] and hp[i] in set(hist[i].tolist())
        assert out["collapse"][i] == float(style_c or sem_c)
        assert out["style_ok"][i] == float(sp[i] == user[i])
        assert out["semantic_ok"][i] == float(hp[i] == ref_shape[i])
    with pytest.raises(ValueError, match="reference has the user's style"):
        episode_scores(sp, hp, user_style=user, ref_style=user, ref_shape=ref_shape,
                       hist_shapes=hist)  # fmt: skip


def test_mean_se_and_paired():
    x = np.array([1.0, 0.0, 1.0, 1.0])
    m, se = mean_se(x)
    assert m == 0.75 and se == pytest.approx(0.5 / 2)  # var (ddof 1) = 0.75 / 3
    d, dse = paired_difference(np.array([1.0, 0, 0]), np.array([1.0, 1, 1]))
    assert d == pytest.approx(-2 / 3) and dse == pytest.approx(np.std([0, -1, -1], ddof=1) / 3**0.5)


def test_judges_learn_the_world():
    world = WorldConfig(noise=0.0)
    items = random_items(world, 900, np.random.default_rng(0))
    x = render(world, items)
    j = train_judges(x[:700], items.style[:700], items.shape[:700], num_styles=8, num_shapes=4,
                     steps=150, hidden=32)  # fmt: skip
    assert (j.style.predict(x[700:]) == items.style[700:]).mean() > 0.95
    assert (j.shape.predict(x[700:]) == items.shape[700:]).mean() > 0.85  # chance: 0.25


def test_cell_features_ignore_colour_and_position():
    """The same shape class in two styles and two poses of the same layout (shifted by one
    cell) gives the same features."""
    items = Items(np.array([2, 2, 3]), np.array([0, 3, 0]), np.array([0, 4, 0]))  # plain styles
    f = cell_features(render(WorldConfig(noise=0.0), items))
    np.testing.assert_allclose(f[0], f[1], atol=0.06)  # up to the contrast-dependent scale
    assert np.abs(f[0] - f[2]).max() > 0.5  # another class differs
