"""FinTMMBench end to end: corpus -> temporal KG + graph store + entity index -> every system's
retrieval and generation on the questions -> one table (`report.py`).

Systems (`config.systems`): "bm25" and "naive_rag" (chunked raw records), "tmmhybridrag" and
its ablations "-vec", "-graph", "-raw", "-temporal" (one KG, graph store and index shared).
Outputs in the workdir: `summary.json` (flat metrics, tables, artifacts), `predictions.json`
(per question and system: prediction, gold, retrieved source uuids), the per-modality bar chart.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from jaxmethods.methods.fintmm.config import FinTMMConfig, from_config_dict
from jaxmethods.methods.fintmm.generate import LLMGenerator
from jaxmethods.methods.fintmm.keywords import Keywords, LLMKeywords, RuleKeywords
from jaxmethods.methods.fintmm.records import Corpus, QAItem
from jaxmethods.methods.fintmm.report import SystemRun, build_report
from jaxmethods.methods.fintmm.retrieve import (
    BM25Baseline,
    HybridOptions,
    NaiveRAG,
    TMMHybridRetriever,
)
from jaxmethods.methods.fintmm.template_reader import TemplateGenerator
from jaxmethods.retrieval.hashing_encoder import HashingEncoder
from jaxmethods.train import make_mesh, make_summary
from jaxmethods.train.metrics import write_json_atomic

log = logging.getLogger(__name__)

ABLATIONS = {
    "tmmhybridrag": {},
    "-vec": {"use_vec": False},
    "-graph": {"use_graph": False},
    "-raw": {"use_raw": False},
    "-temporal": {"use_temporal": False},
}


def load_corpus(cfg: FinTMMConfig, workdir: str) -> Corpus:
    """The benchmark clone (source "repo") or the synthetic corpus written under
    `<workdir>/data` (reused when it is already there)."""
    from jaxmethods.methods.fintmm.loaders import load_corpus as load

    d = cfg.data
    if d.source == "repo":
        return load(d.root)
    root = os.path.join(workdir, "data")
    if os.path.isfile(os.path.join(root, "QA.json")):
        return load(root)
    from jaxmethods.methods.fintmm.synthetic import make_synthetic_corpus

    return make_synthetic_corpus(root, seed=d.seed, tickers=d.tickers, start=d.start, end=d.end,
                                 news_per_company=d.news_per_company,
                                 qa_per_kind=d.qa_per_kind, charts=d.charts,
                                 full_statements=d.full_statements)  # fmt: skip


def select_questions(qa: Sequence[QAItem], cfg: FinTMMConfig) -> list[QAItem]:
    tasks = {t for t in re.split(r"[,+\s]+", cfg.data.tasks) if t}
    out = [q for q in qa if not tasks or q.task in tasks]
    if cfg.data.max_questions >= 0:
        out = out[: cfg.data.max_questions]
    if not out:
        raise ValueError(
            f"no questions to evaluate (config.data.tasks={cfg.data.tasks!r}, "
            f"max_questions={cfg.data.max_questions}, {len(qa)} in the corpus)"
        )
    return out


class OpenAIEmbedder:
    """`TextEncoder` over an OpenAI-compatible embeddings endpoint (text-embedding-3-small in
    the paper); batches of `batch_size` texts per request."""

    def __init__(self, model: str, *, base_url: str = "", api_key_env: str = "OPENAI_API_KEY"):
        import openai

        key = os.environ.get(api_key_env, "") if api_key_env else "EMPTY"
        if api_key_env and not key:
            raise ValueError(f"config.index.api_key_env: ${api_key_env} is not set")
        self.client = openai.OpenAI(api_key=key, base_url=base_url or None)
        self.model, self._dim = model, None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self.embed(["dimension probe"], 1).shape[1]
        return self._dim

    def embed(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        rows = []
        for s in range(0, len(texts), max(1, batch_size)):
            res = self.client.embeddings.create(
                model=self.model, input=list(texts[s : s + batch_size])
            )
            rows += [d.embedding for d in sorted(res.data, key=lambda d: d.index)]
        return np.asarray(rows, np.float32).reshape(len(texts), -1)


def make_encoder(cfg: FinTMMConfig, mesh):
    enc = cfg.index.encoder
    if enc == "hashing":
        return HashingEncoder(cfg.index.dim, split=cfg.index.tokens)
    if enc.startswith("openai:"):
        return OpenAIEmbedder(enc.split(":", 1)[1], base_url=cfg.index.base_url,
                              api_key_env=cfg.index.api_key_env)  # fmt: skip
    from jaxmethods.models.text_encoder import TextEncoder

    return TextEncoder.from_pretrained(enc, mesh=mesh)


class CachedEncoder:
    """Wraps an encoder: passage embeddings are stored in `<folder>/<sha256 of texts>.npy`, so
    a rerun (or the next system) never embeds the same corpus twice."""

    def __init__(self, encoder, folder: str):
        self.encoder, self.folder = encoder, folder
        os.makedirs(folder, exist_ok=True)

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def _call(self, name: str, texts: Sequence[str], batch_size: int) -> np.ndarray:
        fn = getattr(self.encoder, name, None) or self.encoder.embed
        return np.asarray(fn(list(texts), batch_size), np.float32)

    def embed_passages(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        h = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:24]
        path = os.path.join(self.folder, f"{h}.npy")
        if os.path.isfile(path):
            return np.load(path)
        out = self._call("embed_passages", texts, batch_size)
        np.save(path, out)
        return out

    def embed_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self._call("embed_queries", texts, batch_size)

    embed = embed_passages


def make_graph_store(cfg: FinTMMConfig, workdir: str):
    from jaxmethods.methods.fintmm import graph_store as gs

    kind = cfg.kg.graph_store
    if kind == "memory":
        return gs.InMemoryGraphStore()
    if kind == "kuzu":
        return gs.KuzuGraphStore(os.path.join(workdir, "kg.kuzu"))
    return gs.Neo4jGraphStore(cfg.kg.neo4j_uri, cfg.kg.neo4j_user, cfg.kg.neo4j_password_env)


def build_knowledge(cfg: FinTMMConfig, corpus: Corpus, workdir: str):
    """(kg, KGStats) with the configured news extractor and chart summarizer."""
    from jaxmethods.llm import make_client
    from jaxmethods.methods.fintmm import extract
    from jaxmethods.methods.fintmm.kg import build_kg

    cache = os.path.join(workdir, "llm_cache")
    if cfg.kg.extractor == "llm":
        extractor = extract.LLMExtractor(make_client(_with_cache(cfg.kg.llm, cache)))
    else:
        extractor = extract.RuleExtractor()
    if cfg.kg.chart_llm.model:
        client = make_client(_with_cache(cfg.kg.chart_llm, cache))
        charts = extract.MLLMChartSummarizer(client, corpus.companies)
    else:
        charts = extract.PriceChartSummarizer(corpus.data, corpus.companies)
    return build_kg(corpus, extractor, chart_summarizer=charts)


def _with_cache(llm, cache_dir: str):
    """An LLM config with the run's cache folder when it names none."""
    import dataclasses

    return llm if llm.cache_dir else dataclasses.replace(llm, cache_dir=cache_dir)


def _memo(fn: Callable[[Sequence[str]], list[Keywords]]):
    """Keywords computed once per question and shared by the ablations."""
    seen: dict[str, Keywords] = {}

    def call(questions: Sequence[str]) -> list[Keywords]:
        todo = [q for q in dict.fromkeys(questions) if q not in seen]
        if todo:
            seen.update(zip(todo, fn(todo)))
        return [seen[q] for q in questions]

    return call


def make_generator(cfg: FinTMMConfig, corpus: Corpus, indicators: list[str], workdir: str):
    if cfg.generation.backend == "template":
        return TemplateGenerator(corpus.companies, indicators)
    from jaxmethods.llm import make_client

    client = make_client(_with_cache(cfg.generation.llm, os.path.join(workdir, "llm_cache")))
    r = cfg.retrieval
    return LLMGenerator(client, companies=corpus.companies, max_tokens=cfg.generation.max_tokens,
                        max_items=r.max_items, max_raw=r.max_raw,
                        max_images=cfg.generation.max_images)  # fmt: skip


def run(config, workdir: str) -> dict:
    t_start = time.perf_counter()
    cfg = from_config_dict(config)
    os.makedirs(workdir, exist_ok=True)
    mesh = make_mesh(cfg.mesh)
    corpus = load_corpus(cfg, workdir)
    questions = select_questions(corpus.qa, cfg)
    texts = [q.question for q in questions]
    by_uuid = corpus.by_uuid()
    indicators = sorted({d.indicator for d in corpus.data})
    metrics: dict[str, float] = {
        "data/questions": len(questions),
        "data/records": len(by_uuid),
        "time/load_s": time.perf_counter() - t_start,
    }
    encoder = make_encoder(cfg, mesh)
    if cfg.index.encoder != "hashing":
        encoder = CachedEncoder(encoder, os.path.join(workdir, "embeddings"))
    systems = cfg.system_list
    r = cfg.retrieval
    kg = graph = index = keywords = None
    if any(s in ABLATIONS for s in systems):
        t = time.perf_counter()
        kg, stats = build_knowledge(cfg, corpus, workdir)
        metrics |= {k: float(v) for k, v in stats.flat().items()}
        graph = make_graph_store(cfg, workdir)
        graph.write(kg)
        from jaxmethods.methods.fintmm.vector_store import EntityIndex

        index = EntityIndex.build(kg, encoder, mesh=mesh, batch_size=cfg.index.batch_size)
        rule = RuleKeywords(corpus.companies, indicators)
        if r.keywords == "llm":
            from jaxmethods.llm import make_client

            client = make_client(_with_cache(r.keywords_llm, os.path.join(workdir, "llm_cache")))
            keywords = _memo(LLMKeywords(client, fallback=rule.one))
        else:
            keywords = _memo(rule)
        metrics["time/index_s"] = time.perf_counter() - t
    generator = make_generator(cfg, corpus, indicators, workdir)
    tasks = [q.task for q in questions]
    runs: dict[str, SystemRun] = {}
    for name in systems:
        t = time.perf_counter()
        common = dict(max_raw=r.max_raw, rows_per_chunk=r.rows_per_chunk, budget=r.budget())
        if name == "bm25":
            retriever = BM25Baseline(corpus, by_uuid, k=r.baseline_k, **common)
        elif name == "naive_rag":
            retriever = NaiveRAG(corpus, by_uuid, encoder, k=r.baseline_k, mesh=mesh,
                                 batch_size=cfg.index.batch_size, **common)  # fmt: skip
        else:
            opts = HybridOptions(k=r.k, hops=r.hops, graph_limit=r.graph_limit,
                                 max_items=r.max_items, max_raw=r.max_raw, budget=r.budget(),
                                 query_mode=r.query_mode, **ABLATIONS[name])  # fmt: skip
            retriever = TMMHybridRetriever(kg, index if opts.use_vec else None, graph, by_uuid,
                                           keywords, opts, companies=corpus.companies)  # fmt: skip
        retrieved = retriever.retrieve(texts)
        gens = generator(retrieved, tasks)
        runs[name] = SystemRun(name, [g.answer for g in gens], [x.sources() for x in retrieved],
                               time.perf_counter() - t)  # fmt: skip
        log.info("%s: %d questions in %.1fs", name, len(texts), runs[name].seconds)
    judge = None
    if cfg.judge.model:
        from jaxmethods.llm import make_client

        judge = make_client(_with_cache(cfg.judge, os.path.join(workdir, "llm_cache")))
    report = build_report(questions, runs, judge=judge, workdir=workdir if cfg.plot else None)
    metrics |= report.metrics
    metrics["time/total_s"] = time.perf_counter() - t_start
    if jax.process_index() == 0:
        print(report.text)
        write_json_atomic(os.path.join(workdir, "predictions.json"), _predictions(questions, runs))
    return make_summary(metrics, tables=report.tables,
                        artifacts={**report.artifacts,
                                   "predictions": os.path.join(workdir, "predictions.json")})  # fmt: skip


def _predictions(questions: Sequence[QAItem], runs: dict[str, SystemRun]) -> dict:
    rows = []
    for i, q in enumerate(questions):
        row = {"qid": q.qid, "question": q.question, "answer": q.answer, "task": q.task,
               "modality": q.modality, "time": q.time.label() if q.time else None,
               "sources": list(q.sources)}  # fmt: skip
        for name, run_ in runs.items():
            got = run_.sources[i]
            row[name] = {"prediction": run_.predictions[i],
                         "gold_sources_retrieved": sorted(set(q.sources) & got)}  # fmt: skip
        rows.append(row)
    return {"systems": list(runs), "questions": rows}
