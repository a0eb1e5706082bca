"""`build_kg`: the temporal knowledge graph of TMMHybridRAG from a `Corpus`.

This module is the KG's public entry: `build_kg` runs the per-modality builders of
`kg_modalities` (statements, daily prices, news, charts) into one `KGBuilder`, and it re-exports
the KG types (`kg_types`: `Entity`, `Relation`, `TemporalKG` with save/load, `KGStats`) and the
entity names (`kg_names`), so every KG name imports from here.

    summarizer = PriceChartSummarizer(corpus.data, corpus.companies)
    kg, stats = build_kg(corpus, RuleExtractor(), chart_summarizer=summarizer)
    kg.entities["AAPL 2022-03-15"].time.label()   # "2022-03-15"
    kg.neighbors("AAPL 2022-03-15")               # [Relation(... next_trading_day ...), ...]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from jaxmethods.methods.fintmm.chart_summary import ChartSummarizer, PriceChartSummarizer
from jaxmethods.methods.fintmm.kg_modalities import (
    add_charts,
    add_news,
    add_prices,
    add_tables,
    group_data,
)
from jaxmethods.methods.fintmm.kg_names import (
    BALANCE_SHEET,
    CASH_FLOW,
    INCOME_STATEMENT,
    PRICE_ORDER,
    chart_entity_name,
    fmt_value,
    news_entity_name,
    price_entity_name,
    table_entity_name,
    table_of,
)
from jaxmethods.methods.fintmm.kg_types import (
    KG_FORMAT,
    Entity,
    KGBuilder,
    KGStats,
    Relation,
    TemporalKG,
)
from jaxmethods.methods.fintmm.news_extract import NewsExtractor, RuleExtractor
from jaxmethods.methods.fintmm.records import Chart, Corpus, Datum, NewsItem, TimeSpan

__all__ = [
    "BALANCE_SHEET",
    "CASH_FLOW",
    "INCOME_STATEMENT",
    "KG_FORMAT",
    "PRICE_ORDER",
    "Chart",
    "Corpus",
    "Datum",
    "Entity",
    "KGBuilder",
    "KGStats",
    "NewsItem",
    "Relation",
    "TemporalKG",
    "TimeSpan",
    "build_kg",
    "chart_entity_name",
    "fmt_value",
    "news_entity_name",
    "price_entity_name",
    "table_entity_name",
    "table_of",
]


def build_kg(
    corpus: Corpus,
    extractor: NewsExtractor | None = None,
    *,
    chart_summarizer: ChartSummarizer | None = None,
) -> tuple[TemporalKG, KGStats]:
    """The temporal KG of a corpus.

    Entities (every one with time, description and source uuids):
      company  `corpus.companies` names (plus any company a datum names), time None;
      table    one per (company, statement, period) over the FinancialTable data, described by
               its indicator rows, time = the period (quarter or year);
      price    one per (symbol, trading day) `f"{symbol} {date}"`, described by its OHLCV rows;
      news     one per news item `news_entity_name`, time = publication day; plus the
               extractor's entities (events, ...);
      chart    one per chart `f"{company} {weekly|monthly candlestick chart} {period}"`,
               described by `chart_summarizer` (default `PriceChartSummarizer`); a missing PNG
               keeps the entity without a summary (counted).
    Relations:
      next_trading_day  consecutive trading days of the same symbol (only days with data exist,
                        so weekends and holidays are skipped; never across symbols);
      reports / price_of / chart_of / mentions  company links of tables, price days, charts,
                        news; mentions  news -> every extracted entity;
      same_period       the statements of one company and period with each other, and a monthly
                        chart with the quarterly statements of the quarter it lies in;
      covers            chart -> each price day in its period;
      same_day          news -> the price day of a mentioned company on the publication date;
      plus the extractor's relations (about, co_mentioned, ...).
    Entities with the same name are merged (time = hull, descriptions joined, sources united).
    """
    extractor = RuleExtractor() if extractor is None else extractor
    stats = KGStats()
    b = KGBuilder()
    companies = dict(corpus.companies)
    for d in corpus.data:
        companies.setdefault(d.symbol, d.company)
    for symbol, name in sorted(companies.items()):
        b.entity(Entity(name, "company", None, f"{name}, stock ticker symbol {symbol}", ()))
    tables, prices = group_data(corpus.data)
    by_period = add_tables(b, tables, companies)
    add_prices(b, prices, companies)
    add_news(b, corpus.news, extractor, companies, prices, stats)
    summarizer = chart_summarizer or PriceChartSummarizer(corpus.data, companies)
    add_charts(b, corpus.charts, summarizer, companies, prices, by_period, stats)
    kg = TemporalKG(b.entities, b.relations)
    stats.entities = _count(e.kind for e in kg.entities.values())
    stats.relations = _count(r.kind for r in kg.relations)
    return kg, stats


def _count(kinds: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(kinds).items()))
