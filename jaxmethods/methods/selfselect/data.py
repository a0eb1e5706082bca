"""Questions, retrieval and few-shot demonstrations of a Self-Selection run, from the shared
services (`jaxmethods.data.open_qa`, `jaxmethods.retrieval`); nothing here is a retriever."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jaxmethods.data.open_qa import load_open_qa
from jaxmethods.methods.selfselect.config import RetrievalConfig, SelfSelectConfig
from jaxmethods.methods.selfselect.pipeline import QAItem, retrieve
from jaxmethods.methods.selfselect.prompts import Shot


def load_questions(cfg: SelfSelectConfig) -> tuple[list[dict], list[dict]]:
    """(train, test) questions `{"id", "question", "answers"}` of NQ-open / TriviaQA."""
    d = cfg.data

    def rows(source: str, split: str, limit: int) -> list[dict]:
        qs = load_open_qa(d.source, source, split, limit)
        return [{"id": q.id, "question": q.question, "answers": list(q.answers)} for q in qs]

    return rows(d.train, d.train_split, d.max_train), rows(d.test, d.test_split, d.max_test)


def build_retriever(r: RetrievalConfig, split: str, mesh: Any = None) -> Any:
    """The shared retriever `r` describes (for "cached", the file of `split`)."""
    if r.kind == "cached":
        from jaxmethods.retrieval.cache import CachedRetriever

        return CachedRetriever(r.cached_train if split == "train" else r.cached_test)
    from jaxmethods.retrieval.docstore import DocStore
    from jaxmethods.retrieval.formats import read_beir_corpus, read_dpr_tsv

    if r.kind == "bm25":
        from jaxmethods.retrieval.bm25 import BM25Retriever

        if r.index:
            return BM25Retriever.load(r.index)
        reader = read_beir_corpus if r.corpus.endswith(".jsonl") else read_dpr_tsv
        return BM25Retriever(DocStore(reader(r.corpus)))
    from jaxmethods.models.text_encoder import TextEncoder
    from jaxmethods.retrieval.dense import DenseIndex
    from jaxmethods.retrieval.dense_retriever import DenseRetriever, build_dense_index

    encoder = TextEncoder.from_pretrained(r.encoder, mesh=mesh)
    if r.index:
        return DenseRetriever(encoder, DenseIndex.load(r.index, mesh=mesh),
                              batch_size=r.embed_batch_size)  # fmt: skip
    reader = read_beir_corpus if r.corpus.endswith(".jsonl") else read_dpr_tsv
    docs = DocStore(reader(r.corpus))
    index = build_dense_index(docs, encoder, batch_size=r.embed_batch_size, mesh=mesh)
    return DenseRetriever(encoder, index, batch_size=r.embed_batch_size)


def make_items(questions: Sequence[dict], retriever: Any, k: int) -> list[QAItem]:
    """Questions with their top-k passages (a question may get none: an empty retrieval)."""
    passages = retrieve(retriever, [q["question"] for q in questions], k)
    return [QAItem(q["id"], q["question"], list(q["answers"]), ps)
            for q, ps in zip(questions, passages)]  # fmt: skip


def few_shot(items: Sequence[QAItem], n: int) -> tuple[list[Shot], list[QAItem]]:
    """The first `n` train items as demonstrations (gold answer; the selection shot pairs it
    with the next shot's answer as the wrong candidate) and the remaining train items."""
    if n == 0:
        return [], list(items)
    if n > len(items) - 1:
        raise ValueError(f"config.prompts.num_shots={n} needs more than {n} train questions")
    shots = []
    for i, it in enumerate(items[:n]):
        wrong = items[i + 1].answers[0]
        cands = (it.answers[0], wrong) if i % 2 == 0 else (wrong, it.answers[0])
        shots.append(Shot(it.question, it.answers[0], tuple(it.passages), cands))
    return shots, list(items[n:])
