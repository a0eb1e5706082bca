"""FinTMMBench temporal KG: construction on a toy corpus, times, cross-modal links, extractors."""

import base64
import datetime
import itertools
import json

import numpy as np
import pytest

from jaxmethods.llm import FunctionClient
from jaxmethods.methods.fintmm.extract import (
    PRICE_FALLBACK_LABEL,
    LLMExtractor,
    MLLMChartSummarizer,
    RuleExtractor,
    parse_json_object,
)
from jaxmethods.methods.fintmm.kg import Entity, Relation, TemporalKG, build_kg
from jaxmethods.methods.fintmm.records import Chart, Corpus, Datum, NewsItem, TimeSpan

COMPANIES = {"AAPL": "Apple Inc", "MSFT": "Microsoft Corporation"}
HOLIDAY = "2022-03-17"  # a made-up market holiday (a Thursday)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def trading_days() -> list[str]:
    days = np.arange("2022-03-09", "2022-03-23", dtype="datetime64[D]")
    return [str(d) for d in days if np.is_busday(d, holidays=[HOLIDAY])]


def price(sym: str, day: str, ind: str, value: float) -> Datum:
    return Datum(COMPANIES[sym], sym, day, "Date", ind, value, "USD", f"{sym}-{day}-{ind}",
                 "StockPrice")  # fmt: skip


def table(sym: str, date: str, interval: str, ind: str, value: float, tab=None) -> Datum:
    return Datum(COMPANIES[sym], sym, date, interval, ind, value, "USD",
                 f"{sym}-{date}-{interval}-{ind}", "FinancialTable", tab)  # fmt: skip


def toy_corpus(tmp_path) -> Corpus:
    data = []
    for k, sym in enumerate(COMPANIES):
        for i, day in enumerate(trading_days()):
            base = 100.0 * (k + 1) + i
            for ind, value in [("Open", base), ("High", base + 2), ("Low", base - 1),
                               ("Close", base + 0.5)]:  # fmt: skip
                data.append(price(sym, day, ind, value))
    data += [
        table("AAPL", "2022-03-31", "Quarter", "totalRevenue", 97e9, "income_statement"),
        table("AAPL", "2022-03-31", "Quarter", "totalCurrentAssets", 118e9),  # inferred table
        table("AAPL", "2022-12-31", "Year", "totalRevenue", 394e9, "income_statement"),
        table("MSFT", "2022-03-31", "Quarter", "totalRevenue", 49e9, "income_statement"),
    ]
    news = [
        NewsItem("Apple shares surge after record iPhone sales", "2022-03-14",
                 "Apple Inc reported record sales. Analysts upgraded the stock.", "n1",
                 ("Apple Inc",), ("AAPL",)),
        NewsItem("Microsoft sued over patent, shares fall", "2022-03-12",
                 "Microsoft was sued in court. Apple Inc was not involved.", "n2",
                 ("Microsoft", "Apple"), ("MSFT",)),
    ]  # fmt: skip
    png = tmp_path / "AAPL_2022-W11_Kline.png"
    png.write_bytes(PNG)
    charts = [
        Chart("AAPL", "W11", 2022, str(png), "AAPL_2022-W11_Kline"),
        Chart("AAPL", "M3", 2022, None, "AAPL_2022-M3_Kline"),  # PNG missing
    ]
    return Corpus(data, news, charts, [], companies=dict(COMPANIES))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    corpus = toy_corpus(tmp_path_factory.mktemp("fintmm_kg"))
    kg, stats = build_kg(corpus, RuleExtractor())
    return corpus, kg, stats


def _edges(kg: TemporalKG, kind: str) -> set[tuple[str, str]]:
    return {(r.src, r.dst) for r in kg.relations if r.kind == kind}


def test_consecutive_trading_days_linked_weekends_skipped_companies_apart(built):
    _, kg, _ = built
    days = trading_days()
    want = {(f"{s} {a}", f"{s} {b}") for s in COMPANIES for a, b in itertools.pairwise(days)}
    assert _edges(kg, "next_trading_day") == want
    assert ("AAPL 2022-03-11", "AAPL 2022-03-14") in want  # Friday -> Monday
    assert ("AAPL 2022-03-16", "AAPL 2022-03-18") in want  # over the holiday
    assert "AAPL 2022-03-12" not in kg.entities and "AAPL 2022-03-17" not in kg.entities
    r = next(r for r in kg.relations if r.src == "AAPL 2022-03-11" and r.kind == "next_trading_day")
    assert r.time == TimeSpan(datetime.date(2022, 3, 11), datetime.date(2022, 3, 14))
    assert set(r.source_ids) == {f"AAPL-{d}-{i}" for d in ("2022-03-11", "2022-03-14")
                                 for i in ("Open", "High", "Low", "Close")}  # fmt: skip
    assert {len(kg.neighbors(f"MSFT {d}")) for d in days[1:-1]} >= {3}


def test_entity_times_and_names_match_sources(built):
    corpus, kg, _stats = built
    e = kg.entities["AAPL 2022-03-15"]
    assert e.kind == "price" and e.time == TimeSpan.day(datetime.date(2022, 3, 15))
    assert "Close 104.5 USD" in e.description  # day 4 of the series and "Tuesday" in e.description
    q1 = TimeSpan(datetime.date(2022, 1, 1), datetime.date(2022, 3, 31))
    assert kg.entities["Apple Inc income statement 2022-Q1"].time == q1
    bs = kg.entities["Apple Inc balance sheet 2022-Q1"]  # table inferred from the indicator
    assert bs.time == q1 and bs.source_ids == ("AAPL-2022-03-31-Quarter-totalCurrentAssets",)
    year = kg.entities["Apple Inc income statement 2022"]
    assert year.time == TimeSpan(datetime.date(2022, 1, 1), datetime.date(2022, 12, 31))
    assert "394000000000" in year.description
    week = kg.entities["Apple Inc weekly candlestick chart 2022-W11"]
    assert week.time == TimeSpan(datetime.date(2022, 3, 14), datetime.date(2022, 3, 20))
    news = kg.entities["News 2022-03-14: Apple shares surge after record iPhone sales"]
    assert news.time == TimeSpan.day(datetime.date(2022, 3, 14)) and news.source_ids == ("n1",)
    assert kg.entities["Apple Inc"].time is None
    assert e.text() == f"AAPL 2022-03-15 2022-03-15 {e.description}"
    r = Relation("a", "b", "k", None, "d", ())
    assert r.key == "a -[k]-> b" and r.text() == "a -[k]-> b undated d"
    for item in [*kg.entities.values(), *kg.relations]:  # every source id names a record
        assert set(item.source_ids) <= set(corpus.by_uuid())


def test_cross_modal_links_and_chart_stats(built):
    _, kg, stats = built
    week = "Apple Inc weekly candlestick chart 2022-W11"
    want = {(week, f"AAPL {d}") for d in trading_days() if "2022-03-14" <= d <= "2022-03-20"}
    assert {e for e in _edges(kg, "covers") if e[0] == week} == want
    assert not any(e[1].startswith("MSFT") for e in _edges(kg, "covers"))
    assert (week, "Apple Inc") in _edges(kg, "chart_of")
    month = kg.entities["Apple Inc monthly candlestick chart 2022-M3"]
    assert "missing" in month.description and month.source_ids == ("AAPL_2022-M3_Kline",)
    assert stats.charts == 2 and stats.charts_missing_png == 1
    assert stats.charts_summarized == {"prices": 1}
    # the fallback summary from the prices of 2022-03-14..18 (no 03-17): AAPL day i has
    # open 100 + i, high 102 + i, close 100.5 + i; 03-14 is day 3, 03-18 is day 6
    desc = kg.entities[week].description
    assert PRICE_FALLBACK_LABEL in desc and "4 trading days" in desc
    assert "open 103," in desc and "close 106.5," in desc and "high 108," in desc
    assert "low 102," in desc and "trend upward (+3.40%)" in desc
    news1 = "News 2022-03-14: Apple shares surge after record iPhone sales"
    assert (news1, "Apple Inc") in _edges(kg, "mentions")
    assert (news1, "AAPL 2022-03-14") in _edges(kg, "same_day")
    news2 = "News 2022-03-12: Microsoft sued over patent, shares fall"
    assert (news2, "Microsoft Corporation") in _edges(kg, "mentions")
    assert not any(a == news2 for a, _ in _edges(kg, "same_day"))  # a Saturday: no prices
    assert ("Apple Inc", "Apple Inc income statement 2022-Q1") in _edges(kg, "reports")
    same = _edges(kg, "same_period")
    assert ("Apple Inc income statement 2022-Q1", "Apple Inc balance sheet 2022-Q1") in same
    assert ("Apple Inc monthly candlestick chart 2022-M3",
            "Apple Inc income statement 2022-Q1") in same  # fmt: skip
    assert not any("MSFT" in a or "Microsoft" in a for a, b in same if "Apple" in b)
    flat = stats.flat()
    assert flat["kg/entities"] == len(kg.entities) and flat["kg/relations"] == len(kg.relations)


def test_save_load_round_trip(built, tmp_path):
    _, kg, _ = built
    kg.save(tmp_path / "kg.jsonl")
    again = TemporalKG.load(tmp_path / "kg.jsonl")
    assert again.entities == kg.entities and again.relations == kg.relations
    (tmp_path / "bad.jsonl").write_text('{"format": "x"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: .*format 'x'"):
        TemporalKG.load(tmp_path / "bad.jsonl")


def test_rule_extractor_events(built):
    _, kg, stats = built
    up = kg.entities["Apple Inc Sales news 2022-03-14"]
    assert up.kind == "event" and up.description.startswith("Positive news")
    down = kg.entities["Microsoft Corporation Legal news 2022-03-12"]
    assert down.description.startswith("Negative news") and down.source_ids == ("n2",)
    assert (down.name, "Microsoft Corporation") in _edges(kg, "about")
    # "Apple" (a loose name) in news 2 maps to the Apple Inc company entity
    assert _edges(kg, "co_mentioned") == {("Microsoft Corporation", "Apple Inc")}
    assert stats.news == 2 and stats.news_extracted == 2 and stats.news_skipped == 0


def _answer(good: bool) -> str:
    if not good:
        return "Sure! Here are the entities: none."
    return "```json\n" + json.dumps({
        "entities": [{"name": "AAPL", "type": "company", "description": "Apple"},
                     {"name": "iPhone 13", "type": "product", "description": "a phone"}],
        "relations": [{"source": "Apple", "target": "iPhone 13", "type": "sells",
                       "description": "Apple sells the iPhone 13"}],
        "events": [{"company": "Apple Inc", "event": "record iPhone sales", "place": "",
                    "aspect": "Sales", "sentiment": "Positive", "sentiment_score": 0.8}],
    }) + "\n```"  # fmt: skip


def test_llm_extractor_retry_skip_and_cache(tmp_path):
    corpus = toy_corpus(tmp_path)
    calls = []

    def fn(request):  # news n1: bad, then good on the retry turn; n2: always bad
        calls.append(request)
        prompt = request.messages[0]["content"]
        retry = len(request.messages) > 1
        return _answer(retry and '"uuid": "n1"' in prompt)

    client = FunctionClient(fn, model="mock", cache_dir=str(tmp_path / "cache"))
    ex = LLMExtractor(client, max_retries=1)
    kg, stats = build_kg(corpus, ex)
    assert len(calls) == 4 and stats.news_extracted == 1 and stats.news_skipped == 1
    assert ex.stats["skipped"] == 1 and ex.stats["retries"] == 2 and ex.stats["calls"] == 4
    assert "not valid JSON" in calls[-1].messages[-1]["content"]
    assert calls[0].messages[0]["content"].count("- Dividend Policy") == 1  # aspect list
    prod = kg.entities["iPhone 13"]
    assert prod.kind == "product" and prod.time == TimeSpan.day(datetime.date(2022, 3, 14))
    assert ("Apple Inc", "iPhone 13") in _edges(kg, "sells")  # names mapped to the company
    assert kg.entities["Apple Inc"].kind == "company"
    assert "record iPhone sales" in kg.entities["Apple Inc Sales news 2022-03-14"].description
    # a rerun with the same cache makes no call
    ex2 = LLMExtractor(FunctionClient(fn, model="mock", cache_dir=str(tmp_path / "cache")))
    build_kg(corpus, ex2)
    assert len(calls) == 4 and ex2.stats["calls"] == 0 and ex2.stats["cached"] == 4


def test_parse_json_object():
    assert parse_json_object('noise {"a": [1]} tail') == {"a": [1]}
    for bad, msg in [("[]", "no JSON object"), ("{'a': 1}", "invalid JSON")]:
        with pytest.raises(ValueError, match=msg):
            parse_json_object(bad)


class _FakeClient:
    def __init__(self):
        self.requests = []

    def complete(self, requests):
        self.requests += requests
        return [type("C", (), {"text": " A rising\nweek. "})() for _ in requests]


def test_mllm_chart_summary_sends_png_as_data_url(tmp_path):
    corpus = toy_corpus(tmp_path)
    client = _FakeClient()
    kg, stats = build_kg(
        corpus, RuleExtractor(), chart_summarizer=MLLMChartSummarizer(client, COMPANIES)
    )
    [req] = client.requests  # the chart without a PNG is not sent
    text, image = req["messages"][0]["content"]
    assert "Apple Inc (AAPL)" in text["text"] and "2022-03-14 to 2022-03-20" in text["text"]
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == PNG
    desc = kg.entities["Apple Inc weekly candlestick chart 2022-W11"].description
    assert desc.endswith(": A rising week.") and stats.charts_summarized == {"mllm": 1}


def test_entity_merge_and_neighbors():
    e = Entity("X", "event", TimeSpan.day(datetime.date(2022, 1, 3)), "d", ("u",))
    kg = TemporalKG({"X": e, "Y": e}, [Relation("X", "Y", "k", None, "", ())])
    assert [r.key for r in kg.neighbors("Y")] == ["X -[k]-> Y"] and kg.neighbors("Z") == []
    kg.relations.append(Relation("Y", "X", "k", None, "", ()))
    assert len(kg.neighbors("X")) == 2  # the adjacency follows appended relations


def test_mllm_chart_summary_through_a_real_client(tmp_path):
    corpus = toy_corpus(tmp_path)
    seen = []

    def fn(request):
        seen.append(request)
        return "Up all week."

    summarizer = MLLMChartSummarizer(FunctionClient(fn, model="mock-vision"), COMPANIES)
    assert summarizer.summarize(corpus.charts) == ["Up all week.", None]  # M3 has no PNG
    [part_text, part_image] = seen[0].messages[0]["content"]
    assert part_text["type"] == "text" and part_image["type"] == "image_url"
