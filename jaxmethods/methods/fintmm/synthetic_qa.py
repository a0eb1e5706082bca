"""Synthetic FinTMMBench questions: the ten tasks over the five modalities (`QA_KINDS`).

Each generator draws one question from the synthetic prices / tables / news / charts, with its
gold answer (numbers through `formulas.fmt_number`), step-wise explanation, source uuids and the
gold time window. Used by `synthetic.make_synthetic_corpus`, which writes them to `QA.json`.
"""

from __future__ import annotations

import calendar
import datetime
import uuid as uuidlib
from dataclasses import dataclass

import numpy as np

from . import formulas
from .formulas import fmt_number
from .synthetic_phrasing import Q_TOKEN_FORMS, QUARTER_MIX, period_days, rephrase
from .synthetic_phrasing import period_text as _plabel

_NAMESPACE = uuidlib.UUID("6d016850-0000-4000-8000-000000000000")


def uuid_for(*parts: object) -> str:
    """Deterministic opaque uuid (uuid5) of a record's identity."""
    return str(uuidlib.uuid5(_NAMESPACE, "|".join(str(p) for p in parts)))


@dataclass
class QAContext:
    rng: np.random.Generator
    companies: dict[str, str]
    days: list[datetime.date]
    prices: dict[str, dict[str, np.ndarray]]
    tables: dict[tuple[str, int], list[tuple[str, str, dict[str, float]]]]
    news: list[dict]
    charts: list[dict]

    def syms(self, k: int) -> list[str] | None:
        pool = list(self.companies)
        return None if len(pool) < k else [str(s) for s in self.rng.choice(pool, k, replace=False)]

    def day(self, span: int = 1) -> int | None:
        n = len(self.days) - span + 1
        return None if n <= 0 else int(self.rng.integers(n))

    def puid(self, sym: str, t: int, ind: str) -> str:
        return uuid_for("price", sym, self.days[t], ind)

    def period(self, sym: str, annual: bool = False) -> tuple[int, int, str, str, dict]:
        """(year, quarter 1..4 or 0 for the annual report, date, interval, values)."""
        year = int(self.rng.choice(sorted({y for s, y in self.tables if s == sym})))
        k = int(self.rng.integers(5 if annual else 4))
        date, interval, values = self.tables[(sym, year)][k]
        return year, (0 if k == 4 else k + 1), date, interval, values

    def tuid(self, sym: str, date: str, interval: str, ind: str) -> str:
        return uuid_for("table", sym, date, interval, ind)


def _item(task, modality, question, answer, sources, time, steps=()) -> dict:
    expl = [{"explanation": e, "equation": q} for e, q in steps]
    ans = {"answer": answer, "explanation": expl, "confidence": 1.0, "source": list(sources)}
    return {"question": question, "answers": [ans], "task": task, "modality": modality,
            "time": time}  # fmt: skip


_WORD = {"Open": "opening", "Close": "closing", "High": "highest", "Low": "lowest"}
_FLOWS = ("totalRevenue", "grossProfit", "netIncome", "operatingCashflow", "operatingExpenses")


def _ie_price(c: QAContext):
    (sym,), t = c.syms(1), c.day()
    ind = str(c.rng.choice(list(_WORD)))
    v, d = fmt_number(c.prices[sym][ind][t]), c.days[t].isoformat()
    q = f"What was {sym}'s {_WORD[ind]} price on {d}?"
    return _item("IE", "Price", q, v, [c.puid(sym, t, ind)], d, [(f"{sym} {ind} on {d}: {v}", "")])


def _ie_table(c: QAContext):
    (sym,) = c.syms(1)
    year, k, date, iv, vals = c.period(sym, annual=True)
    ind = str(c.rng.choice(list(vals)))
    (txt, time), name, v = _plabel(year, k), c.companies[sym], fmt_number(vals[ind])
    q = f"What was {name}'s {ind} in {txt}?"
    return _item("IE", "Table", q, v, [c.tuid(sym, date, iv, ind)], time, [(f"{ind}={v}", "")])


def _news_pick(c: QAContext, unique: bool = True):
    n = c.news[int(c.rng.integers(len(c.news)))]
    sym, d = n["Symbol"][0], n["Date"]
    same = [m for m in c.news if sym in m["Symbol"] and m["Date"] == d]
    return None if unique and len(same) > 1 else (n, sym, d)


def _ie_hybrid(c: QAContext):
    if (got := _news_pick(c)) is None:
        return None
    n, sym, d = got
    t = c.days.index(datetime.date.fromisoformat(d))
    event = n["Title"].removeprefix(c.companies[sym] + " ")
    v = fmt_number(c.prices[sym]["Close"][t])
    q = f"What was {sym}'s closing price on {d}, the day {c.companies[sym]} {event}?"
    return _item("IE", "Hybrid", q, v, [n["uuid"], c.puid(sym, t, "Close")], d)


_RATIOS = (
    ("Current Ratio", formulas.current_ratio, ("totalCurrentAssets", "totalCurrentLiabilities")),
    ("Gross Margin", formulas.gross_margin, ("totalRevenue", "costOfRevenue")),
    ("Debt-to-Equity Ratio", formulas.debt_to_equity,
     ("shortTermDebt", "longTermDebt", "totalShareholderEquity")),
)  # fmt: skip


def _ratio(vals: dict, k: int):
    name, fn, inds = _RATIOS[k]
    return name, inds, fn(*(vals[i] for i in inds))


def _ac_table(c: QAContext):
    (sym,) = c.syms(1)
    year, k, date, iv, vals = c.period(sym)
    name, inds, v = _ratio(vals, int(c.rng.integers(3)))
    (txt, time), src = _plabel(year, k), [c.tuid(sym, date, iv, i) for i in inds]
    q = f"What was {c.companies[sym]}'s {name} in {txt}?"
    return _item("AC", "Table", q, fmt_number(v), src, time, [(name, " / ".join(inds))])


def _span(c: QAContext, lo: int, hi: int):
    n = int(c.rng.integers(lo, hi + 1))
    t = c.day(n)
    return None if t is None else (t, t + n - 1, c.days[t].isoformat(),
                                   c.days[t + n - 1].isoformat())  # fmt: skip


def _ac_price(c: QAContext):
    (sym,), (t0, t1, d0, d1) = c.syms(1), _span(c, 5, 20)
    a, b = c.prices[sym]["Close"][t0], c.prices[sym]["Close"][t1]
    q = f"By what percentage did {sym}'s closing price change from {d0} to {d1}?"
    src = [c.puid(sym, t0, "Close"), c.puid(sym, t1, "Close")]
    v, eq = fmt_number(formulas.growth_rate(a, b)), f"({b:.2f}-{a:.2f})/{a:.2f}*100"
    return _item("AC", "Price", q, v, src, f"{d0}..{d1}", [("", eq)])


def _ta_price(c: QAContext):
    (sym,), (t0, t1, d0, d1) = c.syms(1), _span(c, 3, 5)
    closes = list(c.prices[sym]["Close"][t0 : t1 + 1])
    q = f"What was the trend of {sym}'s closing price from {d0} to {d1}?"
    src = [c.puid(sym, t, "Close") for t in range(t0, t1 + 1)]
    return _item("TA", "Price", q, formulas.trend(closes), src, f"{d0}..{d1}")


def _ta_table(c: QAContext):
    (sym,) = c.syms(1)
    year, ind = c.period(sym)[0], str(c.rng.choice(_FLOWS))
    rows = c.tables[(sym, year)][:4]
    q = f"What was the trend of {c.companies[sym]}'s {ind} from Q1 {year} to Q4 {year}?"
    src = [c.tuid(sym, d, iv, ind) for d, iv, _ in rows]
    return _item("TA", "Table", q, formulas.trend([v[ind] for _, _, v in rows]), src, str(year))


def _ta_chart(c: QAContext):
    if not c.charts:
        return None
    ch = c.charts[int(c.rng.integers(len(c.charts)))]
    px, idx, n = c.prices[ch["symbol"]], ch["idx"], int(ch["period"][1:])
    ans = "increasing" if px["Close"][idx[-1]] >= px["Open"][idx[0]] else "decreasing"
    kind, txt = (("weekly", f"ISO week {n} of {ch['year']}") if ch["period"][0] == "W" else
                 ("monthly", f"{calendar.month_name[n]} {ch['year']}"))  # fmt: skip
    q = (f"According to {ch['symbol']}'s {kind} candlestick chart for {txt}, was the price "
         "trend increasing or decreasing?")  # fmt: skip
    return _item("TA", "Chart", q, ans, [ch["uuid"]], f"{ch['year']}-{ch['period']}")


def _lr_table(c: QAContext):
    (sym,) = c.syms(1)
    year, k, date, iv, vals = c.period(sym)
    name, inds, v = _ratio(vals, 0)
    (txt, time), src = _plabel(year, k), [c.tuid(sym, date, iv, i) for i in inds]
    q = (f"Based on its current ratio in {txt}, could {c.companies[sym]} cover its current "
         "liabilities with its current assets?")  # fmt: skip
    return _item("LR", "Table", q, "Yes" if v >= 1 else "No", src, time, [(name, fmt_number(v))])


def _lr_price(c: QAContext):
    (sym,), t = c.syms(1), c.day()
    d, px = c.days[t].isoformat(), c.prices[sym]
    q = f"Did {sym} close higher than it opened on {d}?"
    src = [c.puid(sym, t, "Open"), c.puid(sym, t, "Close")]
    return _item("LR", "Price", q, "Yes" if px["Close"][t] > px["Open"][t] else "No", src, d)


def _sc_news(c: QAContext):
    if (got := _news_pick(c)) is None:
        return None
    n, sym, d = got
    q = f"Was the news about {c.companies[sym]} on {d} positive, negative or neutral?"
    return _item("SC", "News", q, n["Sentiment"], [n["uuid"]], d)


def _ed_news(c: QAContext):
    if (got := _news_pick(c)) is None:
        return None
    n, sym, d = got
    name = c.companies[sym]
    q = f"What happened to {name} on {d}?"
    return _item("ED", "News", q, n["Title"].removeprefix(name + " "), [n["uuid"]], d)


def _cr_table(c: QAContext):
    (sym,) = c.syms(1)
    year, k, date, iv, vals = c.period(sym)
    ind, p = str(c.rng.choice(_FLOWS)), int(c.rng.choice([5, 10, 15, 20]))
    (txt, time), name = _plabel(year, k), c.companies[sym]
    q = f"If {name}'s {ind} in {txt} had been {p}% higher, what would it have been?"
    v, steps = fmt_number(vals[ind] * (1 + p / 100)), [("", f"{vals[ind]:.0f}*{1 + p / 100}")]
    return _item("CR", "Table", q, v, [c.tuid(sym, date, iv, ind)], time, steps)


def _cr_hybrid(c: QAContext):
    (sym,), t = c.syms(1), c.day()
    day, shares = c.days[t], int(c.rng.choice([1, 2, 5, 10])) * 10**9
    date, iv, vals = c.tables[(sym, day.year)][(day.month - 1) // 3]
    price = c.prices[sym]["Open"][t]
    v = formulas.pe_ratio(price, vals["grossProfit"], shares)
    q = (f"What would {c.companies[sym]}'s P/E ratio be on {day.isoformat()}, supposing "
         f"{shares} outstanding shares (price: that day's opening price; EPS: that quarter's "
         "grossProfit / shares)?")  # fmt: skip
    src = [c.puid(sym, t, "Open"), c.tuid(sym, date, iv, "grossProfit")]
    return _item("CR", "Hybrid", q, fmt_number(v), src, day.isoformat())


def _cp_price(c: QAContext):
    if (ab := c.syms(2)) is None:
        return None
    t = c.day()
    d, best = c.days[t].isoformat(), max(ab, key=lambda s: c.prices[s]["Close"][t])
    q = f"Which had the higher closing price on {d}, {ab[0]} or {ab[1]}?"
    return _item("CP", "Price", q, best, [c.puid(s, t, "Close") for s in ab], d)


def _multi_table(c: QAContext, n: int):
    if (syms := c.syms(n)) is None:
        return None
    year, k, date, iv, _ = c.period(syms[0])
    ind = str(c.rng.choice(_FLOWS))
    vals = {s: c.tables[(s, year)][k - 1][2][ind] for s in syms}
    return syms, ind, vals, _plabel(year, k), [c.tuid(s, date, iv, ind) for s in syms]


def _cp_table(c: QAContext):
    if (got := _multi_table(c, 2)) is None:
        return None
    (a, b), ind, vals, (txt, time), src = got
    names = c.companies
    q = f"Which company reported the higher {ind} in {txt}, {names[a]} or {names[b]}?"
    return _item("CP", "Table", q, names[max((a, b), key=vals.get)], src, time)


def _st_price(c: QAContext):
    if (syms := c.syms(3)) is None:
        return None
    t = c.day()
    d, order = c.days[t].isoformat(), sorted(syms, key=lambda s: -c.prices[s]["Close"][t])
    q = f"Rank {syms[0]}, {syms[1]} and {syms[2]} by closing price on {d}, from highest to lowest."
    return _item("ST", "Price", q, ", ".join(order), [c.puid(s, t, "Close") for s in syms], d)


def _st_table(c: QAContext):
    if (got := _multi_table(c, 3)) is None:
        return None
    syms, ind, vals, (txt, time), src = got
    n = [c.companies[s] for s in syms]
    q = f"Rank {n[0]}, {n[1]} and {n[2]} by {ind} in {txt}, from highest to lowest."
    ans = ", ".join(c.companies[s] for s in sorted(syms, key=lambda s: -vals[s]))
    return _item("ST", "Table", q, ans, src, time)


def _ct_table(c: QAContext):
    (sym,) = c.syms(1)
    year, ind = c.period(sym)[0], str(c.rng.choice(_FLOWS))
    rows = c.tables[(sym, year)][:4]
    v = sorted(r[2][ind] for r in rows)
    m = int(c.rng.integers(1, 4))
    x = round((v[m - 1] + v[m]) / 2e6) * 1e6
    q = f"In how many quarters of {year} did {c.companies[sym]}'s {ind} exceed {fmt_number(x)} USD?"
    src = [c.tuid(sym, d, iv, ind) for d, iv, _ in rows]
    return _item("CT", "Table", q, str(sum(r[2][ind] > x for r in rows)), src, str(year))


def _count_above(c: QAContext, sym: str, idx: list[int], when: str, time: str):
    closes = c.prices[sym]["Close"][idx]
    x = int(np.median(closes))
    q = f"On how many trading days {when} did {sym} close above {x} USD?"
    src = [c.puid(sym, t, "Close") for t in idx]
    return _item("CT", "Price", q, str(int((closes > x).sum())), src, time)


def _ct_price(c: QAContext):
    (sym,), (t0, t1, d0, d1) = c.syms(1), _span(c, 8, 12)
    return _count_above(c, sym, list(range(t0, t1 + 1)), f"from {d0} to {d1}", f"{d0}..{d1}")


def _ct_price_month(c: QAContext):
    (sym,), (year, period, idx) = c.syms(1), period_days(c.days, c.rng, "M")
    when = f"in {calendar.month_name[int(period[1:])]} {year}"
    return _count_above(c, sym, idx, when, f"{year}-{period}")


def _ta_price_week(c: QAContext):
    (sym,), (year, period, idx) = c.syms(1), period_days(c.days, c.rng, "W")
    if len(idx) < 2:
        return None
    q = f"What was the trend of {sym}'s closing price in week {period[1:]} of {year}?"
    trend = formulas.trend(list(c.prices[sym]["Close"][idx]))
    return _item("TA", "Price", q, trend, [c.puid(sym, t, "Close") for t in idx],
                 f"{year}-{period}")  # fmt: skip


# (task, modality, generator, template written to schema.xlsx)
QA_KINDS = (
    ("IE", "Price", _ie_price,
     "What was [Symbol]'s [opening|closing|highest|lowest] price on [Date]?"),
    ("IE", "Table", _ie_table, "What was [Company]'s [Indicator] in [Quarter|Year Report]?"),
    ("IE", "Hybrid", _ie_hybrid,
     "What was [Symbol]'s closing price on [Date], the day [Company] [Event]?"),
    ("AC", "Table", _ac_table,
     "What was [Company]'s [Current Ratio|Gross Margin|Debt-to-Equity Ratio] in [Quarter]?"),
    ("AC", "Price", _ac_price,
     "By what percentage did [Symbol]'s closing price change from [Date1] to [Date2]?"),
    ("TA", "Price", _ta_price,
     "What was the trend of [Symbol]'s closing price from [Date1] to [Date2]?"),
    ("TA", "Table", _ta_table,
     "What was the trend of [Company]'s [Indicator] from Q1 [Year] to Q4 [Year]?"),
    ("TA", "Chart", _ta_chart,
     "According to [Symbol]'s [weekly|monthly] candlestick chart for [Week|Month], was the "
     "price trend increasing or decreasing?"),
    ("LR", "Table", _lr_table,
     "Based on its current ratio in [Quarter], could [Company] cover its current liabilities "
     "with its current assets?"),
    ("LR", "Price", _lr_price, "Did [Symbol] close higher than it opened on [Date]?"),
    ("SC", "News", _sc_news,
     "Was the news about [Company] on [Date] positive, negative or neutral?"),
    ("ED", "News", _ed_news, "What happened to [Company] on [Date]?"),
    ("CR", "Table", _cr_table,
     "If [Company]'s [Indicator] in [Quarter] had been {percentage}% higher, what would it "
     "have been?"),
    ("CR", "Hybrid", _cr_hybrid,
     "What would [Company]'s P/E ratio be on [Date], supposing [X] outstanding shares "
     "(EPS = grossProfit / shares)?"),
    ("CP", "Price", _cp_price,
     "Which had the higher closing price on [Date], [Symbol1] or [Symbol2]?"),
    ("CP", "Table", _cp_table,
     "Which company reported the higher [Indicator] in [Quarter], [Company1] or [Company2]?"),
    ("ST", "Price", _st_price,
     "Rank [Symbol1], [Symbol2] and [Symbol3] by closing price on [Date], from highest to "
     "lowest."),
    ("ST", "Table", _st_table,
     "Rank [Company1], [Company2] and [Company3] by [Indicator] in [Quarter], from highest to "
     "lowest."),
    ("CT", "Table", _ct_table,
     "In how many quarters of [Year] did [Company]'s [Indicator] exceed {Value} USD?"),
    ("CT", "Price", _ct_price,
     "On how many trading days from [Date1] to [Date2] did [Symbol] close above {Value} USD?"),
    ("CT", "Price", _ct_price_month,
     "On how many trading days in [Month] did [Symbol] close above {Value} USD?"),
    ("TA", "Price", _ta_price_week,
     "What was the trend of [Symbol]'s closing price in week [Week] of [Year]?"),
)  # fmt: skip


def make_qa(
    ctx: QAContext, per_kind: int, wording: np.random.Generator | None = None
) -> list[dict]:
    """`per_kind` distinct questions per QA_KINDS entry (fewer if it runs out of attempts);
    distinct = distinct canonical text, which `wording` (its own generator; None: keep it) then
    rewrites (`rephrase`). The reader finds a quarter trend by its "Q" tokens."""
    out, seen = [], set()
    for _, _, gen, _ in QA_KINDS:
        got, quarters = 0, Q_TOKEN_FORMS if gen is _ta_table else QUARTER_MIX
        for _ in range(per_kind * 20):
            if got == per_kind:
                break
            item = gen(ctx)
            if item is None or item["question"] in seen:
                continue
            seen.add(item["question"])
            if wording is not None:
                item["question"] = rephrase(item["question"], wording, quarter_forms=quarters)
            out.append({"qid": f"syn-{len(out):05d}", **item})
            got += 1
    return out
