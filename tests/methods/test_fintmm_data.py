"""FinTMMBench records, loaders, synthetic corpus and ratio templates.

References are independent of the code under test: calendar facts written out by hand, NumPy's
business-day calendar, gold answers recomputed from the loaded JSON with plain NumPy, and the
authors' own schema.xlsx (shipped under tests/data/fintmm, MIT) for the template quirks.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from jaxmethods.methods.fintmm import formulas
from jaxmethods.methods.fintmm.keywords import question_window
from jaxmethods.methods.fintmm.loaders import (
    LoaderError,
    load_corpus,
    load_data,
    load_news,
    load_templates,
    validate_corpus,
)
from jaxmethods.methods.fintmm.records import (
    MODALITIES,
    TASKS,
    Chart,
    Corpus,
    Datum,
    NewsItem,
    TimeSpan,
    parse_time,
)
from jaxmethods.methods.fintmm.synthetic import NYSE_HOLIDAYS, make_synthetic_corpus

FIXTURE = Path(__file__).parents[1] / "data" / "fintmm" / "repo"
D = dt.date


# ----------------------------------------------------------------------------- records
@pytest.mark.parametrize(
    ("value", "interval", "start", "end", "label"),
    [
        ("2022-03-15", "Date", D(2022, 3, 15), D(2022, 3, 15), "2022-03-15"),
        ("2022-03-15 09:30:00", "Date", D(2022, 3, 15), D(2022, 3, 15), "2022-03-15"),
        ("2022-03-31", "Quarter", D(2022, 1, 1), D(2022, 3, 31), "2022-Q1"),
        ("2022-12-31", "Quarter", D(2022, 10, 1), D(2022, 12, 31), "2022-Q4"),
        # NVIDIA-style fiscal quarter ending in January: the three months before it.
        ("2022-01-31", "Quarter", D(2021, 11, 1), D(2022, 1, 31), "2021-11-01..2022-01-31"),
        ("2022-12-31", "Year", D(2022, 1, 1), D(2022, 12, 31), "2022"),
        ("2022-09-30", "annual", D(2021, 10, 1), D(2022, 9, 30), "2021-10-01..2022-09-30"),
        ("2022-W11", "Date", D(2022, 3, 14), D(2022, 3, 20), "2022-W11"),  # ISO week, Mon..Sun
        ("2022-M2", "Date", D(2022, 2, 1), D(2022, 2, 28), "2022-M2"),
        ("2024-M2", "Date", D(2024, 2, 1), D(2024, 2, 29), "2024-M2"),
        ("2022-Q2", "Date", D(2022, 4, 1), D(2022, 6, 30), "2022-Q2"),
        ("Q3 2022", "Date", D(2022, 7, 1), D(2022, 9, 30), "2022-Q3"),
        ("2022Q4", "Date", D(2022, 10, 1), D(2022, 12, 31), "2022-Q4"),
    ],
)
def test_parse_time_and_label_round_trip(value, interval, start, end, label):
    span = parse_time(value, interval, where="t")
    assert (span.start, span.end) == (start, end)
    assert span.label() == label
    assert parse_time(span.label(), where="t") == span
    assert span.ordinals() == (start.toordinal(), end.toordinal())


def test_parse_time_errors_name_the_record():
    with pytest.raises(ValueError, match=r"StockPrice.json\[3\].*2022-02-30"):
        parse_time("2022-02-30", where="StockPrice.json[3]")
    with pytest.raises(ValueError, match=r"news n1.*yesterday"):
        parse_time("yesterday", where="news n1")
    with pytest.raises(ValueError, match=r"x: unknown Interval 'Weekly'"):
        parse_time("2022-01-03", "Weekly", where="x")
    with pytest.raises(ValueError, match="before start"):
        TimeSpan(D(2022, 2, 1), D(2022, 1, 1))


def test_overlaps_is_inclusive_and_symmetric():
    q1 = TimeSpan(D(2022, 1, 1), D(2022, 3, 31))
    assert q1.overlaps(TimeSpan.day(D(2022, 3, 31))) and TimeSpan.day(D(2022, 3, 31)).overlaps(q1)
    assert not q1.overlaps(TimeSpan.day(D(2022, 4, 1)))
    assert TimeSpan.iso_week(2022, 13).overlaps(q1)  # Mar 28 .. Apr 3 straddles the end


def test_chart_time_matches_the_authors_iso_weeks():
    # The authors' AAPL_2022-W1_Kline.png (shipped fixture) shows Jan 03 .. Jan 07: ISO week 1.
    w1 = Chart("AAPL", "W1", 2022, None, "AAPL_2022-W1_Kline").time
    assert (w1.start, w1.end) == (D(2022, 1, 3), D(2022, 1, 9))
    m12 = Chart("AAPL", "M12", 2022, None, "AAPL_2022-M12_Kline").time
    assert (m12.start, m12.end) == (D(2022, 12, 1), D(2022, 12, 31))
    with pytest.raises(ValueError, match="AAPL_2022-W60_Kline"):
        Chart("AAPL", "W60", 2022, None, "AAPL_2022-W60_Kline").time  # noqa: B018


def test_datum_time_and_duplicate_uuid():
    q = Datum("Apple Inc", "AAPL", "2022-06-30", "Quarter", "totalRevenue", 1.0, "USD", "u1",
              "FinancialTable", "income_statement")  # fmt: skip
    assert q.time == TimeSpan.quarter(2022, 2)
    news = NewsItem("t", "2022-06-30", "x", "u1", ("Apple Inc",), ("AAPL",))
    with pytest.raises(ValueError, match="uuid 'u1' is shared by a Datum and a NewsItem"):
        Corpus([q], [news], [], []).by_uuid()


# ----------------------------------------------------------------------------- loaders
@pytest.fixture(scope="module")
def fixture_corpus() -> Corpus:
    return load_corpus(FIXTURE)


def test_fixture_wide_records_split_into_datums(fixture_corpus):
    by = fixture_corpus.by_uuid()
    tca = by["ft-aapl-bs-2022q1/totalCurrentAssets"]
    assert tca.value == 118180000000.0 and tca.table == "balance_sheet"  # "Balance Sheet" hint
    assert tca.time == TimeSpan.quarter(2022, 1)
    assert "ft-aapl-bs-2022q1/inventory" not in by  # "None" skipped
    assert by["ft-aapl-is-2022/grossProfit"].table == "income_statement"  # inferred
    assert by["ft-nvda-rev-fy22q4"].time.start == D(2021, 11, 1)
    vol = by["sp-aapl-0105/Volume"]
    assert (vol.value, vol.unit, vol.interval) == (94537600.0, "shares", "Date")
    assert by["sp-aapl-0104-close"].value == 179.70
    ocf = by["ft-nvda-cf-fy22q4/operatingCashflow"]  # nested "data" dict, SourceType "CashFlow"
    assert (ocf.value, ocf.table, ocf.source_type) == (1730000000.0, "cash_flow", "FinancialTable")
    assert "ft-nvda-cf-fy22q4/dividendPayout" not in by


def test_fixture_news_charts_prompts_templates(fixture_corpus):
    c = fixture_corpus
    chips = next(n for n in c.news if n.uuid == "news-chips")
    assert chips.companies == ("NVIDIA Corporation", "Apple Inc") and chips.symbols == (
        "NVDA",
        "AAPL",
    )
    assert chips.time == TimeSpan.day(D(2022, 1, 5))
    charts = {ch.uuid: ch for ch in c.charts}
    assert Path(charts["AAPL_2022-W1_Kline"].path).is_file()
    assert charts["MSFT_2022-M1_Kline"].path is None  # named by QA, PNG absent
    assert set(c.prompts) == {"Chart", "FinancialTable", "MultiPriceTable", "News", "NewsEvent",
                              "News_sentiment", "StockPrice"}  # fmt: skip
    assert "#QuestionGuidance" in c.prompts["FinancialTable"]
    sheets = {}
    for row in c.templates:
        sheets[row["sheet"]] = sheets.get(row["sheet"], 0) + 1
    # The authors' workbook: 53 FinancialTable templates, 16 Multi, 8 Question Types, ...
    assert sheets["FinancialTable"] == 53 and sheets["Multi"] == 16 and sheets["Question Type"] == 8
    assert c.companies == {"AAPL": "Apple Inc", "NVDA": "NVIDIA Corporation"}
    assert validate_corpus(c) == ["chart MSFT_2022-M1_Kline: PNG missing"]


def test_fixture_qa_layouts(fixture_corpus):
    qa = {q.qid: q for q in fixture_corpus.qa}
    q0 = qa["q0"]  # generator-output layout inside {"questions": [...]}
    assert q0.task == "IE&AC" and q0.modality == "Table"  # modality from the sources
    assert q0.sources == ("ft-aapl-bs-2022q1/totalCurrentAssets",
                          "ft-aapl-bs-2022q1/totalCurrentLiabilities")  # fmt: skip
    assert q0.time == TimeSpan.quarter(2022, 1)  # time from the sources
    assert q0.answer == "0.93" and "118180000000/127508000000" in q0.explanation
    assert qa["qa-chart-1"].time == TimeSpan.iso_week(2022, 1)
    assert qa["qa-chart-missing"].modality == "Chart"
    hyb = qa["qa-hybrid"]
    assert (hyb.task, hyb.modality, hyb.time) == ("IE", "Hybrid", TimeSpan.day(D(2022, 1, 3)))


def test_loader_errors_name_file_index_field(tmp_path):
    bad = [{"Symbol": "AAPL", "Date": "2022-01-03", "Interval": "Date", "indicator_name": "Close",
            "indicator_value": 1.0, "UUID": "a"},
           {"Symbol": "AAPL", "Date": "2022-01-03", "indicator_name": "Close",
            "indicator_value": 1.0}]  # fmt: skip
    (tmp_path / "StockPrice.json").write_text(json.dumps(bad))
    with pytest.raises(LoaderError, match=r"StockPrice.json\[1\]: missing field 'UUID'"):
        load_data(tmp_path / "StockPrice.json", "StockPrice")
    bad[1]["UUID"], bad[1]["Date"] = "b", "2022/01/03"
    (tmp_path / "StockPrice.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"StockPrice.json\[1\] \(uuid b\).*2022/01/03"):
        load_data(tmp_path / "StockPrice.json", "StockPrice")
    full = {"Company": "Apple Inc", "Symbol": "AAPL", "Date": "2022-13-01", "Interval": "Date",
            "indicator_name": "Close", "indicator_value": 1.0, "unit": "USD", "UUID": "z",
            "SourceType": "StockPrice"}  # fmt: skip
    (tmp_path / "StockPrice.json").write_text(json.dumps([{**full, "Date": "2022-01-03"}, full]))
    with pytest.raises(ValueError, match=r"StockPrice.json\[1\] \(uuid z\).*2022-13-01"):
        load_data(tmp_path / "StockPrice.json", "StockPrice")
    del bad[0]["Interval"]
    (tmp_path / "FinancialTable.json").write_text(json.dumps([bad[0]]))
    with pytest.raises(LoaderError, match=r"FinancialTable.json\[0\]: missing field 'Interval'"):
        load_data(tmp_path / "FinancialTable.json", "FinancialTable")
    (tmp_path / "News.json").write_text(json.dumps([{"uuid": "n", "Date": "2022-01-03"}]))
    with pytest.raises(LoaderError, match=r"News.json\[0\] \(uuid n\): missing field 'Text'"):
        load_news(tmp_path / "News.json")
    assert load_templates(tmp_path / "absent.xlsx") == []


# ----------------------------------------------------------------------------- synthetic
@pytest.fixture(scope="module")
def syn(tmp_path_factory) -> tuple[Path, Corpus]:
    root = tmp_path_factory.mktemp("fintmm_syn")
    corpus = make_synthetic_corpus(
        root, seed=3, tickers=3, start="2022-03-28", end="2022-05-06", news_per_company=6,
        qa_per_kind=3, charts="all",
    )  # fmt: skip
    return root, corpus


def test_synthetic_round_trip_and_coverage(syn):
    root, c = syn
    raw = {n: json.loads((root / "data" / f"{n}.json").read_text()) for n in
           ("StockPrice", "FinancialTable", "News")}  # fmt: skip
    assert len(c.data) == len(raw["StockPrice"]) + len(raw["FinancialTable"])
    assert len(c.news) == len(raw["News"]) == 18
    assert validate_corpus(c) == []
    assert {t for q in c.qa for t in q.task.split("&")} == set(TASKS)
    assert {q.modality for q in c.qa} == set(MODALITIES)
    assert all(q.time is not None for q in c.qa)
    # 2 ISO weeks full + partial ones, 2 months + partial: every chart PNG exists and is a PNG.
    assert all(Path(ch.path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for ch in c.charts)
    assert {ch.period for ch in c.charts} == {"W13", "W14", "W15", "W16", "W17", "W18", "M3",
                                              "M4", "M5"}  # fmt: skip


def test_synthetic_trading_days_match_numpy_busday_calendar(syn):
    _, c = syn
    # NYSE 2022 full-day closures, written out independently of the module's list.
    nyse_2022 = ["2022-01-17", "2022-02-21", "2022-04-15", "2022-05-30", "2022-06-20",
                 "2022-07-04", "2022-09-05", "2022-11-24", "2022-12-26"]  # fmt: skip
    hol = np.array(nyse_2022, dtype="datetime64[D]")
    assert set(hol.astype(object)) <= NYSE_HOLIDAYS
    all_days = np.arange(np.datetime64("2022-03-28"), np.datetime64("2022-05-07"))
    expected = [str(d) for d in all_days[np.is_busday(all_days, holidays=hol)]]
    for sym in ("AAPL", "MSFT", "AMZN"):
        got = sorted(d.date for d in c.data if d.symbol == sym and d.indicator == "Close")
        assert got == expected
    assert "2022-04-15" not in expected  # Good Friday


def _price_table(c: Corpus) -> dict[tuple[str, str, str], float]:
    return {
        (d.symbol, d.date, d.indicator): d.value for d in c.data if d.source_type == "StockPrice"
    }


def test_synthetic_prices_and_tables_consistent(syn):
    _, c = syn
    px = _price_table(c)
    for (sym, date, ind), v in px.items():
        if ind == "High":
            assert v >= max(px[(sym, date, "Open")], px[(sym, date, "Close")])
        if ind == "Low":
            assert v <= min(px[(sym, date, "Open")], px[(sym, date, "Close")])
    tab = {(d.symbol, d.date, d.interval, d.indicator): d.value for d in c.data
           if d.source_type == "FinancialTable"}  # fmt: skip
    ends = ("2022-03-31", "2022-06-30", "2022-09-30", "2022-12-31")
    for sym in ("AAPL", "MSFT"):
        for e in ends:
            q = {k[3]: v for k, v in tab.items() if k[:3] == (sym, e, "Quarter")}
            assert q["grossProfit"] == q["totalRevenue"] - q["costOfRevenue"]
        year = {k[3]: v for k, v in tab.items() if k[:3] == (sym, "2022-12-31", "Year")}
        rev = [tab[(sym, e, "Quarter", "totalRevenue")] for e in ends]
        assert year["totalRevenue"] == sum(rev)
        assert year["totalAssets"] == tab[(sym, "2022-12-31", "Quarter", "totalAssets")]
    assert {d.table for d in c.data if d.source_type == "FinancialTable"} == {
        "balance_sheet", "income_statement", "cash_flow"}  # fmt: skip


def test_synthetic_sources_lie_in_the_question_window(syn):
    """... and the window read back from the question (times in any form) is the gold one."""
    _, c = syn
    by = c.by_uuid()
    for q in c.qa:
        assert q.sources and question_window(q.question) == q.time, (q.qid, q.question)
        for s in q.sources:
            assert by[s].time.overlaps(q.time), (q.qid, s)


def test_synthetic_gold_answers_recomputed(syn):
    """Recompute gold answers from the loaded JSON with plain NumPy (not the generator)."""
    root, c = syn
    by, px = c.by_uuid(), _price_table(c)
    raw_news = {n["uuid"]: n for n in json.loads((root / "data" / "News.json").read_text())}
    word = {"opening": "Open", "closing": "Close", "highest": "High", "lowest": "Low"}
    checked = 0
    for q in c.qa:
        vals = [by[s] for s in q.sources]
        if q.task == "IE" and q.modality == "Price":
            sym, rest = q.question.removeprefix("What was ").split("'s ", 1)
            w, date = rest.split(" price on ")
            (iso,) = [k[1] for k in px if k[0] == sym and date.rstrip("?") in _forms(k[1])][:1]
            v = px[(sym, iso, word[w])]
            assert float(q.answer) == pytest.approx(v)
            # temporal: the same indicator has other values on other days
            assert len({x for k, x in px.items() if k[0] == sym and k[2] == word[w]}) > 5
        elif q.task == "AC" and "Current Ratio" in q.question:
            tca, tcl = (next(v.value for v in vals if v.indicator == n)
                        for n in ("totalCurrentAssets", "totalCurrentLiabilities"))  # fmt: skip
            assert float(q.answer) == pytest.approx(np.round(tca / tcl, 2))
        elif q.task == "CP" and q.modality == "Price":
            assert q.answer == max(vals, key=lambda v: v.value).symbol
        elif q.task == "ST" and q.modality == "Price":
            order = np.argsort([-v.value for v in vals], kind="stable")
            assert q.answer == ", ".join(vals[i].symbol for i in order)
        elif q.task == "CT" and q.modality == "Price":
            x = float(q.question.split("close above ")[1].split(" USD")[0])
            assert int(q.answer) == int(np.sum(np.array([v.value for v in vals]) > x))
            _every_trading_day_of_the_window(q, vals, px)
        elif q.task == "TA" and q.modality == "Price" and " in week " in q.question:
            _every_trading_day_of_the_window(q, vals, px)
            steps = np.diff([v.value for v in sorted(vals, key=lambda v: v.date)])
            up, down = bool((steps > 0).all()), bool((steps < 0).all())
            want = "increasing" if up else "decreasing" if down else "fluctuating"
            assert q.answer == want and q.time.label()[4:6] == "-W"
        elif q.task == "TA" and q.modality == "Chart":
            (ch,) = vals
            days = sorted(k[1] for k in px if k[0] == ch.symbol and k[2] == "Close"
                          and ch.time.contains(D.fromisoformat(k[1])))  # fmt: skip
            up = px[(ch.symbol, days[-1], "Close")] >= px[(ch.symbol, days[0], "Open")]
            assert q.answer == ("increasing" if up else "decreasing")
        elif q.task in ("ED", "SC"):
            (n,) = vals
            assert isinstance(n, NewsItem) and any(f in q.question for f in _forms(n.date))
            if q.task == "ED":
                assert f"{q.answer}." in n.text
            else:
                assert q.answer == raw_news[n.uuid]["Sentiment"]
        else:
            continue
        checked += 1
    assert checked >= 20


_DAY_FORMATS = ("%Y-%m-%d", "%B %d, %Y", "%b %d, %Y")  # 2022-04-14, April 14, 2022, Apr 14, 2022


def _forms(iso: str) -> list[str]:
    """A day in every form the questions write (strftime, not the module's phrasing)."""
    return [D.fromisoformat(iso).strftime(f).replace(" 0", " ") for f in _DAY_FORMATS]


def _every_trading_day_of_the_window(q, vals, px) -> None:
    """A period question (range, week, month) has one source per trading day of its window."""
    sym = vals[0].symbol
    days = {k[1] for k in px if k[0] == sym and k[2] == "Close"
            and q.time.contains(D.fromisoformat(k[1]))}  # fmt: skip
    assert sorted(v.date for v in vals) == sorted(days), q.question


def test_synthetic_is_deterministic(syn, tmp_path):
    root, _ = syn
    make_synthetic_corpus(
        tmp_path, seed=3, tickers=3, start="2022-03-28", end="2022-05-06", news_per_company=6,
        qa_per_kind=3, charts="none",
    )  # fmt: skip
    for name in ("data/StockPrice.json", "data/FinancialTable.json", "data/News.json"):
        assert (tmp_path / name).read_bytes() == (root / name).read_bytes()
    assert list((tmp_path / "data" / "Chart").glob("*.png")) == []


# ----------------------------------------------------------------------------- formulas
def test_ratio_templates_on_toy_numbers():
    assert formulas.current_ratio(300.0, 200.0) == 1.5
    assert formulas.gross_margin(200.0, 150.0) == pytest.approx(25.0)  # (200-150)/200*100
    assert formulas.net_profit_margin(30.0, 200.0) == pytest.approx(15.0)
    assert formulas.roe(50.0, 240.0, 160.0) == pytest.approx(0.25)  # 50 / ((240+160)/2)
    assert formulas.debt_to_equity(20.0, 60.0, 160.0) == pytest.approx(0.5)
    assert formulas.working_capital(300.0, 200.0) == 100.0
    # P/E with grossProfit as "earnings": EPS = 4262e6 / 1e7 = 426.2; P/E = 400 / 426.2
    assert formulas.pe_ratio(400.0, 4262e6, 1e7) == pytest.approx(400 / 426.2)
    # the authors' P/S example in Prompt/FinancialTable.txt: 400 / (4262000000/10000000) = 0.94
    assert formulas.fmt_number(formulas.ps_ratio(400.0, 4262000000.0, 10000000)) == "0.94"
    assert formulas.dividend_yield(121.3504, 1.0, 1e9) == pytest.approx(1e-9 / 121.3504)
    assert formulas.growth_rate(1.25, 1.35) == pytest.approx(8.0)
    assert [formulas.trend(v) for v in ([1, 2, 3], [3, 2, 1], [1, 3, 2], [2, 2])] == [
        "increasing", "decreasing", "fluctuating", "flat"]  # fmt: skip
    assert [formulas.fmt_number(x) for x in (12.0, 0.925, 1e11, -3.14159)] == [
        "12", "0.93", "100000000000", "-3.14"]  # fmt: skip
    with pytest.raises(ZeroDivisionError, match="current_ratio"):
        formulas.current_ratio(1.0, 0.0)


def test_schema_indicator_lists_match_the_authors_workbook(fixture_corpus):
    rows = [r for r in fixture_corpus.templates if r["sheet"] in ("FinancialTable", "Multi")]

    def lists(pattern: str) -> set[tuple[str, ...]]:
        return {tuple(r["Indicator_list"].split(",")) for r in rows
                if pattern in r["QuestionSchema"] and r.get("Indicator_list")}  # fmt: skip

    # The P/E quirk: the workbook's P/E rows read grossProfit (+ openPrice), not netIncome.
    pe = lists("P/E ratio")
    assert ("grossProfit", "openPrice") in pe and all("netIncome" not in x for x in pe)
    assert formulas.SCHEMA_INDICATORS["pe_ratio"] == ("grossProfit", "openPrice")
    assert lists("Current Ratio of") == {formulas.SCHEMA_INDICATORS["current_ratio"]}
    assert lists("Debt-to-Equity Ratio of") == {formulas.SCHEMA_INDICATORS["debt_to_equity"]}
    assert formulas.SCHEMA_INDICATORS["gross_margin"] in lists("Gross Margin")
