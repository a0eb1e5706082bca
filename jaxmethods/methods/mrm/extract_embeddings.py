"""Response embeddings from a reward-model backbone: the offline preprocessing of MRM (mrm.md §1, §4).

For every preference pair the authors embed `apply_chat_template(prompt + [assistant response])`
with `AutoModelForSequenceClassification` and keep `hidden_states[-1][0, -1]`: the final-norm
hidden state at the last token (bf16, [4096] for the Llama-3.1-8B Skywork reward models), and the
reward logit as `chosen_score` / `rejected_score`. Here the same quantities come from our NNX
decoder (`jaxmethods.hf.load_pretrained(..., head="sequence_classification")`), batched:

- identical (prompt, response) conversations are embedded once (PRISM repeats the chosen reply for
  every rejected one; Reddit repeats summaries across workers); a pair stores row indices;
- sequences are sorted by length, right-padded to a multiple of `pad_multiple` and run in
  fixed-size batches through one jitted function (few shapes, few compiles); the last real token
  of each row is gathered by the attention mask, which is `[0, -1]` of the unpadded original;
- with a mesh, the batch is split over its data axes and the weights are sharded as loaded.

Output: a `PreferenceCorpus` holding every pair (pair_split = the source split; apply the dataset
protocol with `user_splits.apply_protocol`), saved with `save_corpus`. `read_authors_embeddings`
reads the authors' torch files (`data/emb/prism/V1.pt` + `V1.json`) into the same format.

CLI (see docs/mrm_data.md):
  python -m jaxmethods.methods.mrm.extract_embeddings extract --dataset prism \
      --source HannahRoseKirk/prism-alignment --model Skywork/Skywork-Reward-V2-Llama-3.1-8B \
      --out data/mrm/prism_v2_full
  python -m jaxmethods.methods.mrm.extract_embeddings split --corpus data/mrm/prism_v2_full \
      --protocol prism --out data/mrm/prism_v2
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.data.preferences import (
    PreferenceCorpus,
    TextPair,
    corpus_from_user_pairs,
    load_corpus,
    save_corpus,
)
from jaxmethods.data.user_splits import PROTOCOLS, apply_protocol
from jaxmethods.models.heads import gather_last, last_token_index

log = logging.getLogger(__name__)


def pair_conversations(pair: TextPair) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The chosen and rejected chats: prompt + [{"role": "assistant", "content": response}]."""
    return (
        [*pair.prompt, {"role": "assistant", "content": pair.chosen}],
        [*pair.prompt, {"role": "assistant", "content": pair.rejected}],
    )


def tokenize_pairs(
    tokenizer: Any, pairs: Sequence[TextPair], *, max_length: int | None = None
) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
    """Chat-templates and tokenizes every distinct conversation once.

    Returns:
      (sequences, chosen_rows [P], rejected_rows [P]): token ids of each distinct conversation
      (as `tokenizer.apply_chat_template(chat, tokenize=True)`, no generation prompt) and, per
      pair, the index of its chosen and rejected conversation in `sequences`.
    """
    row_of: dict[str, int] = {}
    sequences: list[list[int]] = []
    rows = np.zeros((len(pairs), 2), np.int64)
    for i, pair in enumerate(pairs):
        for j, chat in enumerate(pair_conversations(pair)):
            key = json.dumps(chat, ensure_ascii=False)
            if key not in row_of:
                ids = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=False)
                ids = list(ids)
                if not ids:
                    raise ValueError(f"pair {i} (user {pair.user_id}): empty token sequence")
                if max_length is not None and len(ids) > max_length:
                    raise ValueError(
                        f"pair {i} (user {pair.user_id}, conversation {pair.conversation_id}): "
                        f"{len(ids)} tokens > max_length={max_length}; the authors do not "
                        "truncate, so raise max_length"
                    )
                row_of[key] = len(sequences)
                sequences.append(ids)
            rows[i, j] = row_of[key]
    return sequences, rows[:, 0], rows[:, 1]


@functools.lru_cache(maxsize=8)
def _jitted_embed(graphdef: nnx.GraphDef, has_head: bool):
    """One jitted function per model structure, so repeated calls reuse compiled shapes."""

    def embed(state, ids, mask):
        m = nnx.merge(graphdef, state)
        hidden = m.hidden_states(ids, mask)
        last = gather_last(hidden, last_token_index(ids, mask))
        if has_head:
            score = m.score(last)[:, 0].astype(jnp.float32)
        else:
            score = jnp.full(last.shape[:1], jnp.nan, jnp.float32)
        return last, score

    return jax.jit(embed)


def make_embed_fn(model: nnx.Module, mesh: jax.sharding.Mesh | None = None):
    """Jitted `(state, ids [B, T], mask [B, T]) -> (last hidden [B, H], score [B] float32)`.

    `model` is a `SequenceClassifier` (score = its head at the last real token) or any module with
    `hidden_states(ids, mask)` (score = NaN). Returns (fn, state).
    """
    graphdef, state = nnx.split(model)
    jitted = _jitted_embed(graphdef, hasattr(model, "score"))
    if mesh is None:
        return jitted, state
    from jaxmethods.train.mesh import data_sharding

    batch = data_sharding(mesh)  # the weights keep the shardings they were loaded with

    def sharded(state, ids, mask):
        return jitted(state, jax.device_put(ids, batch), jax.device_put(mask, batch))

    return sharded, state


def embed_sequences(
    model: nnx.Module,
    sequences: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    pad_multiple: int = 64,
    pad_id: int = 0,
    mesh: jax.sharding.Mesh | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeds token sequences in length-sorted, padded batches.

    Returns:
      (embeddings [N, H] float32, scores [N] float32), in the order of `sequences`.
    """
    if batch_size < 1 or pad_multiple < 1:
        raise ValueError("embed_sequences: batch_size and pad_multiple must be >= 1")
    if mesh is not None:
        from jaxmethods.train.mesh import batch_size_multiple

        if batch_size % batch_size_multiple(mesh):
            raise ValueError(
                f"embed_sequences: batch_size={batch_size} must be a multiple of the mesh's "
                f"data axes ({batch_size_multiple(mesh)})"
            )
    fn, state = make_embed_fn(model, mesh)
    n = len(sequences)
    order = np.argsort([-len(s) for s in sequences], kind="stable")
    out_emb: np.ndarray | None = None
    out_score = np.full(n, np.nan, np.float32)
    pending: tuple[np.ndarray, Any] | None = None
    start = time.perf_counter()

    def collect(rows, result):
        nonlocal out_emb
        emb, score = jax.device_get(result)
        if out_emb is None:
            out_emb = np.zeros((n, emb.shape[-1]), np.float32)
        out_emb[rows] = np.asarray(emb[: len(rows)], np.float32)
        out_score[rows] = score[: len(rows)]

    for b0 in range(0, n, batch_size):
        rows = order[b0 : b0 + batch_size]
        width = -(-max(len(sequences[r]) for r in rows) // pad_multiple) * pad_multiple
        ids = np.full((batch_size, width), pad_id, np.int32)
        mask = np.zeros((batch_size, width), np.int32)
        for k in range(batch_size):  # short last batch: repeat its first row (outputs dropped)
            seq = sequences[rows[k] if k < len(rows) else rows[0]]
            ids[k, : len(seq)], mask[k, : len(seq)] = seq, 1
        result = fn(state, ids, mask)  # dispatched asynchronously
        if pending is not None:
            collect(*pending)
        pending = (rows, result)
        if b0 // batch_size % 50 == 0:
            log.info("embedded %d / %d sequences (%.1f s)", b0, n, time.perf_counter() - start)
    if pending is not None:
        collect(*pending)
    if out_emb is None:
        raise ValueError("embed_sequences: no sequences to embed")
    return out_emb, out_score


def extract_corpus(
    model: nnx.Module,
    tokenizer: Any,
    pairs: Sequence[TextPair],
    *,
    batch_size: int = 8,
    pad_multiple: int = 64,
    max_length: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
) -> PreferenceCorpus:
    """Embeds the pairs and returns the full corpus (every pair; pair_split = source split).

    Per-pair meta follows the authors' metadata JSON: conversation_id, prompt, chosen, rejected,
    chosen_idx, rejected_idx, chosen_score, rejected_score (reward-model logits), plus user_id,
    split (source split) and the dataset's own ratings as chosen_rating / rejected_rating.
    """
    if not pairs:
        raise ValueError("extract_corpus: no pairs")
    sequences, chosen_rows, rejected_rows = tokenize_pairs(tokenizer, pairs, max_length=max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    emb, scores = embed_sequences(
        model, sequences, batch_size=batch_size, pad_multiple=pad_multiple, pad_id=pad_id, mesh=mesh
    )
    records = []
    for p, ch, rj in zip(pairs, chosen_rows.tolist(), rejected_rows.tolist()):
        records.append(
            {
                "user_id": p.user_id,
                "conversation_id": p.conversation_id,
                "prompt": p.prompt,
                "chosen": p.chosen,
                "rejected": p.rejected,
                "chosen_idx": ch,
                "rejected_idx": rj,
                "chosen_score": float(scores[ch]),
                "rejected_score": float(scores[rj]),
                "chosen_rating": p.chosen_score,
                "rejected_rating": p.rejected_score,
                "split": p.source_split,
            }
        )
    return corpus_from_user_pairs(emb, records)


def read_authors_embeddings(
    embeddings_path: str | os.PathLike, metadata_path: str | os.PathLike | None = None
) -> PreferenceCorpus:
    """Reads the authors' `torch.save`d [N, H] tensor (e.g. data/emb/prism/V1.pt) and its
    per-user metadata JSON (`{user_id: [{conversation_id, chosen_idx, rejected_idx, ...}]}`,
    default: the same path with .json) into a full corpus. Needs torch (`pip install .[torch]`)."""
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "read_authors_embeddings needs PyTorch to read .pt files: pip install 'jaxmethods[torch]'"
        ) from e
    embeddings_path = Path(embeddings_path)
    metadata_path = Path(metadata_path or embeddings_path.with_suffix(".json"))
    tensor = torch.load(embeddings_path, map_location="cpu", weights_only=True)
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != 2:
        raise ValueError(f"{embeddings_path}: expected one [N, D] tensor")
    emb = tensor.float().numpy()
    try:
        meta = json.loads(metadata_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{metadata_path}:{e.lineno}: malformed JSON ({e.msg})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{metadata_path}: expected an object {{user_id: [entries]}}")
    records = []
    for uid, entries in meta.items():
        for k, entry in enumerate(entries):
            for key in ("conversation_id", "chosen_idx", "rejected_idx"):
                if key not in entry:
                    raise ValueError(
                        f"{metadata_path}: user {uid!r} entry {k}: missing field {key!r}"
                    )
            records.append({"user_id": uid, **entry})
    return corpus_from_user_pairs(emb, records)


# ---- command line ---------------------------------------------------------------------------


def _load_pairs(dataset: str, source: str | None) -> list[TextPair]:
    if dataset == "prism":
        from jaxmethods.data.prism import HF_REPO_ID, load_prism_pairs

        pairs, stats = load_prism_pairs(source or HF_REPO_ID)
    elif dataset == "reddit":
        from jaxmethods.data.reddit_tldr import HF_DATASET_ID, load_reddit_pairs

        pairs, stats = load_reddit_pairs(source or HF_DATASET_ID)
    else:
        raise ValueError(f"--dataset must be prism or reddit, got {dataset!r}")
    log.info("%s: %s", dataset, stats)
    return pairs


def _extract(args: argparse.Namespace) -> None:
    from jaxmethods.hf import load_pretrained, load_tokenizer
    from jaxmethods.train.mesh import make_mesh

    pairs = _load_pairs(args.dataset, args.source)
    if args.limit_pairs:
        pairs = pairs[: args.limit_pairs]
    mesh = make_mesh({"data": -1, "fsdp": args.fsdp, "tensor": 1})
    tokenizer = load_tokenizer(args.tokenizer or args.model)
    with jax.set_mesh(mesh):
        model = load_pretrained(
            args.model, dtype=args.dtype, mesh=mesh, head="sequence_classification"
        )
        corpus = extract_corpus(
            model,
            tokenizer,
            pairs,
            batch_size=args.batch_size,
            pad_multiple=args.pad_multiple,
            max_length=args.max_length,
            mesh=mesh,
        )
    save_corpus(corpus, args.out, embedding_dtype=args.embedding_dtype)
    print(f"wrote {corpus.num_pairs} pairs, embeddings {corpus.embeddings.shape} to {args.out}")


def _split(args: argparse.Namespace) -> None:
    corpus = apply_protocol(
        load_corpus(args.corpus),
        args.protocol,
        seed=args.seed,
        seen_train_limit=args.seen_train_limit,
        unseen_train_limit=args.unseen_train_limit,
    )
    save_corpus(corpus, args.out, embedding_dtype=args.embedding_dtype)
    seen, unseen = corpus.seen_unseen(args.seed)
    print(
        f"wrote {len(seen)} seen / {len(unseen)} unseen users, {corpus.num_pairs} pairs to {args.out}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="embed PRISM / Reddit pairs with a reward model")
    ex.add_argument("--dataset", choices=("prism", "reddit"), required=True)
    ex.add_argument("--source", help="HF dataset id or local folder (default: the HF id)")
    ex.add_argument("--model", required=True, help="HF id or folder of the reward model")
    ex.add_argument("--tokenizer", help="tokenizer id or folder (default: --model)")
    ex.add_argument("--out", required=True)
    ex.add_argument("--batch_size", type=int, default=8)
    ex.add_argument("--pad_multiple", type=int, default=64)
    ex.add_argument("--max_length", type=int, default=None)
    ex.add_argument("--dtype", default="bfloat16", help="compute dtype of the backbone")
    ex.add_argument("--fsdp", type=int, default=1, help="shard the weights over this many devices")
    ex.add_argument("--embedding_dtype", choices=("float32", "bfloat16"), default="bfloat16")
    ex.add_argument("--limit_pairs", type=int, default=0, help="embed only the first N pairs")
    sp = sub.add_parser("split", help="apply the PRISM / Reddit split protocol to a full corpus")
    sp.add_argument("--corpus", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--protocol", choices=PROTOCOLS, required=True)
    sp.add_argument("--seed", type=int, default=42)
    sp.add_argument("--seen_train_limit", type=int, default=-1)
    sp.add_argument("--unseen_train_limit", type=int, default=-1)
    sp.add_argument("--embedding_dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    (_extract if args.command == "extract" else _split)(args)


if __name__ == "__main__":
    main()
