"""MRM split rules: reference values from Python's random, determinism, and a port of the
authors' dataset builders (utils.build_prism_dataset / build_reddit_dataset / MetaDataset)."""

import hashlib
import random
from collections import defaultdict

import numpy as np
import pytest

from jaxmethods.data.preferences import PreferenceCorpus
from jaxmethods.data.user_splits import (
    apply_conversation_split,
    apply_pair_split,
    apply_protocol,
    epoch_support_query,
    pad_pairs,
    pair_rows,
    shuffle_user_pairs,
    split_seen_unseen,
    split_user_conversations,
    support_query_split,
    user_rng,
    user_split_pairs,
)


def _md5_seed(uid, seed):
    return seed + int(hashlib.md5(uid.encode("utf-8")).hexdigest(), 16) % 2**32


def test_seen_unseen_reference_values():
    users = [f"u{i}" for i in range(8)]
    seen, unseen = split_seen_unseen(users[::-1], 42)  # input order must not matter
    # Literal values of sorted + random.Random(42).shuffle (CPython's Mersenne Twister).
    assert seen == ["u3", "u4", "u6", "u7"]
    assert unseen == ["u2", "u5", "u0", "u1"]
    ref = sorted(users)
    random.Random(7).shuffle(ref)
    assert split_seen_unseen(users, 7) == (ref[:4], ref[4:])
    assert split_seen_unseen(users, 42) == split_seen_unseen(list(users), 42)
    assert split_seen_unseen(users, 1) != split_seen_unseen(users, 2)
    odd_seen, odd_unseen = split_seen_unseen(users[:7], 42)
    assert (len(odd_seen), len(odd_unseen)) == (3, 4)


def test_user_rng_md5_rule_and_precedence():
    assert user_rng("user0", 42).random() == random.Random(631016067).random()
    m = int(hashlib.md5(b"abc").hexdigest(), 16) % 2**32
    big = 2**32
    # seed + (md5 % 2**32), not (seed + md5) % 2**32: they differ once seed >= 2**32.
    assert user_rng("abc", big).random() == random.Random(big + m).random()
    assert user_rng("abc", big).random() != random.Random((big + m) % 2**32).random()


def test_split_user_conversations_reference_and_limit():
    convs = [f"c{i}" for i in range(7)]
    train, test = split_user_conversations("user0", convs, 42)
    ref = list(convs)
    random.Random(_md5_seed("user0", 42)).shuffle(ref)
    assert (train, test) == (ref[:3], ref[3:])
    assert [convs.index(c) for c in ref] == [2, 6, 0, 5, 4, 1, 3]  # literal values
    assert split_user_conversations("user0", convs, 42) == (train, test)
    assert split_user_conversations("user1", convs, 42) != (train, test)
    limited, test2 = split_user_conversations("user0", convs, 42, train_limit=2)
    assert limited == train[:2] and test2 == test
    assert split_user_conversations("u", ["only"], 42) == ([], ["only"])


def test_shuffle_user_pairs_reference():
    items = list(range(10))
    ref = list(items)
    random.Random(_md5_seed("w1", 3)).shuffle(ref)
    assert shuffle_user_pairs("w1", items, 3) == ref
    assert shuffle_user_pairs("w1", items, 3, train_limit=4) == ref[:4]


def test_support_query_reference_epochs_and_single_conversation():
    convs = list("abcdef")
    literal = {0: list("fabedc"), 1: list("ecbdaf"), 2: list("fecadb")}
    for epoch, shuffled in literal.items():
        support, query = support_query_split(convs, seed=42, index=3, epoch=epoch, val_ratio=0.5)
        assert query == shuffled[:3] and support == shuffled[3:]
    draws = {
        tuple(support_query_split(convs, seed=42, index=3, epoch=e, val_ratio=0.5)[1])
        for e in range(5)
    }
    assert len(draws) > 1  # re-drawn every epoch
    a = support_query_split(convs, seed=42, index=3, epoch=1, val_ratio=0.9)
    assert a == support_query_split(convs, seed=42, index=3, epoch=1, val_ratio=0.9)
    assert len(a[1]) == max(1, int(6 * 0.9)) and len(a[0]) == 1
    assert support_query_split(["x"], seed=1, index=0, epoch=4, val_ratio=0.9) == (["x"], ["x"])
    assert support_query_split(["x", "y"], seed=1, index=0, epoch=0, val_ratio=0.1)[1] != []
    with pytest.raises(ValueError, match="empty support"):
        support_query_split(convs, seed=1, index=0, epoch=0, val_ratio=1.0)
    with pytest.raises(ValueError, match="no train conversations"):
        support_query_split([], seed=1, index=5, epoch=0, val_ratio=0.5)


def test_pad_pairs_shapes_mask_and_truncation():
    rows = [
        (np.arange(3), np.arange(3) + 10),
        (np.arange(11), np.arange(11) + 20),
        (np.zeros(0), np.zeros(0)),
    ]
    ch, rj, mask = pad_pairs(rows)
    assert ch.shape == rj.shape == mask.shape == (3, 16) and ch.dtype == np.int32
    np.testing.assert_array_equal(mask.sum(1), [3, 11, 0])
    np.testing.assert_array_equal(ch[1, :11], np.arange(11))
    np.testing.assert_array_equal(rj[0, :3], [10, 11, 12])
    assert not ch[~mask].any()
    assert pad_pairs(rows, multiple_of=1)[0].shape == (3, 11)
    with pytest.raises(ValueError, match="user 1 has 11 pairs > max_pairs=5"):
        pad_pairs(rows, max_pairs=5)
    ch5, _, m5 = pad_pairs(rows, max_pairs=5, truncate=True)
    np.testing.assert_array_equal(ch5[1], np.arange(5))
    assert m5.sum() == 3 + 5
    with pytest.raises(ValueError, match="user 0 has 2 chosen but 1 rejected"):
        pad_pairs([(np.arange(2), np.arange(1))])


# ---- whole-corpus protocols against a port of the authors' builders ------------------------


def _raw_corpus(seed=0, num_users=9, reddit=False):
    rng = np.random.default_rng(seed)
    users, records = [f"user{u}" for u in range(num_users)], []
    for u, uid in enumerate(users):
        n_conv = 1 + (u % 5) if not reddit else 0
        if reddit:
            for k in range(3 + u):
                records.append((uid, f"{uid}-p{k}", "train" if k % 3 else "val"))
        for c in range(n_conv):
            for _ in range(int(rng.integers(1, 4))):
                records.append((uid, f"{uid}-c{c}", "train"))
    num_pairs = len(records)
    corpus = PreferenceCorpus(
        embeddings=rng.normal(size=(2 * num_pairs, 4)).astype(np.float32),
        users=users,
        pair_user=np.array([users.index(r[0]) for r in records]),
        pair_conv=np.unique([r[1] for r in records], return_inverse=True)[1],
        pair_split=np.array([0 if r[2] == "train" else 1 for r in records]),
        chosen=2 * np.arange(num_pairs),
        rejected=2 * np.arange(num_pairs) + 1,
    )
    return corpus, records


def _authors_meta_dataset(user_data, seed, epoch, val_ratio):
    """Port of MetaDataset.__getitem__ over {uid: {"train": [(pair, conv)], "test": [...]}}."""
    out = {}
    for index, uid in enumerate(user_data):
        conv2ex = defaultdict(list)
        for pair, conv in user_data[uid]["train"]:
            conv2ex[conv].append(pair)
        conv_ids = list(conv2ex)
        random.Random(seed + index + 1000 * epoch).shuffle(conv_ids)
        n_val = max(1, int(len(conv_ids) * val_ratio))
        if len(conv_ids) == 1:
            val_ids = sup_ids = set(conv_ids)
        else:
            val_ids, sup_ids = set(conv_ids[:n_val]), set(conv_ids[n_val:])
        out[uid] = (
            sorted(p for c in sup_ids for p in conv2ex[c]),
            sorted(p for c in val_ids for p in conv2ex[c]),
            sorted(p for p, _ in user_data[uid]["test"]),
        )
    return out


def _authors_prism(records, seed, seen_limit, unseen_limit):
    meta = defaultdict(list)
    for p, (uid, conv, _) in enumerate(records):
        meta[uid].append((p, conv))
    user_ids = sorted(meta)
    random.Random(seed).shuffle(user_ids)
    half = len(user_ids) // 2
    datasets = []
    for group, limit in ((user_ids[:half], seen_limit), (user_ids[half:], unseen_limit)):
        user_data = {}
        for uid in group:
            conv2 = defaultdict(list)
            for p, conv in meta[uid]:
                conv2[conv].append((p, conv))
            conv_ids = list(conv2)
            random.Random(_md5_seed(uid, seed)).shuffle(conv_ids)
            train_ids, test_ids = conv_ids[: len(conv_ids) // 2], conv_ids[len(conv_ids) // 2 :]
            if limit > 0:
                train_ids = train_ids[:limit]
            train = [e for c in train_ids for e in conv2[c]]
            test = [e for c in test_ids for e in conv2[c]]
            if train and test:
                user_data[uid] = {"train": train, "test": test}
        datasets.append(user_data)
    return datasets


def _ours(corpus, users, seed, epoch, val_ratio):
    sup, qry = epoch_support_query(corpus, users, seed=seed, epoch=epoch, val_ratio=val_ratio)
    test = user_split_pairs(corpus, users, 1)
    # Map back to the raw pair ids through the embedding rows (raw pair p owns rows 2p, 2p+1).
    raw = lambda pairs: sorted((corpus.chosen[pairs] // 2).tolist())
    return {corpus.users[u]: (raw(s), raw(q), raw(t)) for u, s, q, t in zip(users, sup, qry, test)}


@pytest.mark.parametrize("limits", [(-1, -1), (2, 1)])
def test_conversation_split_matches_authors_builder(limits):
    raw, records = _raw_corpus()
    corpus = apply_conversation_split(
        raw, seed=42, seen_train_limit=limits[0], unseen_train_limit=limits[1]
    )
    seen_ref, unseen_ref = _authors_prism(records, 42, *limits)
    seen, unseen = corpus.seen_unseen()
    assert [corpus.users[u] for u in seen] == list(seen_ref)
    assert [corpus.users[u] for u in unseen] == list(unseen_ref)
    assert corpus.user_seen.sum() == len(seen_ref)
    for epoch in range(3):
        assert _ours(corpus, seen, 42, epoch, 0.5) == _authors_meta_dataset(
            seen_ref, 42, epoch, 0.5
        )
    assert _ours(corpus, unseen, 42, 0, 0.9) == _authors_meta_dataset(unseen_ref, 42, 0, 0.9)
    # Users with one conversation have no train conversation and are dropped, as in the original.
    assert "user0" not in corpus.users and "user5" not in corpus.users


def test_pair_split_matches_authors_reddit_builder():
    raw, records = _raw_corpus(reddit=True)
    corpus = apply_pair_split(raw, seed=42, seen_train_limit=4, unseen_train_limit=2)
    meta = defaultdict(list)
    for p, (uid, _, split) in enumerate(records):
        meta[uid].append((p, split))
    user_ids = sorted(meta)
    random.Random(42).shuffle(user_ids)
    half = len(user_ids) // 2
    expected_users = []
    for group, limit in ((user_ids[:half], 4), (user_ids[half:], 2)):
        for uid in group:
            train = [p for p, s in meta[uid] if s == "train"]
            random.Random(_md5_seed(uid, 42)).shuffle(train)
            train = train[:limit]
            test = [p for p, s in meta[uid] if s == "val"]
            u = corpus.users.index(uid)
            got_train = corpus.chosen[(corpus.pair_user == u) & (corpus.pair_split == 0)] // 2
            got_test = corpus.chosen[(corpus.pair_user == u) & (corpus.pair_split == 1)] // 2
            assert got_train.tolist() == train  # same order: the support/query draw relies on it
            assert got_test.tolist() == test
            expected_users.append(uid)
    assert corpus.users == expected_users
    assert len(set(corpus.pair_conv.tolist())) == corpus.num_pairs  # each pair its own group
    seen, _ = corpus.seen_unseen()
    sup, qry = epoch_support_query(corpus, seen, seed=42, epoch=2, val_ratio=0.9)
    for u, s, q in zip(seen, sup, qry):
        n = int(((corpus.pair_user == u) & (corpus.pair_split == 0)).sum())
        assert len(q) == (1 if n == 1 else max(1, int(n * 0.9)))
        assert len(s) == (1 if n == 1 else n - len(q))
    rows = pair_rows(corpus, qry)
    _, rj, mask = pad_pairs(rows)
    assert mask.sum() == sum(len(q) for q in qry)
    np.testing.assert_array_equal(rj[mask], np.concatenate([corpus.rejected[q] for q in qry]))


def test_apply_protocol_dispatch():
    raw, _ = _raw_corpus()
    a = apply_protocol(raw, "prism", seed=42)
    b = apply_conversation_split(raw, seed=42)
    assert a.users == b.users and np.array_equal(a.chosen, b.chosen)
    raw_r, _ = _raw_corpus(reddit=True)
    c = apply_protocol(raw_r, "reddit", seed=1, seen_train_limit=2)
    assert np.array_equal(c.chosen, apply_pair_split(raw_r, seed=1, seen_train_limit=2).chosen)
    assert apply_protocol(raw, "none") is raw
    with pytest.raises(ValueError, match="protocol must be one of"):
        apply_protocol(raw, "lamp")
