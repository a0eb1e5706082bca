"""A bag-of-words encoder fitted in the run, the demo's and tests' stand-in for bge-m3.

TF-IDF (log1p counts times smoothed idf over lower-cased word tokens) projected on its top
`dim` right singular vectors and L2-normalised: style words, openers and sign-offs dominate the
leading directions of the synthetic users, so the embeddings carry writing style. It yields the
same per-user rows as `embeddings.extract_embeddings` ([len(profile) + 1, dim], the profile
texts in timestamp order then the target; see `embeddings.user_texts`), held in memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from jaxmethods.methods.dep.data import Sample
from jaxmethods.methods.dep.embeddings import user_texts

_WORD = re.compile(r"[a-z']+")


def fit_bow_embeddings(test_samples: Sequence[Sample], dim: int):
    """`load(sample) -> [len(test profile) + 1, dim]` float32 for every user of `test_samples`
    (every split reads its user's test-split rows, as `EmbeddingStore`)."""
    texts = {s.key: user_texts(s) for s in test_samples}
    docs = [_WORD.findall(t.lower()) for rows in texts.values() for t in rows]
    vocab = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}
    if len(vocab) < dim:
        raise ValueError(f"fit_bow_embeddings: {len(vocab)} distinct words < dim={dim}")
    counts = np.zeros((len(docs), len(vocab)), np.float64)
    for r, d in enumerate(docs):
        for w in d:
            counts[r, vocab[w]] += 1
    idf = np.log((1 + len(docs)) / (1 + (counts > 0).sum(0))) + 1
    x = np.log1p(counts) * idf
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    z = x @ vt[:dim].T
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    out, start = {}, 0
    for key, rows in texts.items():
        out[key] = z[start : start + len(rows)].astype(np.float32)
        start += len(rows)

    def load(sample: Sample) -> np.ndarray:
        if sample.key not in out:
            raise KeyError(f"fit_bow_embeddings: no test-split row for user {sample.key}")
        return out[sample.key]

    return load
