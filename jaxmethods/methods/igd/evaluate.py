"""Exact-title-match evaluation of generated beams: rank -> HR@K and NDCG@K (authors' `calc.py`).

Each of the returned beams is decoded (special tokens skipped), cut after the last "Response:",
stripped of spaces then newlines, and compared with the target title (stripped of spaces,
newlines and quotes). The target's rank is the index of the matching beam; `calc.py` keeps the
LAST matching index when two beams decode to the same string (`duplicate="last"`), "first" is the
evident intent and is offered as an option. HR@K = 1[rank < K], NDCG@K = 1/log2(rank + 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxmethods.eval.ranking import hit_ndcg_at_k

PAPER_KS = (1, 3, 5, 10, 20)


def clean_prediction(text: str) -> str:
    return text.split("Response:")[-1].strip(" ").strip("\n")


def clean_target(title: str) -> str:
    return f"{title}\n".strip(' \n"')


def decode_beams(tokenizer, sequences: np.ndarray, lengths: np.ndarray | None = None) -> list:
    """[B, R, M] token ids (+ optional [B, R] lengths) -> B lists of R cleaned strings."""
    sequences = np.asarray(sequences)
    if sequences.ndim != 3:
        raise ValueError(f"decode_beams: sequences must be [B, R, M], got {sequences.shape}")
    b, r, m = sequences.shape
    flat = sequences.reshape(b * r, m)
    if lengths is not None:
        lens = np.asarray(lengths).reshape(b * r)
        flat = [row[:n] for row, n in zip(flat, lens)]
    texts = tokenizer.batch_decode([list(map(int, x)) for x in flat], skip_special_tokens=True)
    texts = [clean_prediction(t) for t in texts]
    return [texts[i * r : (i + 1) * r] for i in range(b)]


def match_ranks(
    predictions: Sequence[Sequence[str]], targets: Sequence[str], *, duplicate: str = "last"
) -> np.ndarray:
    """0-based rank of each target among its beams, -1 when no beam matches: [N] int32."""
    if len(predictions) != len(targets):
        raise ValueError(
            f"match_ranks: {len(predictions)} prediction lists but {len(targets)} targets"
        )
    if duplicate not in ("last", "first"):
        raise ValueError(f"match_ranks: duplicate must be 'last' or 'first', got {duplicate!r}")
    ranks = np.full(len(targets), -1, np.int32)
    for n, (beams, target) in enumerate(zip(predictions, targets)):
        target = clean_target(target)
        hits = [i for i, text in enumerate(beams) if text == target]
        if hits:
            ranks[n] = hits[-1] if duplicate == "last" else hits[0]
    return ranks


def ranking_metrics(ranks: np.ndarray, ks: Sequence[int] = PAPER_KS) -> dict[str, float]:
    """{"hr@K", "ndcg@K"} means over examples, via the shared `hit_ndcg_at_k`."""
    out = hit_ndcg_at_k(np.asarray(ranks, np.int32), ks=tuple(ks))
    return {k: float(v) for k, v in out.items()}


def outside_catalog_count(predictions: Sequence[Sequence[str]], catalog: set[str]) -> int:
    """Number of beams whose text is not a catalog title (the authors' `CC`; 0 when constrained)."""
    return sum(text not in catalog for beams in predictions for text in beams)
