"""TMMHybridRAG retrieval and the BM25 / Naive RAG baselines.

TMMHybridRAG (paper §3, "Retrieval"), per question:

    kw     = keywords(question)                          # LightRAG-style low/high level
                                                         # (-temporal: times as written)
    window = question_window(question)                   # None under -temporal
    D      = ∪_q topK_dense(q, window)  for q in kw.queries()   # window = range mask in search
    G      = graph.expand(kw ∩ KG names ∪ names(D), window=window, hops)
    items  = budget(inside_first(G_named, D, G_dense; window))  # in-window first; tokens
    raw    = budget(source_ids(items) -> Corpus records)  # datums, news, charts; tokens

The ablations switch one part off: `use_vec` (-vec: no dense hits, the graph starts from the
keywords alone), `use_graph` (-graph: dense hits only), `use_raw` (-raw: entity/relation
descriptions only, no raw records), `use_temporal` (-temporal: the whole temporal module off:
no window anywhere, and the keywords keep the question's time expressions as written instead
of the parser's normalised keys, `Keywords.without_time_parsing`).

Baselines index text chunks of the raw records (`record_chunks`: one chunk per price day,
per company table and period, per news item, per chart) and return the records of the top
chunks: BM25 through `jaxmethods.retrieval.BM25Retriever` (bm25s), Naive RAG through
`jaxmethods.retrieval.DenseIndex` (cosine over the same encoder as the entity index; no graph,
no temporal window), within the same raw-token budget (`context_budget.ContextBudget`).
"""

from __future__ import annotations

import abc
import dataclasses
import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from jaxmethods.methods.fintmm.context_budget import ContextBudget
from jaxmethods.methods.fintmm.formulas import fmt_number
from jaxmethods.methods.fintmm.keywords import Keywords, question_window
from jaxmethods.methods.fintmm.kg import Entity, Relation, TemporalKG
from jaxmethods.methods.fintmm.records import Chart, Corpus, Datum, NewsItem, TimeSpan
from jaxmethods.retrieval.docstore import DocStore, Passage

Record = Datum | NewsItem | Chart
Item = Entity | Relation

__all__ = [
    "BM25Baseline",
    "HybridOptions",
    "NaiveRAG",
    "Retrieved",
    "TMMHybridRetriever",
    "inside_first",
    "record_chunks",
    "render_record",
]


@dataclasses.dataclass
class Retrieved:
    """What one question retrieved.

    Attributes:
      question: the question text.
      keywords: its keywords (empty for the baselines).
      window: the time window used in the search (None: none / -temporal / baselines).
      items: KG entities and relations, dense hits first (best first), then graph expansion.
      raw: source records of `items` (or of the baseline's chunks), deduplicated, in order.
      origin: item key -> "dense" | "graph".
    """

    question: str
    keywords: Keywords = dataclasses.field(default_factory=Keywords)
    window: TimeSpan | None = None
    items: list[Item] = dataclasses.field(default_factory=list)
    raw: list[Record] = dataclasses.field(default_factory=list)
    origin: dict[str, str] = dataclasses.field(default_factory=dict)

    def sources(self) -> set[str]:
        """uuids of the raw records (for recall against `QAItem.sources`)."""
        return {r.uuid for r in self.raw}


@dataclasses.dataclass(frozen=True)
class HybridOptions:
    """k: dense top-K per keyword query (the paper does not report K); hops / graph_limit:
    graph expansion depth and most items it returns per question; max_items / max_raw: most
    KG items / raw records handed to the generator; budget: the generator's context in tokens
    (`context_budget.ContextBudget`; None = only the counts above), applied after them;
    query_mode: "joined" (LightRAG: one low-level and one high-level query) or "each" (one
    query per keyword)."""

    k: int = 10
    hops: int = 1
    graph_limit: int = 120
    max_items: int = 150
    max_raw: int = 150
    budget: ContextBudget | None = None
    query_mode: str = "joined"
    use_vec: bool = True
    use_graph: bool = True
    use_raw: bool = True
    use_temporal: bool = True


def _sources_to_records(
    groups: Sequence[Sequence[str]], by_uuid: Mapping[str, Record], limit: int
) -> list[Record]:
    out: dict[str, Record] = {}
    for ids in groups:
        for u in ids:
            rec = by_uuid.get(u)
            if rec is not None and u not in out:
                out[u] = rec
                if len(out) >= limit:
                    return list(out.values())
    return list(out.values())


class TMMHybridRetriever:
    """Dense ∪ graph retrieval over a temporal KG, then source ids -> raw records.

    Args:
      kg: the temporal KG (`kg.build_kg`).
      index: an `EntityIndex` (`search(queries, k, windows=None) -> [[(key, score)]]`), or None
        when `use_vec` is off.
      graph: a graph store (`expand(names, *, window, hops, limit) -> [Entity | Relation]`), or
        None when `use_graph` is off.
      by_uuid: `Corpus.by_uuid()`.
      keywords: questions -> `Keywords` (`RuleKeywords` or `LLMKeywords`).
      options: `HybridOptions`.
      companies: symbol -> company name (`Corpus.companies`; the chart lines the budget counts).
    """

    def __init__(
        self,
        kg: TemporalKG,
        index,
        graph,
        by_uuid: Mapping[str, Record],
        keywords: Callable[[Sequence[str]], list[Keywords]],
        options: HybridOptions = HybridOptions(),
        companies: Mapping[str, str] | None = None,
    ):
        if options.use_vec and index is None:
            raise ValueError("TMMHybridRetriever: use_vec needs an entity index")
        if options.use_graph and graph is None:
            raise ValueError("TMMHybridRetriever: use_graph needs a graph store")
        self.kg, self.index, self.graph, self.by_uuid = kg, index, graph, by_uuid
        self.keywords, self.options, self.companies = keywords, options, companies
        self._relations = kg.relation_map()
        self._names = {name.lower(): name for name in kg.entities}

    def _item(self, key: str) -> Item | None:
        return self.kg.entities.get(key) or self._relations.get(key)

    def _dense(self, kws: list[Keywords], windows: list[TimeSpan | None]) -> list[list[Item]]:
        """Per question: the union of every keyword query's top-K, best score first."""
        o = self.options
        queries, owner = [], []
        for i, kw in enumerate(kws):
            for q in kw.queries(o.query_mode):
                queries.append(q)
                owner.append(i)
        best: list[dict[str, float]] = [{} for _ in kws]
        if queries:
            hits = self.index.search(queries, o.k, windows=[windows[i] for i in owner])
            for i, row in zip(owner, hits):
                for key, score in row:
                    if score > best[i].get(key, -np.inf):
                        best[i][key] = score
        out = []
        for scores in best:
            keys = sorted(scores, key=lambda key: -scores[key])
            out.append([it for it in map(self._item, keys) if it is not None])
        return out

    def _expand(self, seeds: list[str], window: TimeSpan | None) -> list[Item]:
        if not seeds:
            return []
        o = self.options
        return self.graph.expand(seeds, window=window, hops=o.hops, limit=o.graph_limit)

    def retrieve(self, questions: Sequence[str]) -> list[Retrieved]:
        """Per question, items in this order: the graph neighbourhood of the entities the
        keywords name (highest precision), the dense hits (best first), then the graph
        neighbourhood of the dense hits; raw records follow the item order."""
        o = self.options
        kws = self.keywords(list(questions))
        if not o.use_temporal:  # no temporal parser: the times as written, not normalised
            kws = [kw.without_time_parsing() for kw in kws]
        windows = [question_window(q) if o.use_temporal else None for q in questions]
        dense = self._dense(kws, windows) if o.use_vec else [[] for _ in questions]
        out = []
        for q, kw, window, hits in zip(questions, kws, windows, dense):
            named = [self._names[k.lower()] for k in kw.low + kw.high if k.lower() in self._names]
            named = list(dict.fromkeys(named))
            hit_names = []
            for it in hits:
                hit_names += [it.name] if isinstance(it, Entity) else [it.src, it.dst]
            hit_names = [n for n in dict.fromkeys(hit_names) if n not in named]
            parts = [("dense", hits)]
            if o.use_graph:
                parts = [("graph", self._expand(named, window)), ("dense", hits),
                         ("graph", self._expand(hit_names, window))]  # fmt: skip
            origin: dict[str, str] = {}
            items: list[Item] = []
            for source, part in parts:
                for it in part:
                    if _key(it) not in origin:
                        origin[_key(it)] = source
                        items.append(it)
            if window is not None:
                items = inside_first(items, window)
            items = items[: o.max_items]
            if o.budget is not None:
                items = o.budget.items(items)
            origin = {_key(it): origin[_key(it)] for it in items}
            raw = []
            if o.use_raw:
                raw = _sources_to_records([it.source_ids for it in items], self.by_uuid, o.max_raw)
                if o.budget is not None:
                    raw = o.budget.raw(raw, self._render)
            out.append(Retrieved(q, kw, window, items, raw, origin))
        return out

    def _render(self, rec: Record) -> str:
        return "- " + render_record(rec, self.companies)


def inside_first(items: Sequence[Item], window: TimeSpan) -> list[Item]:
    """`items` with those whose time lies inside `window` (or that have no time: companies)
    first and those that only overlap it (a coarser period containing it: the year's statements
    for a quarter question, the quarter's for a one-day question) after; each group keeps its
    order. Part of the temporal module: what the context budget keeps is the asked period
    first."""
    inside, around = [], []
    for it in items:
        t = it.time
        ok = t is None or (window.start <= t.start and t.end <= window.end)
        (inside if ok else around).append(it)
    return inside + around


def _key(item: Item) -> str:
    return item.name if isinstance(item, Entity) else item.key


# ---------------------------------------------------------------- raw records as text


def render_record(rec: Record, companies: Mapping[str, str] | None = None) -> str:
    """One record as a line of text (the generator prompt and the baselines' chunks). A chart
    is named by its PNG's file name, not its path: the workdir must not change what the
    baselines retrieve (its words hash into the encoder's buckets like any others)."""
    if isinstance(rec, Datum):
        where = rec.table or rec.source_type
        return (
            f"[{rec.uuid}] {rec.company} ({rec.symbol}) {where} {rec.interval} {rec.date} "
            f"({rec.time.label()}): {rec.indicator} = {fmt_number(rec.value)} {rec.unit}"
        )
    if isinstance(rec, NewsItem):
        who = ", ".join(f"{c} ({s})" for c, s in zip(rec.companies, rec.symbols))
        return f"[{rec.uuid}] News {rec.date} about {who}: {rec.title}. {rec.text}"
    name = (companies or {}).get(rec.symbol, rec.symbol)
    kind = "weekly" if rec.period.startswith("W") else "monthly"
    return (
        f"[{rec.uuid}] {name} ({rec.symbol}) {kind} candlestick chart {rec.year}-{rec.period} "
        f"({rec.time.start.isoformat()}..{rec.time.end.isoformat()}), image "
        f"{os.path.basename(rec.path) if rec.path else 'missing'}"
    )


def record_chunks(corpus: Corpus, *, rows_per_chunk: int = 1) -> tuple[DocStore, list[list[str]]]:
    """Text chunks of the raw corpus for the baselines: a "row" is a price day (all its
    indicators), a company's table for one period, a news item or a chart; `rows_per_chunk`
    consecutive rows (corpus order) make one chunk.

    Returns (doc store of the chunks, per chunk the uuids of its records).
    """
    if rows_per_chunk < 1:
        raise ValueError(f"record_chunks: rows_per_chunk must be >= 1, got {rows_per_chunk}")
    rows: dict[tuple, list[Datum]] = defaultdict(list)
    for d in corpus.data:
        rows[(d.source_type, d.symbol, d.table, d.interval, d.date)].append(d)
    lines: list[tuple[str, list[str]]] = []
    for (source, _, table, interval, date), ds in rows.items():
        head = f"{ds[0].company} ({ds[0].symbol}) {table or source} {interval} {date}:"
        body = "; ".join(f"{d.indicator} {fmt_number(d.value)} {d.unit}" for d in ds)
        lines.append((f"{head} {body}", [d.uuid for d in ds]))
    for rec in (*corpus.news, *corpus.charts):
        lines.append((render_record(rec, corpus.companies).split("] ", 1)[1], [rec.uuid]))
    passages, sources = [], []
    for start in range(0, len(lines), rows_per_chunk):
        group = lines[start : start + rows_per_chunk]
        passages.append(Passage(id=f"chunk{len(passages)}", text="\n".join(t for t, _ in group)))
        sources.append([u for _, us in group for u in us])
    return DocStore(passages), sources


class _ChunkBaseline(abc.ABC):
    """Shared by the baselines: top-k chunk rows -> their records."""

    def __init__(self, corpus: Corpus, by_uuid: Mapping[str, Record], *, k: int, max_raw: int,
                 rows_per_chunk: int, budget: ContextBudget | None = None):  # fmt: skip
        self.docs, self.sources = record_chunks(corpus, rows_per_chunk=rows_per_chunk)
        self.by_uuid, self.k, self.max_raw = by_uuid, k, max_raw
        self.budget, self.companies = budget, corpus.companies

    @abc.abstractmethod
    def _search(self, questions: Sequence[str]) -> np.ndarray:
        """[Q, k] chunk rows per question, best first, -1 for empty slots."""

    def retrieve(self, questions: Sequence[str]) -> list[Retrieved]:
        indices = self._search(list(questions))
        out = []
        for q, row in zip(questions, indices):
            groups = [self.sources[i] for i in row if i >= 0]
            raw = _sources_to_records(groups, self.by_uuid, self.max_raw)
            if self.budget is not None:
                raw = self.budget.raw(raw, lambda rec: "- " + render_record(rec, self.companies))
            out.append(Retrieved(q, raw=raw))
        return out


class BM25Baseline(_ChunkBaseline):
    """BM25 (bm25s, English stopwords) over `record_chunks`; the question is the query."""

    def __init__(self, corpus: Corpus, by_uuid: Mapping[str, Record], *, k: int = 10,
                 max_raw: int = 40, rows_per_chunk: int = 1,
                 budget: ContextBudget | None = None):  # fmt: skip
        super().__init__(corpus, by_uuid, k=k, max_raw=max_raw, rows_per_chunk=rows_per_chunk,
                         budget=budget)  # fmt: skip
        from jaxmethods.retrieval.bm25 import BM25Retriever

        self.bm25 = BM25Retriever(self.docs)

    def _search(self, questions: Sequence[str]) -> np.ndarray:
        return self.bm25.search(questions, self.k)[1]


class NaiveRAG(_ChunkBaseline):
    """Chunks + dense retrieval: `encoder` embeds the chunks into a cosine `DenseIndex` and the
    question is embedded as the query (no keywords, no graph, no time window)."""

    def __init__(self, corpus: Corpus, by_uuid: Mapping[str, Record], encoder, *, k: int = 10,
                 max_raw: int = 40, rows_per_chunk: int = 1, mesh=None,
                 batch_size: int = 256, budget: ContextBudget | None = None):  # fmt: skip
        super().__init__(corpus, by_uuid, k=k, max_raw=max_raw, rows_per_chunk=rows_per_chunk,
                         budget=budget)  # fmt: skip
        from jaxmethods.retrieval.dense import DenseIndex

        self.encoder, self.batch_size = encoder, batch_size
        emb = _embed(encoder, self.docs.texts(), batch_size, "passages")
        self.index = DenseIndex(emb, metric="cosine", mesh=mesh, docs=self.docs)

    def _search(self, questions: Sequence[str]) -> np.ndarray:
        q = _embed(self.encoder, questions, self.batch_size, "queries")
        return self.index.search(q, self.k)[1]


def _embed(encoder, texts: Sequence[str], batch_size: int, role: str) -> np.ndarray:
    fn = getattr(encoder, f"embed_{role}", None) or encoder.embed
    return np.asarray(fn(list(texts), batch_size), dtype=np.float32)
