"""The per-modality entity/relation builders of `kg.build_kg`, each adding to one `KGBuilder`:
`group_data` (statement rows by period, price rows by trading day), `add_tables` (statements,
`reports`, `same_period`), `add_prices` (price days, `price_of`, `next_trading_day`),
`add_news` (news, `mentions`, `same_day`, the extractor's output) and `add_charts` (charts and
their summaries, `chart_of`, `covers`, monthly `same_period`). `build_kg` documents the KG.
"""

from __future__ import annotations

import datetime
import itertools
import os
from collections import defaultdict
from collections.abc import Sequence

from jaxmethods.methods.fintmm.chart_summary import ChartSummarizer
from jaxmethods.methods.fintmm.kg_names import (
    PRICE_ORDER,
    chart_entity_name,
    chart_period_name,
    fmt_value,
    news_entity_name,
    price_entity_name,
    table_entity_name,
    table_of,
)
from jaxmethods.methods.fintmm.kg_types import Entity, KGBuilder, KGStats, Relation
from jaxmethods.methods.fintmm.news_extract import CompanyNames, NewsExtractor
from jaxmethods.methods.fintmm.records import Chart, Datum, NewsItem, TimeSpan

Tables = dict[tuple[str, str, TimeSpan], list[Datum]]  # (symbol, statement, period) -> rows
Prices = dict[str, dict[datetime.date, list[Datum]]]  # symbol -> trading day -> rows
ByPeriod = dict[tuple[str, TimeSpan], list[str]]  # (symbol, period) -> table entity names


def group_data(data: Sequence[Datum]) -> tuple[Tables, Prices]:
    """FinancialTable rows by (symbol, statement, period) and StockPrice rows by symbol and
    trading day, in data order (each distinct (date, interval) is parsed once)."""
    times: dict[tuple[str, str], TimeSpan] = {}
    tables: Tables = defaultdict(list)
    prices: Prices = defaultdict(lambda: defaultdict(list))
    for d in data:
        key = (d.date, d.interval)
        if key not in times:
            times[key] = d.time
        time = times[key]
        if d.source_type == "StockPrice":
            prices[d.symbol][time.start].append(d)
        else:
            tables[(d.symbol, table_of(d), time)].append(d)
    return tables, prices


def add_tables(b: KGBuilder, tables: Tables, companies: dict[str, str]) -> ByPeriod:
    """Table entities, `reports` links and `same_period` between the statements of a period."""
    by_period: ByPeriod = defaultdict(list)
    for (symbol, table, time), rows in tables.items():
        company = companies[symbol]
        name = table_entity_name(company, table, time)
        cells = "; ".join(f"{r.indicator} {fmt_value(r.value)} {r.unit}".rstrip() for r in rows)
        desc = (
            f"{company} ({symbol}) {table.replace('_', ' ')} for {time.label()} "
            f"({rows[0].interval.lower()} ending {time.end.isoformat()}): {cells}"
        )
        b.entity(Entity(name, "table", time, desc, tuple(r.uuid for r in rows)))
        b.relation(
            Relation(
                company,
                name,
                "reports",
                time,
                f"{company} reports its {table.replace('_', ' ')} for {time.label()}",
                (),
            )
        )
        by_period[(symbol, time)].append(name)
    for (symbol, time), names in by_period.items():
        for i, a in enumerate(names):
            for other in names[i + 1 :]:
                b.relation(
                    Relation(
                        a,
                        other,
                        "same_period",
                        time,
                        f"statements of {companies[symbol]} for the same period {time.label()}",
                        (),
                    )
                )
    return by_period


def add_prices(b: KGBuilder, prices: Prices, companies: dict[str, str]) -> None:
    """Price-day entities, `price_of` links and `next_trading_day` chains per symbol."""
    for symbol, days in prices.items():
        company = companies[symbol]
        order = sorted(days)
        for day in order:
            rows = sorted(days[day], key=_price_rank)
            cells = ", ".join(f"{r.indicator} {fmt_value(r.value)} {r.unit}".rstrip() for r in rows)
            desc = (
                f"{symbol} ({company}) daily stock price on {day.isoformat()} "
                f"({day.strftime('%A')}): {cells}"
            )
            name = b.entity(
                Entity(
                    price_entity_name(symbol, day),
                    "price",
                    TimeSpan(day, day),
                    desc,
                    tuple(r.uuid for r in rows),
                )
            )
            b.relation(
                Relation(
                    name,
                    company,
                    "price_of",
                    TimeSpan(day, day),
                    f"daily price of {company} on {day.isoformat()}",
                    (),
                )
            )
        for d0, d1 in itertools.pairwise(order):
            c0, c1 = _close(days[d0]), _close(days[d1])
            move = ""
            if c0 is not None and c1 is not None and c0:
                move = f"; close {fmt_value(c0)} -> {fmt_value(c1)} ({(c1 - c0) / c0 * 100:+.2f}%)"
            b.relation(
                Relation(
                    price_entity_name(symbol, d0),
                    price_entity_name(symbol, d1),
                    "next_trading_day",
                    TimeSpan(d0, d1),
                    f"{symbol}: the trading day after {d0.isoformat()} ({d0.strftime('%A')}) "
                    f"is {d1.isoformat()} ({d1.strftime('%A')}){move}",
                    tuple(r.uuid for r in (*days[d0], *days[d1])),
                )
            )


def add_news(
    b: KGBuilder,
    news: Sequence[NewsItem],
    extractor: NewsExtractor,
    companies: dict[str, str],
    prices: Prices,
    stats: KGStats,
) -> None:
    """News entities, `mentions` / `same_day` links, and the extractor's entities/relations."""
    names_of = CompanyNames(companies).of_item
    symbol_of = {n: s for s, n in sorted(companies.items(), reverse=True)}
    stats.news = len(news)
    extractions = extractor.extract(news, companies) if news else []
    if len(extractions) != len(news):
        raise ValueError(
            f"build_kg: the extractor returned {len(extractions)} extractions for "
            f"{len(news)} news items"
        )
    for item, ex in zip(news, extractions):
        time = item.time
        day = time.start.isoformat()
        title = " ".join(item.title.split())
        text = " ".join(item.text.split())
        desc = f"News published on {day}: {title}. {text[:400]}"
        node = b.entity(Entity(news_entity_name(item), "news", time, desc, (item.uuid,)))
        for company in names_of(item):
            b.relation(
                Relation(node, company, "mentions", time, f"{title} ({day}) mentions {company}", ())
            )
            symbol = symbol_of[company]
            price = price_entity_name(symbol, time.start)
            if time.start in prices.get(symbol, {}):
                b.relation(
                    Relation(
                        node,
                        price,
                        "same_day",
                        time,
                        f"news about {company} and its stock price on {day}",
                        (),
                    )
                )
        if not ex.ok:
            stats.news_skipped += 1
            continue
        stats.news_extracted += 1
        for e in ex.entities:
            b.entity(e)
            b.relation(Relation(node, e.name, "mentions", time, f"{title} ({day})", e.source_ids))
        for r in ex.relations:
            for end in (r.src, r.dst):
                if end not in b.entities:
                    b.entity(Entity(end, "entity", r.time, r.description, r.source_ids))
            b.relation(r)
    stats.extractor = dict(getattr(extractor, "stats", {}))


def add_charts(
    b: KGBuilder,
    charts: Sequence[Chart],
    summarizer: ChartSummarizer,
    companies: dict[str, str],
    prices: Prices,
    by_period: ByPeriod,
    stats: KGStats,
) -> None:
    """Chart entities described by `summarizer` (charts with a PNG file only), `chart_of`,
    `covers` each price day of the period, and `same_period` with the quarter's statements
    for monthly charts."""
    stats.charts = len(charts)
    with_png = [c for c in charts if c.path is not None and os.path.isfile(c.path)]
    summaries = dict(zip((c.uuid for c in with_png), summarizer.summarize(with_png)))
    for chart in charts:
        company = companies.get(chart.symbol, chart.symbol)
        if company not in b.entities:
            b.entity(Entity(company, "company", None, f"{company}, stock ticker symbol", ()))
        time = chart.time
        name = chart_entity_name(company, chart)
        summary = summaries.get(chart.uuid)
        head = f"{chart_period_name(chart)} of {company} ({chart.symbol}) for {time.label()}"
        if chart.uuid not in summaries:
            stats.charts_missing_png += 1
            desc = f"{head} (chart image missing; no summary)"
        elif summary is None:
            stats.charts_without_summary += 1
            desc = f"{head} (no summary)"
        else:
            source = getattr(summarizer, "source", "custom")
            stats.charts_summarized[source] = stats.charts_summarized.get(source, 0) + 1
            desc = f"{head}: {summary}"
        b.entity(Entity(name, "chart", time, desc, (chart.uuid,)))
        b.relation(Relation(name, company, "chart_of", time, head, ()))
        for day in sorted(prices.get(chart.symbol, {})):
            if time.start <= day <= time.end:
                b.relation(
                    Relation(
                        name,
                        price_entity_name(chart.symbol, day),
                        "covers",
                        TimeSpan(day, day),
                        f"the {chart_period_name(chart)} {time.label()} covers "
                        f"{chart.symbol} on {day.isoformat()}",
                        (),
                    )
                )
        if chart.period.upper().startswith("M"):
            for (symbol, period), names in by_period.items():
                inside = period.start <= time.start and time.end <= period.end
                if symbol == chart.symbol and period.days <= 92 and inside:
                    for table in names:
                        b.relation(
                            Relation(
                                name,
                                table,
                                "same_period",
                                time,
                                f"{head} lies in the period {period.label()} of {table}",
                                (),
                            )
                        )


def _price_rank(d: Datum) -> tuple[int, str]:
    name = d.indicator.lower()
    return (PRICE_ORDER.index(name) if name in PRICE_ORDER else len(PRICE_ORDER), name)


def _close(rows: list[Datum]) -> float | None:
    for r in rows:
        if r.indicator.lower() == "close":
            return float(r.value)
    return None
