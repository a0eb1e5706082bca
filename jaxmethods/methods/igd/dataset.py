"""Tokenised IGD examples with precomputed token weights, and fixed-shape batches.

Each example is stored ragged (prompt ids, target ids, per-target-token weight); batches are
assembled on the host into one static shape `[B, T]`, right-aligned (left padding), so the
whole run compiles once and the CFT counterfactual row puts the same target at the same positions:

    input_ids [B, T] int32     prompt + target, truncated on the left to `cutoff_len` tokens
    attention_mask [B, T] bool
    labels [B, T] int32        HF causal-LM labels: input_ids on the target tokens, -100 elsewhere
                               (the loss shifts them: position t predicts labels[:, t + 1])
    weights [B, T] float32     the weight of the label at the same position: IGD (beta where
                               IG == 0, else 1), Pos, or ones; 0 where labels == -100

A row index of -1 (`jaxmethods.data.pipeline.PAD_INDEX`, a DataLoader's short last batch padded
to the fixed shape) becomes a row with no label: it adds nothing to a loss normalised by the sum
of weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxmethods.data.amazon2018 import Sample
from jaxmethods.data.pipeline import PAD_INDEX
from jaxmethods.losses import IGNORE_INDEX
from jaxmethods.losses.token_weighted import igd_token_weights, position_decay_weights
from jaxmethods.methods.igd.prompt import encode_prompts, encode_targets
from jaxmethods.methods.igd.trie import ItemTrie

WEIGHTINGS = ("igd", "pos", "none")


@dataclasses.dataclass
class TokenizedExamples:
    """Ragged examples of one split.

    Attributes:
      prompts: N prompt id lists (BOS + instruction + user input).
      targets: N target id lists (title + "\\n" + EOS).
      weights: N float32 arrays, one weight per target token.
      ig: N float64 arrays, trie IG per target token (all zeros for targets outside the trie).
      titles: N target titles (for exact-match evaluation).
      counterfactual_prompts: N prompt id lists with the "Unknow" history (CFT only) or None.
    """

    prompts: list[list[int]]
    targets: list[list[int]]
    weights: list[np.ndarray]
    ig: list[np.ndarray]
    titles: list[str]
    counterfactual_prompts: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.prompts)

    def max_length(self, cutoff_len: int) -> int:
        lengths = [len(p) + len(t) for p, t in zip(self.prompts, self.targets)]
        if self.counterfactual_prompts is not None:
            lengths += [len(p) + len(t) for p, t in zip(self.counterfactual_prompts, self.targets)]
        return min(max(lengths), cutoff_len)

    def zero_ig_fraction(self) -> float:
        """Share of target tokens with IG == 0 (paper: 55.96%-72.97% on the Amazon sets)."""
        total = sum(len(x) for x in self.ig)
        return float(sum(int(np.sum(x == 0)) for x in self.ig) / max(total, 1))


def tokenize_samples(
    samples: Sequence[Sample],
    tokenizer,
    cat: str,
    *,
    trie: ItemTrie,
    weighting: str = "igd",
    beta: float = 1.0,
    counterfactual: bool = False,
    verb: str | None = None,
) -> TokenizedExamples:
    """Prompts, targets and static token weights for a split.

    Args:
      samples: rows of the CSV format.
      tokenizer: the backbone's HF tokenizer.
      cat: prompt word of the category ("video games").
      trie: the catalog trie built from the train item frequencies.
      weighting: "igd" (beta where IG == 0), "pos" (position decay to beta) or "none" (ones).
      beta: see `weighting`.
      counterfactual: also build the CFT "Unknow"-history prompts.
      verb: history verb; default "palyed" (IGD/D3), the CFT dataset uses "played".
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if not samples:
        raise ValueError("tokenize_samples: no samples")
    histories = [s.history_item_title for s in samples]
    titles = [str(s.item_title) for s in samples]
    kwargs = {} if verb is None else {"verb": verb}
    prompts = encode_prompts(tokenizer, histories, cat, **kwargs)
    targets = encode_targets(tokenizer, titles)
    ig = [trie.token_ig(t) for t in targets]
    weights = _weights(ig, weighting, beta)
    cf = None
    if counterfactual:
        cf = encode_prompts(tokenizer, histories, cat, counterfactual=True, **kwargs)
    return TokenizedExamples(prompts, targets, weights, ig, titles, cf)


def reweighted(examples: TokenizedExamples, weighting: str, beta: float) -> TokenizedExamples:
    """The same examples with weights recomputed for another weighting / beta."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    return dataclasses.replace(examples, weights=_weights(examples.ig, weighting, beta))


def _weights(ig: list[np.ndarray], weighting: str, beta: float) -> list[np.ndarray]:
    lengths = np.array([len(x) for x in ig])
    width = int(lengths.max())
    mask = np.arange(width)[None, :] < lengths[:, None]
    if weighting == "igd":
        dense = np.zeros((len(ig), width))
        for i, x in enumerate(ig):
            dense[i, : len(x)] = x
        w = np.asarray(igd_token_weights(dense, beta))
    elif weighting == "pos":
        w = np.asarray(position_decay_weights(mask, beta))
    else:
        w = np.ones(mask.shape, np.float32)
    return [w[i, :n].astype(np.float32) for i, n in enumerate(lengths)]


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def assemble_batch(
    examples: TokenizedExamples,
    indices: Sequence[int],
    seq_len: int,
    *,
    pad_id: int,
    counterfactual: bool = False,
) -> dict[str, np.ndarray]:
    """Stacks examples `indices` into right-aligned `[B, seq_len]` arrays (see module doc).

    An index of -1 gives a padding row: the inputs of the batch's first real example (so that
    every row attends to something) with labels -100 and weights 0. With `counterfactual=True`
    the batch also holds `cf_input_ids` / `cf_attention_mask` (the "Unknow" prompt + the same
    target, aligned with the real row).
    """
    indices = np.asarray(indices, np.int64).reshape(-1)
    real = indices[indices != PAD_INDEX]
    filler = int(real[0]) if len(real) else 0
    b = len(indices)
    out = {
        "input_ids": np.full((b, seq_len), pad_id, np.int32),
        "attention_mask": np.zeros((b, seq_len), bool),
        "labels": np.full((b, seq_len), IGNORE_INDEX, np.int32),
        "weights": np.zeros((b, seq_len), np.float32),
    }
    if counterfactual:
        if examples.counterfactual_prompts is None:
            raise ValueError("assemble_batch: examples have no counterfactual prompts")
        out["cf_input_ids"] = np.full((b, seq_len), pad_id, np.int32)
        out["cf_attention_mask"] = np.zeros((b, seq_len), bool)
    for row, i in enumerate(indices):
        pad_row = i == PAD_INDEX
        i = filler if pad_row else int(i)
        target = examples.targets[i]
        n = len(target)
        if n + 1 > seq_len:
            raise ValueError(
                f"example {i}: target of {n} tokens does not fit seq_len={seq_len} with a prompt"
            )
        _place(out["input_ids"][row], out["attention_mask"][row], examples.prompts[i], target)
        if counterfactual:
            cf = examples.counterfactual_prompts[i]
            _place(out["cf_input_ids"][row], out["cf_attention_mask"][row], cf, target)
        if not pad_row:  # the target occupies the last n positions
            out["labels"][row, seq_len - n :] = target
            out["weights"][row, seq_len - n :] = examples.weights[i]
    return out


def _place(ids_row: np.ndarray, mask_row: np.ndarray, prompt: list[int], target: list[int]):
    tokens = (prompt + target)[-ids_row.shape[0] :]  # the authors keep tokens[-max_len:]
    ids_row[ids_row.shape[0] - len(tokens) :] = tokens
    mask_row[ids_row.shape[0] - len(tokens) :] = True


def assemble_prompts(
    prompts: Sequence[Sequence[int]], seq_len: int, *, pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded generation prompts: ([B, seq_len] int32 ids, [B, seq_len] bool mask)."""
    ids = np.full((len(prompts), seq_len), pad_id, np.int32)
    mask = np.zeros((len(prompts), seq_len), bool)
    for row, p in enumerate(prompts):
        p = list(p)[-seq_len:]
        ids[row, seq_len - len(p) :] = p
        mask[row, seq_len - len(p) :] = True
    return ids, mask
