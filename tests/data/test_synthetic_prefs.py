"""Synthetic personalized preferences: structure, determinism, and that personalization pays."""

import numpy as np
import pytest

from jaxmethods.data.synthetic_prefs import make_synthetic_corpus


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_corpus(num_users=120, dim=16, label_noise=0.1, seed=3)


def test_structure_and_ragged_sizes(synthetic):
    corpus, truth = synthetic
    assert corpus.dim == 16 and corpus.embeddings.shape[0] == 2 * corpus.num_pairs
    assert corpus.num_users == 120 and corpus.user_seen.sum() == 60
    counts = np.bincount(corpus.pair_user)
    assert counts.min() >= 12 and counts.max() <= 32 and len(set(counts.tolist())) > 5
    for pairs in corpus.user_pairs():
        convs_train = set(corpus.pair_conv[pairs][corpus.pair_split[pairs] == 0].tolist())
        convs_test = set(corpus.pair_conv[pairs][corpus.pair_split[pairs] == 1].tolist())
        assert convs_train and convs_test and not convs_train & convs_test
        assert 4 <= len(convs_train | convs_test) <= 8
        assert len(convs_train) == (len(convs_train) + len(convs_test)) // 2
    np.testing.assert_allclose(np.linalg.norm(truth.directions, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(truth.directions[0] @ truth.directions[1], -0.3, atol=1e-12)
    np.testing.assert_allclose(truth.user_weights.sum(1), 1.0)
    assert truth.user_weights.shape == (120, 2)


def test_determinism(synthetic):
    again, _ = make_synthetic_corpus(num_users=120, dim=16, label_noise=0.1, seed=3)
    np.testing.assert_array_equal(again.embeddings, synthetic[0].embeddings)
    np.testing.assert_array_equal(again.chosen, synthetic[0].chosen)
    assert again.users == synthetic[0].users
    other, _ = make_synthetic_corpus(num_users=120, dim=16, label_noise=0.1, seed=4)
    assert not np.array_equal(other.chosen[:50], again.chosen[:50]) or other.users != again.users


def test_noise_mixtures_and_disagreement(synthetic):
    corpus, truth = synthetic
    assert 0.06 < truth.label_flipped.mean() < 0.14  # label_noise = 0.1
    assert 0.5 < truth.disagreement < 0.7  # arccos(-0.3) / pi = 0.597
    # Beta(0.3, 0.3): many users lean strongly to one direction.
    assert np.mean(np.abs(truth.user_weights[:, 0] - 0.5) > 0.35) > 0.4
    oracle = truth.user_accuracy(corpus, truth.user_weights)
    assert abs(np.nanmean(oracle) - 0.9) < 0.04
    np.testing.assert_allclose(
        np.nanmean(truth.user_accuracy(corpus, truth.user_weights, split=0)), 0.9, atol=0.04
    )
    noiseless, t0 = make_synthetic_corpus(num_users=20, dim=8, label_noise=0.0, seed=1)
    assert not t0.label_flipped.any()
    np.testing.assert_array_equal(t0.user_accuracy(noiseless, t0.user_weights), 1.0)


def _fit_global_bt(diff, steps=300, lr=0.5):
    """Plain logistic regression on (chosen - rejected) differences: the global BT baseline."""
    w = np.zeros(diff.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-diff @ w))
        w += lr * diff.T @ (1.0 - p) / len(diff)
    return w


def test_per_user_mixture_beats_global_bradley_terry(synthetic):
    corpus, truth = synthetic
    diff = corpus.embeddings[corpus.chosen] - corpus.embeddings[corpus.rejected]
    train, test = corpus.pair_split == 0, corpus.pair_split == 1
    w_global = _fit_global_bt(diff[train].astype(np.float64))
    correct = (diff @ w_global > 0).astype(float)
    global_acc = np.mean(
        [correct[test & (corpus.pair_user == u)].mean() for u in range(corpus.num_users)]
    )
    # Per-user adaptation: pick each user's mixture on its own train pairs (grid over the simplex).
    base = diff @ truth.directions.T  # [P, 2] base rewards
    grid = np.linspace(0, 1, 21)
    adapted = []
    for u in range(corpus.num_users):
        tr, te = train & (corpus.pair_user == u), test & (corpus.pair_user == u)
        scores = [np.mean(base[tr] @ np.array([a, 1 - a]) > 0) for a in grid]
        a = grid[int(np.argmax(scores))]
        adapted.append(np.mean(base[te] @ np.array([a, 1 - a]) > 0))
    assert np.mean(adapted) > global_acc + 0.08, (np.mean(adapted), global_acc)
    assert global_acc > 0.6  # the global model learns the shared part


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_users=1), "num_users=1 must be >= 2"),
        (dict(label_noise=0.5), "label_noise=0.5"),
        (dict(convs_per_user=(1, 3)), "convs_per_user"),
        (dict(pairs_per_user=(5, 3)), "pairs_per_user"),
        (dict(direction_cosine=-1.0), "direction_cosine=-1.0"),
        (dict(dim=1), "dim=1 must be >= num_rewards=2"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = dict(num_users=4, dim=4) | kwargs
    with pytest.raises(ValueError, match=message):
        make_synthetic_corpus(**args)
