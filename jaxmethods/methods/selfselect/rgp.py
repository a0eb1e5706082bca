"""The Retrieval-Generation Preference (RGP) dataset: preference pairs from the model's own
samples on train questions, written as JSONL, resumable.

Per question (`num_samples` closed-book and RAG answers sampled at `temperature` > 0, each
labelled by normalised alias containment, `jaxmethods.eval.qa.contains_match`):

- generation pairs: (closed-book prompt, correct ≻ incorrect sample) and the same for the RAG
  prompt, at most `max_pairs` per prompt kind;
- selection pairs: for sample i, the selection prompt over (closed-book_i, RAG_i); a pair only
  when exactly one of the two is correct (chosen = the correct answer, rejected = the other),
  labelled "internal" or "external" by which source wins; at most `max_pairs` distinct ones;
- augmentations (each switchable, each row tagged with its `augment`):
  "swap"      the same selection pair with the two responses in the other order;
  "passages"  a selection / RAG-generation pair over fewer passages in a new order (passages
              that contain a gold alias are always kept, so the evidence stays);
  "paraphrase" selection pairs over a paraphrase of the question from the LLM client.
- balancing internal-wins against external-wins happens when the file is read for training
  (`training_pairs`), so the JSONL keeps every pair and the balance is reproducible.

File layout: pair rows `{"type": "pair", "qid", "kind", "augment", "prompt", "chosen",
"rejected", "winner"}`, then one `{"type": "question", "qid", ...}` row that marks the question
finished. Questions are processed `chunk_size` at a time and each chunk is appended and flushed
once its generation has finished; a rerun drops rows of unfinished questions (and a torn last
line) and continues with the rest. A generator failure mid-build keeps every finished row.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxmethods.eval.qa import contains_match
from jaxmethods.methods.selfselect.pipeline import Generator, QAItem, clean_answer
from jaxmethods.methods.selfselect.prompts import PromptConfig, Shot, as_response, render

KINDS = ("gen_closed_book", "gen_rag", "selection")
PARAPHRASE_PROMPT = (
    "Rewrite the question with different words, keeping its meaning. Output only the new "
    "question.\nQuestion: {question}\nRewritten question:"
)


@dataclass(frozen=True)
class RGPConfig:
    """How the RGP pairs are built (see the module docstring).

    num_samples: closed-book and RAG answers sampled per question; temperature: their sampling
    temperature (> 0); max_pairs: distinct pairs kept per question and kind; chunk_size:
    questions per flushed chunk; passage_variants: extra selection/RAG pairs over a random
    subset (`min_passages`..k) in a shuffled order (0 = off); paraphrase_prompt: the request
    sent to the LLM client.
    """

    num_samples: int = 4
    temperature: float = 1.0
    max_pairs: int = 2
    chunk_size: int = 64
    generation_pairs: bool = True
    selection_pairs: bool = True
    order_swap: bool = True
    passage_variants: int = 0
    min_passages: int = 1
    shuffle_passages: bool = True
    paraphrase: bool = False
    paraphrase_prompt: str = PARAPHRASE_PROMPT
    balance: bool = True
    seed: int = 0


def _pairs(rng, correct: list[str], wrong: list[str], limit: int) -> list[tuple[str, str]]:
    """Up to `limit` distinct (correct, wrong) answer pairs, in random order."""
    c, w = sorted(set(correct)), sorted(set(wrong))
    all_pairs = [(a, b) for a in c for b in w]
    order = rng.permutation(len(all_pairs))[:limit]
    return [all_pairs[i] for i in sorted(order)]


def _passage_variant(rng, item: QAItem, cfg: RGPConfig) -> list[tuple[str, str]]:
    keep = [p for p in item.passages if contains_match(p[1], item.answers)]
    rest = [p for p in item.passages if not contains_match(p[1], item.answers)]
    n_total = int(rng.integers(max(cfg.min_passages, len(keep)), len(item.passages) + 1))
    extra = [rest[i] for i in sorted(rng.permutation(len(rest))[: max(n_total - len(keep), 0)])]
    chosen = keep + extra if cfg.shuffle_passages else [p for p in item.passages
                                                        if p in keep or p in extra]  # fmt: skip
    if cfg.shuffle_passages:
        chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    return chosen


def build_question_rows(
    item: QAItem,
    internal: Sequence[str],
    external: Sequence[str],
    cfg: RGPConfig,
    prompts: PromptConfig,
    *,
    rng: np.random.Generator,
    paraphrase: str | None = None,
    shots: Sequence[Shot] = (),
) -> list[dict]:
    """The pair rows of one question from its sampled answers, then its "question" row."""
    internal = [clean_answer(a) for a in internal]
    external = [clean_answer(a) for a in external]
    ok_i = [contains_match(a, item.answers) for a in internal]
    ok_e = [contains_match(a, item.answers) for a in external]
    rows: list[dict] = []

    def add(kind, augment, prompt, chosen, rejected, winner=""):
        rows.append({"type": "pair", "qid": item.id, "kind": kind, "augment": augment,
                     "prompt": prompt, "chosen": as_response(chosen),
                     "rejected": as_response(rejected), "winner": winner})  # fmt: skip

    cb_shots = [Shot(s.question, s.answer) for s in shots]
    rag_shots = [Shot(s.question, s.answer, s.passages) for s in shots]
    if cfg.generation_pairs:
        good = [a for a, ok in zip(internal, ok_i) if ok]
        bad = [a for a, ok in zip(internal, ok_i) if not ok]
        prompt = render("closed_book", prompts, item.question, shots=cb_shots)
        for c, r in _pairs(rng, good, bad, cfg.max_pairs):
            add("gen_closed_book", "none", prompt, c, r)
        good = [a for a, ok in zip(external, ok_e) if ok]
        bad = [a for a, ok in zip(external, ok_e) if not ok]
        for c, r in _pairs(rng, good, bad, cfg.max_pairs):
            add("gen_rag", "none", render("rag", prompts, item.question, item.passages,
                                          shots=rag_shots), c, r)  # fmt: skip
            for _ in range(cfg.passage_variants):
                ps = _passage_variant(rng, item, cfg)
                add("gen_rag", "passages", render("rag", prompts, item.question, ps,
                                                  shots=rag_shots), c, r)  # fmt: skip
    if cfg.selection_pairs:
        seen, candidates = set(), []
        for a, b, oa, ob in zip(internal, external, ok_i, ok_e):
            if oa != ob and (a, b) not in seen:
                seen.add((a, b))
                candidates.append((a, b, "internal" if oa else "external"))
        picked = rng.permutation(len(candidates))[: cfg.max_pairs]
        for a, b, winner in [candidates[i] for i in sorted(picked)]:
            chosen, rejected = (a, b) if winner == "internal" else (b, a)
            variants = [(item.question, item.passages, [a, b], "none")]
            if cfg.order_swap:
                variants.append((item.question, item.passages, [b, a], "swap"))
            for _ in range(cfg.passage_variants):
                variants.append(
                    (item.question, _passage_variant(rng, item, cfg), [a, b], "passages")
                )
            if paraphrase:
                variants.append((paraphrase, item.passages, [a, b], "paraphrase"))
            for question, passages, order, augment in variants:
                prompt = render("select", prompts, question, passages, order, shots=shots)
                add("selection", augment, prompt, chosen, rejected, winner)
    rows.append({
        "type": "question", "qid": item.id, "num_passages": len(item.passages),
        "internal_correct": int(sum(ok_i)), "external_correct": int(sum(ok_e)),
        "samples": len(internal), "paraphrased": bool(paraphrase),
    })  # fmt: skip
    return rows


def read_rgp(path: str) -> tuple[list[dict], bool]:
    """(rows of finished questions, whether the file needed repair: a torn last line or rows
    of an unfinished question). Other malformed lines raise ValueError naming file and line."""
    if not os.path.exists(path):
        return [], False
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    rows, repaired = [], False
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if lineno == len(lines):  # the torn last line of an interrupted write
                repaired = True
                continue
            raise ValueError(f"{path}:{lineno}: malformed JSON in the RGP file") from None
    done = {r["qid"] for r in rows if r.get("type") == "question"}
    kept = [r for r in rows if r["qid"] in done]
    return kept, repaired or len(kept) != len(rows)


def build_rgp(
    path: str,
    items: Sequence[QAItem],
    generate_fn: Generator,
    prompts: PromptConfig,
    cfg: RGPConfig,
    *,
    paraphrase_fn: Callable[[Sequence[str]], list[str]] | None = None,
    shots: Sequence[Shot] = (),
    log: Callable[[str], Any] = print,
) -> list[dict]:
    """Builds (or continues) the RGP JSONL at `path`; returns all its rows.

    Chunk c holds questions [c * chunk_size, (c + 1) * chunk_size) and samples with seed
    `cfg.seed + c`, so a rerun regenerates an interrupted chunk identically.
    """
    if cfg.temperature <= 0:
        raise ValueError(f"config.rgp.temperature must be > 0 to sample, got {cfg.temperature}")
    if cfg.paraphrase and paraphrase_fn is None:
        raise ValueError("config.rgp.paraphrase needs an LLM client (config.paraphrase_llm)")
    rows, repaired = read_rgp(path)
    if repaired:  # drop torn / unfinished rows before appending
        _rewrite(path, rows)
    done = {r["qid"] for r in rows if r["type"] == "question"}
    if done:
        log(f"RGP: resuming {path}: {len(done)} of {len(items)} questions already done")
    cb_shots = [Shot(s.question, s.answer) for s in shots]
    rag_shots = [Shot(s.question, s.answer, s.passages) for s in shots]
    n = cfg.num_samples
    for c, start in enumerate(range(0, len(items), cfg.chunk_size)):
        todo = [it for it in items[start : start + cfg.chunk_size] if it.id not in done]
        if not todo:
            continue
        seed = cfg.seed + c
        try:
            internal = generate_fn(
                [render("closed_book", prompts, it.question, shots=cb_shots)
                 for it in todo for _ in range(n)],
                temperature=cfg.temperature, seed=seed,
            )  # fmt: skip
            external = generate_fn(
                [render("rag", prompts, it.question, it.passages, shots=rag_shots)
                 for it in todo for _ in range(n)],
                temperature=cfg.temperature, seed=seed + 7919,
            )  # fmt: skip
            para = paraphrase_fn([it.question for it in todo]) if cfg.paraphrase else None
        except Exception as e:
            raise RuntimeError(
                f"RGP build stopped in chunk {c} (questions {start}..{start + len(todo) - 1}): "
                f"{type(e).__name__}: {e}. The {len(done)} finished questions are kept in "
                f"{path}; rerun to continue."
            ) from e
        rng = np.random.default_rng([cfg.seed, c])
        new = []
        for j, it in enumerate(todo):
            p = clean_answer(para[j]) if para is not None else None
            new += build_question_rows(
                it, internal[j * n : (j + 1) * n], external[j * n : (j + 1) * n], cfg, prompts,
                rng=rng, paraphrase=p or None, shots=shots,
            )  # fmt: skip
        _append(path, new)
        rows += new
        done |= {it.id for it in todo}
    return rows


def _append(path: str, rows: Sequence[dict]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        f.flush()
        os.fsync(f.fileno())


def _rewrite(path: str, rows: Sequence[dict]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    os.replace(tmp, path)


def training_pairs(rows: Sequence[dict], cfg: RGPConfig) -> tuple[list[dict], dict[str, int]]:
    """The pairs DPO trains on and the stats table's counts.

    With `cfg.balance`, selection pairs of the more frequent winner ("internal" or "external")
    are subsampled (by question, seeded) until both sides have as many pairs; counted as
    `balance_dropped`.
    """
    pairs = [r for r in rows if r["type"] == "pair"]
    questions = [r for r in rows if r["type"] == "question"]
    stats = Counter()
    stats["questions"] = len(questions)
    stats["empty_retrieval"] = sum(1 for q in questions if q["num_passages"] == 0)
    stats["paraphrased_questions"] = sum(1 for q in questions if q.get("paraphrased"))
    for r in pairs:
        stats[f"pairs/{r['kind']}"] += 1
        stats[f"augment/{r['augment']}"] += 1
        if r["kind"] == "selection":
            stats[f"selection/{r['winner']}_wins"] += 1
    keep = pairs
    stats["balance_dropped"] = 0
    if cfg.balance:
        sel = {w: [r for r in pairs if r["kind"] == "selection" and r["winner"] == w]
               for w in ("internal", "external")}  # fmt: skip
        small = min(len(v) for v in sel.values())
        big = max(sel, key=lambda w: len(sel[w]))
        rng = np.random.default_rng(cfg.seed)
        drop = set()
        if len(sel[big]) > small:
            qids = sorted({r["qid"] for r in sel[big]})
            count = Counter(r["qid"] for r in sel[big])
            left = len(sel[big])
            for i in rng.permutation(len(qids)):  # drop whole questions first
                if left - count[qids[i]] < small:
                    continue
                drop.add(qids[i])
                left -= count[qids[i]]
            extra = [j for j, r in enumerate(sel[big]) if r["qid"] not in drop]
            cut = {id(sel[big][j]) for j in extra[: left - small]}
            keep = [r for r in pairs if not (r["kind"] == "selection" and r["winner"] == big
                                             and (r["qid"] in drop or id(r) in cut))]  # fmt: skip
            stats["balance_dropped"] = len(pairs) - len(keep)
    stats["training_pairs"] = len(keep)
    return keep, dict(stats)


def stats_table(stats: dict[str, int]) -> str:
    """The RGP stats as a markdown table (one row per counter)."""
    lines = ["| RGP | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(stats.items())]
    return "\n".join(lines)
