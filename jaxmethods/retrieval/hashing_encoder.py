"""`HashingEncoder`: a deterministic, training-free text encoder (hashed word n-gram counts).

    enc = HashingEncoder(dim=1024)
    vecs = enc.embed(["AAPL 2022-03-15 close 150.2", "MSFT 2022-Q1 income statement"])  # [2, 1024]

Why it exists: retrieval pipelines that the paper runs with an API embedding model (e.g.
FinTMMBench's TMMHybridRAG with OpenAI text-embedding-3-small) need an offline stand-in for the
demo and the tests: no download, no training, the same vector for the same text on every machine,
and good enough lexical matching (tickers, dates, indicator names) for the retrieval logic around
it to be exercised. Real runs use an HF encoder through
`jaxmethods.models.text_encoder.TextEncoder` (or precomputed vectors); both implement
`jaxmethods.retrieval.protocols.TextEncoder`.

Features: lower-cased tokens `[a-z0-9]+` joined by "-" or "." (so "2022-03-15", "2022-q1" and
"150.25" stay whole; the parts of such a token are added as extra unigrams), word n-grams of the
token sequence for n in `ngram` (default uni- and bigrams), each hashed with CRC-32 into `dim`
buckets; bucket weight = 1 + log(count) (sublinear tf); rows L2-normalised (an empty text gives a
zero row). No IDF: it needs no corpus statistics.

`split="subword"` first replaces every non-alphanumeric run by a space, so "2022-03-15" gives the
tokens "2022", "03", "15" (and their bigrams) and "150.25" gives "150", "25": real embedders see
dates as sub-word pieces, so nearby dates share most features and a date is no exact key (the
whole-token default matches dates letter for letter).
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*")
_PART = re.compile(r"[a-z0-9]+")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


class HashingEncoder:
    """Hashed word n-gram embedding (see the module docstring).

    Args:
      dim: number of hash buckets = embedding width.
      ngram: (min_n, max_n) word n-gram orders, inclusive.
      split: "word" (tokens keep "-" and "." joins) or "subword" (split on non-alphanumerics).
    """

    def __init__(self, dim: int = 1024, ngram: tuple[int, int] = (1, 2), split: str = "word"):
        if split not in ("word", "subword"):
            raise ValueError(f"HashingEncoder: split must be 'word' or 'subword', got {split!r}")
        self.split = split
        if dim < 1:
            raise ValueError(f"HashingEncoder: dim must be >= 1, got {dim}")
        lo, hi = ngram
        if not 1 <= lo <= hi:
            raise ValueError(
                f"HashingEncoder: ngram must be (min_n, max_n), 1 <= min_n <= max_n, got {ngram}"
            )
        self._dim, self.ngram = int(dim), (int(lo), int(hi))

    @property
    def dim(self) -> int:
        return self._dim

    def features(self, text: str) -> list[str]:
        """The n-gram strings of one text (before hashing), in order."""
        text = text.lower()
        if self.split == "subword":
            text = _NON_ALNUM.sub(" ", text)
        tokens = _TOKEN.findall(text)
        lo, hi = self.ngram
        feats = []
        for n in range(lo, hi + 1):
            feats.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        if lo == 1:
            for t in tokens:
                parts = _PART.findall(t)
                if len(parts) > 1:
                    feats.extend(parts)
        return feats

    def bucket(self, feature: str) -> int:
        return zlib.crc32(feature.encode("utf-8")) % self._dim

    def embed(self, texts: Sequence[str], batch_size: int = 0) -> np.ndarray:
        """[len(texts), dim] float32, rows L2-normalised. `batch_size` is accepted for the
        `TextEncoder` protocol and ignored (the work is per text on the host)."""
        if isinstance(texts, str):
            raise TypeError("HashingEncoder.embed: pass a sequence of strings, not one string")
        out = np.zeros((len(texts), self._dim), np.float32)
        for row, text in enumerate(texts):
            counts = Counter(self.bucket(f) for f in self.features(text))
            if not counts:
                continue
            cols = np.fromiter(counts.keys(), np.int64, len(counts))
            vals = np.fromiter((1.0 + math.log(c) for c in counts.values()), np.float32)
            out[row, cols] = vals
            out[row] /= np.linalg.norm(vals)
        return out
