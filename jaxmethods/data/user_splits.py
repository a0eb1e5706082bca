"""MRM's user-level splits, ported from the authors' seeding rules (mrm.md §4).

Every rule reproduces the authors' Python `random.Random` draws exactly, so seen/unseen users,
per-user train/test conversations and the per-epoch support/query sets are bit-identical to the
original `utils.build_prism_dataset`, `utils.build_reddit_dataset` and `MetaDataset`:

- seen/unseen: `sorted(user_ids)`, `Random(seed).shuffle`, first half (n // 2) seen.
- per-user stream: `Random(seed + int(md5(uid).hexdigest(), 16) % 2**32)`. Python precedence
  makes this `seed + (md5 % 2**32)`, not `(seed + md5) % 2**32`.
- PRISM: a user's conversation ids (in order of first appearance) are shuffled with that stream;
  the first len // 2 are train, the rest test; `train_limit > 0` keeps the first train_limit.
- Reddit: a user's train pairs (source train split, in source order) are shuffled with that
  stream and truncated to `train_limit`; the source validation split is the test set.
- support/query (`MetaDataset.__getitem__`): the train conversation ids (in the order of the
  shuffled train list) are shuffled with `Random(seed + index + 1000 * epoch)`, where index is
  the user's position in the seen-user list; `n_val = max(1, int(n * val_ratio))`; query = the
  first n_val, support = the rest; a user with one conversation gets support = query.

`apply_conversation_split` / `apply_pair_split` turn a corpus holding all pairs into the
protocol's corpus: users ordered as [seen..., unseen...] in the authors' order, each user's train
pairs in the authors' order (so `epoch_support_query` needs no extra state), and users with an
empty train or test set dropped (after the seen/unseen draw, as the authors do).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np

from jaxmethods.data.preferences import TEST, TRAIN, PreferenceCorpus

T = TypeVar("T")
H = TypeVar("H", bound=Hashable)


def user_rng(uid: str, seed: int) -> random.Random:
    """The authors' per-user stream: `Random(seed + int(md5(uid).hexdigest(), 16) % 2**32)`."""
    return random.Random(seed + int(hashlib.md5(uid.encode()).hexdigest(), 16) % (2**32))


def split_seen_unseen(user_ids: Sequence[str], seed: int) -> tuple[list[str], list[str]]:
    """Seen (meta-train) and unseen users: sort, shuffle with Random(seed), first half seen."""
    users = sorted(user_ids)
    random.Random(seed).shuffle(users)
    half = len(users) // 2
    return users[:half], users[half:]


def split_user_conversations(
    uid: str, conv_ids: Sequence[H], seed: int, train_limit: int = -1
) -> tuple[list[H], list[H]]:
    """PRISM per-user split: (train conversations, test conversations), both in shuffled order.

    `conv_ids` must be in the authors' order (first appearance among the user's pairs).
    """
    convs = list(conv_ids)
    user_rng(uid, seed).shuffle(convs)
    split_point = len(convs) // 2
    train, test = convs[:split_point], convs[split_point:]
    if train_limit > 0:
        train = train[:train_limit]
    return train, test


def shuffle_user_pairs(uid: str, items: Sequence[T], seed: int, train_limit: int = -1) -> list[T]:
    """Reddit per-user rule: shuffle the user's train items with `user_rng`, keep train_limit."""
    items = list(items)
    user_rng(uid, seed).shuffle(items)
    return items[:train_limit] if train_limit > 0 else items


def support_query_split(
    conv_ids: Sequence[H], *, seed: int, index: int, epoch: int, val_ratio: float
) -> tuple[list[H], list[H]]:
    """`MetaDataset` support/query draw of one user's train conversations: (support, query).

    Args:
      conv_ids: the user's train conversation ids in the authors' order.
      index: the user's position in the seen-user dataset; epoch: the meta-training epoch.
      val_ratio: query fraction (`n_val = max(1, int(n * val_ratio))`, query = first n_val).
    """
    convs = list(conv_ids)
    if not convs:
        raise ValueError(f"support_query_split: user at index {index} has no train conversations")
    random.Random(seed + index + 1000 * epoch).shuffle(convs)
    if len(convs) == 1:
        return convs, list(convs)
    n_val = max(1, int(len(convs) * val_ratio))
    query, support = convs[:n_val], convs[n_val:]
    if not support:
        raise ValueError(
            f"support_query_split: val_ratio={val_ratio} leaves user at index {index} "
            f"({len(convs)} conversations) an empty support set"
        )
    return support, query


def pad_pairs(
    rows: Sequence[tuple[np.ndarray, np.ndarray]],
    max_pairs: int | None = None,
    *,
    multiple_of: int = 8,
    truncate: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pads ragged per-user (chosen, rejected) row-index arrays to one [U, P] batch.

    Args:
      rows: U tuples (chosen [n_u], rejected [n_u]) of embedding-row indices.
      max_pairs: fixed P (one compiled shape for every batch). None: P = the longest user,
        rounded up to `multiple_of` (few distinct shapes, so few recompiles).
      truncate: when a user has more than max_pairs pairs, keep its first max_pairs (a
        deterministic cut); False raises instead.

    Returns:
      chosen [U, P] int32, rejected [U, P] int32 (padding points at row 0), mask [U, P] bool.
    """
    lengths = []
    for u, (ch, rj) in enumerate(rows):
        if len(ch) != len(rj):
            raise ValueError(
                f"pad_pairs: user {u} has {len(ch)} chosen but {len(rj)} rejected rows"
            )
        lengths.append(len(ch))
    longest = max(lengths, default=0)
    if max_pairs is None:
        if multiple_of < 1:
            raise ValueError(f"pad_pairs: multiple_of must be >= 1, got {multiple_of}")
        width = -(-max(longest, 1) // multiple_of) * multiple_of
    else:
        if max_pairs < 1:
            raise ValueError(f"pad_pairs: max_pairs must be >= 1, got {max_pairs}")
        width = max_pairs
        if longest > width and not truncate:
            u = int(np.argmax(lengths))
            raise ValueError(
                f"pad_pairs: user {u} has {longest} pairs > max_pairs={max_pairs}; raise "
                "max_pairs or pass truncate=True"
            )
    chosen = np.zeros((len(rows), width), np.int32)
    rejected = np.zeros((len(rows), width), np.int32)
    mask = np.zeros((len(rows), width), bool)
    for u, (ch, rj) in enumerate(rows):
        n = min(len(ch), width)
        chosen[u, :n], rejected[u, :n], mask[u, :n] = ch[:n], rj[:n], True
    return chosen, rejected, mask


# ---- protocols over a whole corpus ---------------------------------------------------------


def _user_split_pairs(corpus: PreferenceCorpus, user_pairs: np.ndarray, split: int) -> np.ndarray:
    return user_pairs[corpus.pair_split[user_pairs] == split]


def _conversation_groups(corpus: PreferenceCorpus, pairs: np.ndarray) -> dict[int, list[int]]:
    """conv id -> pair indices, conversations in order of first appearance (dicts keep order)."""
    groups: dict[int, list[int]] = {}
    for p in pairs.tolist():
        groups.setdefault(int(corpus.pair_conv[p]), []).append(p)
    return groups


def _assemble(
    corpus: PreferenceCorpus,
    per_user: dict[str, tuple[list[int], list[int]]],
    seen: list[str],
    unseen: list[str],
    renumber_conversations: bool,
) -> PreferenceCorpus:
    """Builds the protocol corpus: users [seen..., unseen...], pairs train-then-test per user."""
    users = [u for u in seen if u in per_user] + [u for u in unseen if u in per_user]
    order, split, owner = [], [], []
    for new_u, uid in enumerate(users):
        train, test = per_user[uid]
        order += train + test
        split += [TRAIN] * len(train) + [TEST] * len(test)
        owner += [new_u] * (len(train) + len(test))
    idx = np.array(order, dtype=np.int64)
    selected = corpus.select_pairs(idx)
    seen_set = set(seen)
    return dataclasses.replace(
        selected,
        users=users,
        pair_user=np.array(owner, dtype=np.int32),
        pair_split=np.array(split, dtype=np.int8),
        pair_conv=np.arange(len(idx), dtype=np.int32)
        if renumber_conversations
        else selected.pair_conv,
        user_seen=np.array([u in seen_set for u in users], dtype=bool),
    )


def apply_conversation_split(
    corpus: PreferenceCorpus,
    *,
    seed: int = 42,
    seen_train_limit: int = -1,
    unseen_train_limit: int = -1,
) -> PreferenceCorpus:
    """The PRISM protocol (`utils.build_prism_dataset`, no augmentation, no score threshold).

    Input: a corpus with all of each user's pairs, in the authors' record order (pair_split is
    ignored). Output: seen/unseen fixed in `user_seen`, each user's train conversations (half of
    them, shuffled with `user_rng`, truncated to the seen/unseen train limit) then its test
    conversations; users left without train or test pairs are dropped.
    """
    seen, unseen = split_seen_unseen(corpus.users, seed)
    limits = {**dict.fromkeys(seen, seen_train_limit), **dict.fromkeys(unseen, unseen_train_limit)}
    per_user = {}
    for u, pairs in enumerate(corpus.user_pairs()):
        uid = corpus.users[u]
        groups = _conversation_groups(corpus, pairs)
        train_convs, test_convs = split_user_conversations(uid, list(groups), seed, limits[uid])
        train = [p for c in train_convs for p in groups[c]]
        test = [p for c in test_convs for p in groups[c]]
        if train and test:
            per_user[uid] = (train, test)
    return _assemble(corpus, per_user, seen, unseen, renumber_conversations=False)


def apply_pair_split(
    corpus: PreferenceCorpus,
    *,
    seed: int = 42,
    seen_train_limit: int = -1,
    unseen_train_limit: int = -1,
) -> PreferenceCorpus:
    """The Reddit TL;DR protocol (`utils.build_reddit_dataset`).

    Input: a corpus whose pair_split is the source split (0 = HF train, 1 = HF validation), each
    user's pairs in source order. Output: each user's train pairs shuffled with `user_rng` and
    truncated to the seen/unseen train limit, then its test pairs in source order; every pair its
    own conversation; users without train or test pairs dropped.
    """
    seen, unseen = split_seen_unseen(corpus.users, seed)
    limits = {**dict.fromkeys(seen, seen_train_limit), **dict.fromkeys(unseen, unseen_train_limit)}
    per_user = {}
    for u, pairs in enumerate(corpus.user_pairs()):
        uid = corpus.users[u]
        train = _user_split_pairs(corpus, pairs, TRAIN).tolist()
        test = _user_split_pairs(corpus, pairs, TEST).tolist()
        train = shuffle_user_pairs(uid, train, seed, limits[uid])
        if train and test:
            per_user[uid] = (train, test)
    return _assemble(corpus, per_user, seen, unseen, renumber_conversations=True)


PROTOCOLS = ("prism", "reddit", "none")


def apply_protocol(
    corpus: PreferenceCorpus,
    protocol: str,
    *,
    seed: int = 42,
    seen_train_limit: int = -1,
    unseen_train_limit: int = -1,
) -> PreferenceCorpus:
    """Applies a dataset's split protocol by name to a full corpus (as the extractor writes it).

    "prism" = `apply_conversation_split`, "reddit" = `apply_pair_split`, "none" returns the corpus
    unchanged (its splits were fixed already, e.g. a synthetic corpus).
    """
    if protocol == "prism":
        split = apply_conversation_split
    elif protocol == "reddit":
        split = apply_pair_split
    elif protocol == "none":
        return corpus
    else:
        raise ValueError(f"apply_protocol: protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return split(
        corpus, seed=seed, seen_train_limit=seen_train_limit, unseen_train_limit=unseen_train_limit
    )


# ---- per-epoch views for training and evaluation -------------------------------------------


def user_split_pairs(
    corpus: PreferenceCorpus, users: Sequence[int], split: int
) -> list[np.ndarray]:
    """For each user index in `users`, its pair indices in `split` (0 train, 1 test), in order."""
    all_pairs = corpus.user_pairs()
    return [_user_split_pairs(corpus, all_pairs[u], split) for u in users]


def epoch_support_query(
    corpus: PreferenceCorpus,
    users: Sequence[int],
    *,
    seed: int,
    epoch: int,
    val_ratio: float,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Support and query pair indices of each user for one meta-training epoch.

    Args:
      users: user indices in the seen-user order (`corpus.seen_unseen(seed)[0]`); a user's
        position in this sequence is the `index` of `support_query_split`.

    Returns:
      (support, query): two lists with one int array of pair indices per user. Pairs keep their
      corpus order inside each set (the losses are means, so order does not matter).
    """
    train_pairs = user_split_pairs(corpus, users, TRAIN)
    support, query = [], []
    for index, pairs in enumerate(train_pairs):
        groups = _conversation_groups(corpus, pairs)
        sup_convs, qry_convs = support_query_split(
            list(groups), seed=seed, index=index, epoch=epoch, val_ratio=val_ratio
        )
        sup_set, qry_set = set(sup_convs), set(qry_convs)
        conv = corpus.pair_conv[pairs]
        support.append(pairs[np.isin(conv, list(sup_set))])
        query.append(pairs[np.isin(conv, list(qry_set))])
    return support, query


def pair_rows(
    corpus: PreferenceCorpus, pair_lists: Sequence[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Maps per-user pair-index arrays to (chosen rows, rejected rows), ready for `pad_pairs`."""
    return [(corpus.chosen[p], corpus.rejected[p]) for p in pair_lists]
