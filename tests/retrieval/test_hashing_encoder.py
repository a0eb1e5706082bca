"""HashingEncoder: hashed word n-gram counts, sublinear tf, L2-normalised (checked by hand)."""

import math
import zlib

import numpy as np
import pytest

from jaxmethods.retrieval.hashing_encoder import HashingEncoder
from jaxmethods.retrieval.protocols import TextEncoder


def _expected(features: list[str], dim: int) -> np.ndarray:
    v = np.zeros(dim, np.float64)
    counts: dict[int, int] = {}
    for f in features:
        b = zlib.crc32(f.encode()) % dim
        counts[b] = counts.get(b, 0) + 1
    for b, c in counts.items():
        v[b] = 1 + math.log(c)
    return v / np.linalg.norm(v)


def test_matches_hand_listed_features():
    enc = HashingEncoder(dim=64)
    text = "AAPL close close on 2022-03-15"
    feats = [
        "aapl", "close", "close", "on", "2022-03-15",  # unigrams
        "aapl close", "close close", "close on", "on 2022-03-15",  # bigrams
        "2022", "03", "15",  # the parts of a compound token
    ]  # fmt: skip
    assert sorted(enc.features(text)) == sorted(feats)
    got = enc.embed([text, ""])
    np.testing.assert_allclose(got[0], _expected(feats, 64), rtol=1e-6, atol=1e-7)
    assert got.dtype == np.float32 and got.shape == (2, 64)
    assert not got[1].any()  # empty text -> zero row


def test_protocol_determinism_and_similarity():
    enc = HashingEncoder(dim=512, ngram=(1, 1))
    assert isinstance(enc, TextEncoder) and enc.dim == 512
    a, b, c = enc.embed(["MSFT totalRevenue 2022-Q2", "msft TOTALREVENUE 2022-q2", "NVDA 2022"])
    np.testing.assert_array_equal(a, b)  # case-insensitive, same on every call
    assert float(a @ c) < 0.5 < float(a @ b)
    assert enc.features("a b c") == ["a", "b", "c"]  # ngram=(1, 1): no bigrams
    with pytest.raises(ValueError, match="ngram"):
        HashingEncoder(8, ngram=(2, 1))
    with pytest.raises(TypeError, match="sequence"):
        enc.embed("one string")
