"""Test-set generation: batched IGD beam search over the prompts, decoded to title strings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxmethods.methods.igd.dataset import assemble_prompts
from jaxmethods.methods.igd.decoding import IGDLogitsProcessor, igd_beam_search
from jaxmethods.methods.igd.evaluate import decode_beams, match_ranks, ranking_metrics


def generate_titles(
    model,
    tokenizer,
    prompts: Sequence[Sequence[int]],
    processor: IGDLogitsProcessor,
    *,
    batch_size: int = 16,
    num_beams: int = 10,
    num_return_sequences: int = 10,
    max_new_tokens: int = 72,
    length_penalty: float = 0.0,
    prompt_len: int | None = None,
) -> list[list[str]]:
    """R decoded beams per prompt (best first; "" for hypotheses the trie cannot fill).

    Every batch has the same static shape `[batch_size, prompt_len]` (left padded; the tail
    batch is filled with copies of its first prompt), so the search compiles once.
    """
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    prompt_len = prompt_len or max(len(p) for p in prompts)
    out: list[list[str]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        real = len(chunk)
        chunk += [chunk[0]] * (batch_size - real)
        ids, mask = assemble_prompts(chunk, prompt_len, pad_id=pad_id)
        res = igd_beam_search(
            model,
            ids,
            mask,
            processor,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad_id,
            num_beams=num_beams,
            num_return_sequences=num_return_sequences,
            max_new_tokens=max_new_tokens,
            length_penalty=length_penalty,
        )
        seqs, lengths, scores = map(np.asarray, (res.sequences, res.lengths, res.scores))
        texts = decode_beams(tokenizer, seqs[:real], lengths[:real])
        for row, row_scores in zip(texts, scores[:real]):
            out.append([t if np.isfinite(s) else "" for t, s in zip(row, row_scores)])
    return out


def evaluate_decoding(
    model,
    tokenizer,
    prompts: Sequence[Sequence[int]],
    titles: Sequence[str],
    processor: IGDLogitsProcessor,
    *,
    ks: Sequence[int] = (1, 3, 5, 10, 20),
    **kwargs,
) -> tuple[dict[str, float], list[list[str]]]:
    """HR@K / NDCG@K of exact title matches, and the decoded beams."""
    predictions = generate_titles(model, tokenizer, prompts, processor, **kwargs)
    ranks = match_ranks(predictions, titles)
    return ranking_metrics(ranks, ks), predictions
