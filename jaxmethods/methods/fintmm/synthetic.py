"""A synthetic FinTMMBench corpus in the benchmark's own file layout (read back by `loaders`).

`make_synthetic_corpus(root, seed=..., tickers=...)` writes, under `root`:
- `data/StockPrice.json`: atomic datums (Open/High/Low/Close/Volume, Interval "Date") for every
  trading day in [start, end]: weekdays minus the NYSE holidays (`NYSE_HOLIDAYS`); prices are a
  seeded geometric random walk per ticker;
- `data/FinancialTable.json`: atomic datums of quarterly (Interval "Quarter", date = quarter
  end) and annual ("Year", Dec 31) balance sheet / income statement / cash flow indicators
  (Alpha Vantage names; flows of the year are the sum of its quarters, stocks the Q4 value);
  `full_statements=True` adds every other Alpha Vantage field of the three statements
  (`kg_names.BALANCE_SHEET` etc.: 86 indicators a period, as the benchmark's tables carry,
  instead of the 14 the questions use), drawn from a generator of their own;
- `data/News.json`: dated news per company (one event + sentiment each; some name two companies);
- `data/Chart/{SYM}_{year}-{W|M}{n}_Kline.png`: weekly (ISO week) and monthly candlesticks with
  a volume panel drawn by matplotlib (Agg) from the prices;
- `data/Prompt/*.txt`, `data/schema.xlsx`: the question templates used, per modality;
- `QA.json`: questions of the ten tasks over the five modalities (`QA_KINDS`) with gold
  answer, explanation, source uuids, task, modality and the gold time window.
Questions are temporal in a way that matters: each company has the same indicator at many
dates with different values, so only the right window gives the right answer.
Uuids are uuid5 of the record's identity (stable for a seed, opaque to retrieval).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .kg_names import BALANCE_SHEET, CASH_FLOW, INCOME_STATEMENT
from .loaders import load_corpus
from .records import Corpus
from .synthetic_qa import QA_KINDS, QAContext, make_qa, uuid_for

__all__ = [
    "DEFAULT_COMPANIES",
    "NEWS_EVENTS",
    "NYSE_HOLIDAYS",
    "QA_KINDS",
    "make_synthetic_corpus",
    "resolve_tickers",
    "trading_days",
    "uuid_for",
]

DEFAULT_COMPANIES = {
    "AAPL": "Apple Inc",
    "MSFT": "Microsoft Corporation",
    "AMZN": "Amazon.com Inc",
    "NVDA": "NVIDIA Corporation",
    "GOOGL": "Alphabet Inc",
    "META": "Meta Platforms Inc",
    "TSLA": "Tesla Inc",
    "ADBE": "Adobe Inc",
    "NFLX": "Netflix Inc",
    "INTC": "Intel Corporation",
    "CSCO": "Cisco Systems Inc",
    "PEP": "PepsiCo Inc",
    "COST": "Costco Wholesale Corporation",
    "AMD": "Advanced Micro Devices Inc",
    "QCOM": "Qualcomm Inc",
    "TXN": "Texas Instruments Inc",
}

_HOLIDAYS = {
    2021: "01-01 01-18 02-15 04-02 05-31 07-05 09-06 11-25 12-24",
    2022: "01-17 02-21 04-15 05-30 06-20 07-04 09-05 11-24 12-26",
    2023: "01-02 01-16 02-20 04-07 05-29 06-19 07-04 09-04 11-23 12-25",
}
# NYSE full-day closures (observed dates), 2021-2023.
NYSE_HOLIDAYS: frozenset[datetime.date] = frozenset(
    datetime.date(y, int(md[:2]), int(md[3:])) for y, s in _HOLIDAYS.items() for md in s.split()
)

# (event phrase = the ED gold answer, aspect, sentiment = the SC gold answer)
NEWS_EVENTS = (
    ("announced a share buyback program", "Dividend Policy", "Positive"),
    ("reported record quarterly sales", "Sales", "Positive"),
    ("launched a new product line", "product", "Positive"),
    ("appointed a new chief financial officer", "Appointment", "Neutral"),
    ("faced a regulatory investigation", "Regulatory", "Negative"),
    ("was sued over patent infringement", "Legal", "Negative"),
    ("announced layoffs across several divisions", "employment", "Negative"),
    ("agreed to acquire a software startup", "M&A", "Positive"),
    ("cut its annual revenue outlook", "Financial", "Negative"),
    ("disclosed a customer data breach", "Risks", "Negative"),
    ("opened a new research campus", "Strategy", "Positive"),
    ("raised its quarterly dividend", "Dividend Policy", "Positive"),
    ("held its annual shareholder meeting", "Company Communication", "Neutral"),
    ("expanded its cloud service to new regions", "service", "Positive"),
)
_SENTIMENT_LINE = {
    "Positive": "Analysts welcomed the move and several raised their price targets.",
    "Negative": "Analysts warned the news could weigh on results in the coming quarters.",
    "Neutral": "Analysts said the announcement was largely in line with expectations.",
}


def trading_days(
    start: datetime.date, end: datetime.date, holidays: frozenset[datetime.date] = NYSE_HOLIDAYS
) -> list[datetime.date]:
    """Weekdays in [start, end] that are not holidays, in order."""
    out, d = [], start
    while d <= end:
        if d.weekday() < 5 and d not in holidays:
            out.append(d)
        d += datetime.timedelta(days=1)
    return out


def resolve_tickers(tickers: int | Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """int n -> the first n of `DEFAULT_COMPANIES` (then "SYN<i>" companies); a list of symbols
    (names from the defaults or generated); or an explicit {symbol: company} mapping."""
    if isinstance(tickers, Mapping):
        return dict(tickers)
    if isinstance(tickers, int):
        syms = list(DEFAULT_COMPANIES)[:tickers]
        syms += [f"SYN{i}" for i in range(len(syms), tickers)]
    else:
        syms = list(tickers)
    return {s: DEFAULT_COMPANIES.get(s, f"Synthetic {s} Corporation") for s in syms}


def _prices(rng: np.random.Generator, days: list[datetime.date]) -> dict[str, np.ndarray]:
    """One ticker's OHLCV: {"Open","High","Low","Close": [T] float (2 decimals), "Volume": [T]}."""
    t = len(days)
    close = rng.uniform(40, 400) * np.exp(np.cumsum(rng.normal(0.0003, 0.02, t)))
    prev = np.concatenate([[close[0] * np.exp(rng.normal(0, 0.01))], close[:-1]])
    open_ = prev * np.exp(rng.normal(0, 0.006, t))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.008, t)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.008, t)))
    vol = rng.integers(1_000_000, 60_000_000, t)
    out = {
        k: np.round(v, 2)
        for k, v in zip(("Open", "High", "Low", "Close"), (open_, high, low, close))
    }
    out["High"] = np.maximum.reduce([out["High"], out["Open"], out["Close"]])
    out["Low"] = np.minimum.reduce([out["Low"], out["Open"], out["Close"]])
    out["Volume"] = vol.astype(np.float64)
    return out


_STOCKS = ("totalAssets", "totalCurrentAssets", "totalCurrentLiabilities")
_STOCKS += ("totalShareholderEquity", "shortTermDebt", "longTermDebt")


def _quarter_tables(rng: np.random.Generator) -> list[dict[str, float]]:
    """Four quarters of consistent statements (USD, whole millions)."""
    base, assets = rng.uniform(5e9, 9e10), rng.uniform(2.0, 5.0)
    out = []
    for _ in range(4):
        rev = base * (1 + rng.normal(0, 0.1))
        cogs = rev * rng.uniform(0.3, 0.7)
        gp = rev - cogs
        opex = gp * rng.uniform(0.3, 0.7)
        ni = (gp - opex) * rng.uniform(0.7, 0.9)
        ta = base * assets * (1 + rng.normal(0, 0.05))
        tca = ta * rng.uniform(0.2, 0.5)
        v = {
            "totalRevenue": rev, "costOfRevenue": cogs, "grossProfit": gp,
            "operatingExpenses": opex, "netIncome": ni,
            "totalAssets": ta, "totalCurrentAssets": tca,
            "totalCurrentLiabilities": tca * rng.uniform(0.6, 1.5),
            "totalShareholderEquity": ta * rng.uniform(0.3, 0.6),
            "shortTermDebt": ta * rng.uniform(0.01, 0.06),
            "longTermDebt": ta * rng.uniform(0.05, 0.25),
            "operatingCashflow": ni * rng.uniform(0.9, 1.4),
            "capitalExpenditures": rev * rng.uniform(0.03, 0.12),
            "dividendPayout": ni * rng.uniform(0.0, 0.3),
        }  # fmt: skip
        v = {k: float(round(x / 1e6) * 1e6) for k, x in v.items()}
        v["grossProfit"] = v["totalRevenue"] - v["costOfRevenue"]
        out.append(v)
    return out


def _annual(quarters: list[dict[str, float]]) -> dict[str, float]:
    return {
        k: (quarters[-1][k] if k in _STOCKS else sum(q[k] for q in quarters)) for k in quarters[0]
    }


def _filler(rng: np.random.Generator, quarters: list[dict[str, float]]) -> list[dict[str, float]]:
    """The Alpha Vantage fields the questions do not use, for four quarters and the year:
    balance-sheet fields a share of total assets (stocks: the year takes Q4), income and
    cash-flow fields a share of revenue (flows: the year sums the quarters); whole millions."""
    used = set(quarters[0])
    fields = [(f, True) for f in sorted(BALANCE_SHEET - used)]
    fields += [(f, False) for f in sorted((INCOME_STATEMENT | CASH_FLOW) - used)]
    share = {f: rng.uniform(0.002, 0.3) for f, _ in fields}
    out: list[dict[str, float]] = []
    for q in quarters:
        row = {}
        for f, stock in fields:
            base = q["totalAssets"] if stock else q["totalRevenue"]
            row[f] = float(round(base * share[f] * rng.uniform(0.9, 1.1) / 1e6) * 1e6)
        out.append(row)
    stocks = {f for f, stock in fields if stock}
    out.append({f: out[-1][f] if f in stocks else sum(r[f] for r in out) for f, _ in fields})
    return out


class _ChartDrawer:
    """Candlesticks (green up, red down) over a volume panel, on one reused Agg figure (no pyplot;
    reusing the artists makes a chart ~10 ms instead of ~100 ms)."""

    def __init__(self, dpi: int):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(4, 3), dpi=dpi)
        FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes((0.02, 0.3, 0.96, 0.68))
        self.axv = self.fig.add_axes((0.02, 0.02, 0.96, 0.25))
        for a in (self.ax, self.axv):
            a.set_axis_off()
        self.wick = self.ax.vlines([], [], [], linewidth=1)
        self.body = self.ax.vlines([], [], [], linewidth=4)
        self.vol = self.axv.vlines([], [], [], linewidth=4)

    def draw(self, path: Path, o: dict[str, np.ndarray]) -> None:
        """o: {"Open","High","Low","Close","Volume"}: [T] arrays of one chart period."""
        x = np.arange(len(o["Close"]), dtype=np.float64)
        colors = np.where(o["Close"] >= o["Open"], "tab:green", "tab:red")
        lo, hi = np.minimum(o["Open"], o["Close"]), np.maximum(o["Open"], o["Close"])
        zero = np.zeros_like(x)
        for coll, y0, y1 in (
            (self.wick, o["Low"], o["High"]),
            (self.body, lo, hi),
            (self.vol, zero, o["Volume"]),
        ):
            coll.set_segments(np.stack([np.stack([x, y0], 1), np.stack([x, y1], 1)], 1))
            coll.set_color(colors)
        pad = max(float(o["High"].max() - o["Low"].min()) * 0.05, 0.01)
        self.ax.set_xlim(-1, len(x))
        self.axv.set_xlim(-1, len(x))
        self.ax.set_ylim(float(o["Low"].min()) - pad, float(o["High"].max()) + pad)
        self.axv.set_ylim(0, float(o["Volume"].max()) * 1.05)
        self.fig.savefig(path)


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1), encoding="utf-8")


def make_synthetic_corpus(
    root: str | Path,
    *,
    seed: int = 0,
    tickers: int | Sequence[str] | Mapping[str, str] = 5,
    start: str = "2022-01-01",
    end: str = "2022-12-31",
    news_per_company: int = 12,
    qa_per_kind: int = 4,
    charts: str = "all",
    chart_dpi: int = 32,
    full_statements: bool = False,
) -> Corpus:
    """Write a synthetic benchmark under `root` and return `loaders.load_corpus(root)`.

    Args:
      seed: all randomness (prices, tables, news dates, questions).
      tickers: see `resolve_tickers`.
      start, end: ISO dates of the price/news/chart range; tables cover the calendar years it
        touches (4 quarters + the annual report each).
      news_per_company: news items per company (on distinct trading days).
      qa_per_kind: questions per (task, modality) kind in `QA_KINDS` (fewer when the corpus
        is too small for distinct ones).
      charts: "all" (weekly + monthly), "monthly", "weekly" or "none".
      chart_dpi: PNG resolution (the 4x3 inch figure is 128x96 pixels at 32 dpi).
      full_statements: write every Alpha Vantage field of the three statements (`_filler`,
        from `default_rng([seed, 2])`: the prices, tables and questions of a seed are the
        same either way); False: only the 14 indicators the questions use.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    companies = resolve_tickers(tickers)
    d0, d1 = datetime.date.fromisoformat(start), datetime.date.fromisoformat(end)
    days = trading_days(d0, d1)
    if not days:
        raise ValueError(f"make_synthetic_corpus: no trading day between {start} and {end}")
    prices, tables = {}, {}
    price_rows, table_rows, news_rows = [], [], []
    filler_rng = np.random.default_rng([seed, 2])
    for sym, name in companies.items():
        px = prices[sym] = _prices(rng, days)
        for t, day in enumerate(days):
            for ind in ("Open", "High", "Low", "Close", "Volume"):
                unit = "shares" if ind == "Volume" else "USD"
                price_rows.append({
                    "Company": name, "Symbol": sym, "Date": day.isoformat(), "Interval": "Date",
                    "indicator_name": ind, "indicator_value": float(px[ind][t]), "unit": unit,
                    "UUID": uuid_for("price", sym, day, ind), "SourceType": "StockPrice",
                })  # fmt: skip
        for year in range(d0.year, d1.year + 1):
            qs = _quarter_tables(rng)
            periods = [
                (f"{year}-{3 * q + 3:02d}-{(31, 30, 30, 31)[q]}", "Quarter", v)
                for q, v in enumerate(qs)
            ]
            periods.append((f"{year}-12-31", "Year", _annual(qs)))
            tables[(sym, year)] = periods
            if full_statements:
                more = _filler(filler_rng, qs)
                periods = [(d, i, {**v, **m}) for (d, i, v), m in zip(periods, more)]
            for date, interval, values in periods:
                for ind, value in values.items():
                    table_rows.append({
                        "Company": name, "Symbol": sym, "Date": date, "Interval": interval,
                        "indicator_name": ind, "indicator_value": value, "unit": "USD",
                        "UUID": uuid_for("table", sym, date, interval, ind),
                        "SourceType": "FinancialTable",
                    })  # fmt: skip
    syms = list(companies)
    for sym in syms:
        n = min(news_per_company, len(days))
        for t in sorted(rng.choice(len(days), size=n, replace=False)):
            day, (event, aspect, senti) = days[t], NEWS_EVENTS[rng.integers(len(NEWS_EVENTS))]
            both = [sym]
            if len(syms) > 1 and rng.random() < 0.2:
                both.append(syms[(syms.index(sym) + 1 + rng.integers(len(syms) - 1)) % len(syms)])
            name, close = companies[sym], prices[sym]["Close"][t]
            partner = f" The report also mentioned {companies[both[1]]}." if len(both) > 1 else ""
            news_rows.append({
                "Title": f"{name} {event}",
                "Date": day.isoformat(),
                "Text": f"On {day.isoformat()}, {name} ({sym}) {event}. {_SENTIMENT_LINE[senti]} "
                f"The stock closed at {close:.2f} USD that day.{partner}",
                "uuid": uuid_for("news", sym, day, event),
                "Company": [companies[s] for s in both], "Symbol": both,
                "Aspect": aspect, "Sentiment": senti,
            })  # fmt: skip
    data_dir = root / "data"
    _write_json(data_dir / "StockPrice.json", price_rows)
    _write_json(data_dir / "FinancialTable.json", table_rows)
    _write_json(data_dir / "News.json", news_rows)
    chart_rows = _write_charts(data_dir / "Chart", prices, days, charts, chart_dpi)
    ctx = QAContext(rng, companies, days, prices, tables, news_rows, chart_rows)
    wording = np.random.default_rng([seed, 1])  # its own stream: the draws above stay as they were
    _write_json(root / "QA.json", make_qa(ctx, qa_per_kind, wording))
    _write_templates(data_dir)
    return load_corpus(root)


def _write_charts(
    chart_dir: Path,
    prices: dict[str, dict[str, np.ndarray]],
    days: list[datetime.date],
    which: str,
    dpi: int,
) -> list[dict]:
    """Draw the weekly/monthly PNGs; -> [{"uuid", "symbol", "period", "year", "idx": [t...]}]."""
    if which not in ("all", "monthly", "weekly", "none"):
        raise ValueError(f"charts={which!r}: expected all, monthly, weekly or none")
    groups: dict[tuple[int, str], list[int]] = {}
    for t, d in enumerate(days):
        iy, iw, _ = d.isocalendar()
        if which in ("all", "weekly"):
            groups.setdefault((iy, f"W{iw}"), []).append(t)
        if which in ("all", "monthly"):
            groups.setdefault((d.year, f"M{d.month}"), []).append(t)
    chart_dir.mkdir(parents=True, exist_ok=True)
    rows, drawer = [], _ChartDrawer(dpi) if groups else None
    for sym, px in prices.items():
        for (year, period), idx in groups.items():
            uid = f"{sym}_{year}-{period}_Kline"
            sub = {k: v[idx] for k, v in px.items()}
            drawer.draw(chart_dir / f"{uid}.png", sub)
            rows.append({"uuid": uid, "symbol": sym, "period": period, "year": year, "idx": idx})
    return rows


def _write_templates(data_dir: Path) -> None:
    """schema.xlsx (one sheet per modality: Task, Modality, QuestionSchema) + Prompt/*.txt."""
    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    prompts: dict[str, list[str]] = {}
    for task, modality, _, template in QA_KINDS:
        if modality not in wb.sheetnames:
            wb.create_sheet(modality).append(["No", "Type", "Modality", "QuestionSchema"])
        ws = wb[modality]
        ws.append([ws.max_row, task, modality, template])
        prompts.setdefault(modality, []).append(f"- ({task}) {template}")
    wb.save(data_dir / "schema.xlsx")
    (data_dir / "Prompt").mkdir(exist_ok=True)
    for modality, lines in prompts.items():
        head = f"Synthetic FinTMMBench {modality} questions are generated from these templates:\n"
        (data_dir / "Prompt" / f"{modality}.txt").write_text(head + "\n".join(lines) + "\n")
