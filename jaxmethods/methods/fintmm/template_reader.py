"""The deterministic template reader: answers from the retrieved records only (demo, tests).

It reads numbers from the retrieved raw rows (or, under -raw, from the price/table entities'
descriptions) and answers each task with the same arithmetic as the synthetic question
templates; it never uses a record that was not retrieved, so retrieval quality decides its
accuracy, and it makes no guess a reader would make.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

from jaxmethods.methods.fintmm import formulas
from jaxmethods.methods.fintmm.formulas import fmt_number
from jaxmethods.methods.fintmm.generate import Generation
from jaxmethods.methods.fintmm.keywords import RuleKeywords, question_window, time_mentions
from jaxmethods.methods.fintmm.kg import Entity
from jaxmethods.methods.fintmm.records import Datum, NewsItem, TimeSpan
from jaxmethods.methods.fintmm.retrieve import Retrieved


@dataclasses.dataclass(frozen=True)
class Fact:
    """One number read from the retrieved context: symbol, indicator, time, value."""

    symbol: str
    indicator: str
    time: TimeSpan
    value: float


_CELL = re.compile(r"([A-Za-z][A-Za-z]*) (-?\d+(?:\.\d+)?)")
_SYMBOL_IN_PARENS = re.compile(r"\(([A-Z][A-Z0-9.\-]*)\)")
_POSITIVE = frozenset(["welcomed", "raised", "raises", "record", "strong", "beat", "upgrade", "upgraded", "gains", "surged", "expanded", "acquire", "launched", "opened"])  # fmt: skip
_NEGATIVE = frozenset(["warned", "warns", "weigh", "cut", "sued", "probe", "investigation", "layoffs", "breach", "downgrade", "missed", "fell", "faced"])  # fmt: skip
_RATIOS = ("current ratio", "gross margin", "debt-to-equity")


def _description_facts(items: Sequence) -> list[Fact]:
    """Numbers in the descriptions of price-day and table entities (`kg.build_kg` writes
    "...: Open 1.5 USD, Close 2 USD" / "...: totalRevenue 5000 USD; ..."): what an LLM reads
    when raw records are not given (-raw)."""
    out = []
    for it in items:
        if not isinstance(it, Entity) or it.time is None or it.kind not in ("price", "table"):
            continue
        head, _, tail = it.description.partition("): ")
        if it.kind == "price":
            sym = it.name.split()[0]
        else:
            m = _SYMBOL_IN_PARENS.search(head)
            if m is None:
                continue
            sym = m.group(1)
        out += [Fact(sym, ind, it.time, float(v)) for ind, v in _CELL.findall(tail)]
    return out


class _Context:
    """The retrieved facts and news of one question, with lookups that only see them."""

    def __init__(self, r: Retrieved, rules: RuleKeywords):
        self.facts = [Fact(d.symbol, d.indicator, d.time, d.value)
                      for d in r.raw if isinstance(d, Datum)]  # fmt: skip
        self.facts += _description_facts(r.items)
        self.news = [(n.time, set(n.symbols), f"{n.title}. {n.text}", n.title, n.companies)
                     for n in r.raw if isinstance(n, NewsItem)]  # fmt: skip
        for it in r.items:
            if isinstance(it, Entity) and it.kind == "news" and it.time is not None:
                text = it.description.partition(": ")[2]
                self.news.append((it.time, set(rules.symbols(text)), text, text.split(". ")[0],
                                  ()))  # fmt: skip

    def candidates(self, sym: str, ind: str) -> list[Fact]:
        low = ind.lower()
        return [f for f in self.facts if f.symbol == sym and f.indicator.lower() == low]

    def value(self, sym: str, ind: str, span: TimeSpan | None) -> float | None:
        """The fact for (sym, ind) at `span`: same time, else the shortest one containing or
        overlapping it; else (a guess, as a reader would make) the nearest in time."""
        cands = self.candidates(sym, ind)
        if not cands:
            return None
        if span is None:
            return cands[0].value
        exact = [f for f in cands if f.time == span]
        if exact:
            return exact[0].value
        over = [f for f in cands if f.time.overlaps(span)]
        if over:
            return min(over, key=lambda f: f.time.days).value
        mid = span.start.toordinal()
        return min(cands, key=lambda f: abs(f.time.start.toordinal() - mid)).value

    def series(self, sym: str, ind: str, span: TimeSpan | None, *, max_days: int = 1):
        """Facts inside `span` whose own time is at most `max_days` long (days: 1; quarters:
        92), one per time, in time order."""
        by_time = {}
        for f in self.candidates(sym, ind):
            inside = span is None or (span.start <= f.time.start and f.time.end <= span.end)
            if inside and f.time.days <= max_days:
                by_time.setdefault(f.time.start, f.value)
        return [by_time[t] for t in sorted(by_time)]


def _num(x: float | None) -> str | None:
    return None if x is None else fmt_number(x)


class TemplateGenerator:
    """A deterministic reader: parses the question (companies, indicators, dates, and the
    question forms of the benchmark's templates: lookup, ratio, percentage change, trend,
    yes/no, sentiment, event, counterfactual, P/E, comparison, ranking, counting) and computes
    the answer from the RETRIEVED records only (raw records, else the numbers in the retrieved
    entity descriptions). A needed value that was not retrieved is replaced by the nearest
    retrieved one of the same company and indicator, as a reader would guess, so retrieval
    quality decides accuracy. `tasks` is accepted for the generator interface and unused."""

    def __init__(self, companies: Mapping[str, str], indicators: Sequence[str]):
        self.companies = dict(companies)
        self.rules = RuleKeywords(companies, indicators)

    def __call__(
        self, retrieved: Sequence[Retrieved], tasks: Sequence[str] | None = None
    ) -> list[Generation]:
        out = []
        for r in retrieved:
            ans = self.answer(r)
            out.append(Generation(ans, f"Step 1: read the retrieved records.\nFinal answer: {ans}"))
        return out

    def answer(self, r: Retrieved) -> str:
        q = r.question
        ql = q.lower()
        syms, inds = self.rules.symbols(q), self.rules.indicators(q)
        spans = time_mentions(q)
        window = question_window(q)
        ctx = _Context(r, self.rules)
        by_name = any(self.companies[s].lower() in ql for s in syms)
        label = (lambda s: self.companies[s]) if by_name else (lambda s: s)
        sym = syms[0] if syms else None
        ind = inds[0] if inds else "Close"
        span = spans[0] if spans else window
        unknown = "unknown"
        if sym is None:
            return unknown
        if "p/e" in ql:
            shares = re.search(r"supposing\s+(\d+)", q)
            price, gp = ctx.value(sym, "Open", span), ctx.value(sym, "grossProfit", span)
            if shares and price is not None and gp:
                return fmt_number(formulas.pe_ratio(price, gp, float(shares.group(1))))
            return unknown
        if ql.startswith("rank"):
            vals = {s: ctx.value(s, ind, span) for s in syms}
            if any(v is None for v in vals.values()):
                return unknown
            return ", ".join(label(s) for s in sorted(syms, key=lambda s: -vals[s]))
        if "how many" in ql:
            x = re.search(r"(?:exceed|above)\s+(-?\d+(?:\.\d+)?)", q)
            quarters = "quarter" in ql
            series = ctx.series(sym, ind, window, max_days=92 if quarters else 1)
            return str(sum(v > float(x.group(1)) for v in series)) if x else unknown
        if ql.startswith("which") and len(syms) >= 2:
            vals = {s: ctx.value(s, ind, span) for s in syms[:2]}
            if any(v is None for v in vals.values()):
                return unknown
            best = max if ("higher" in ql or "more" in ql) else min
            return label(best(syms[:2], key=lambda s: vals[s]))
        if "candlestick" in ql or ("trend" in ql and "increasing or decreasing" in ql):
            opens, closes = ctx.series(sym, "Open", window), ctx.series(sym, "Close", window)
            if opens and closes:
                return "increasing" if closes[-1] >= opens[0] else "decreasing"
            return self._chart_trend(r, sym, window) or unknown
        if "trend" in ql:
            quarters = bool(re.search(r"(?<![A-Za-z])Q[1-4]\b", q))  # "Q2 2022", "2022Q2"
            series = ctx.series(sym, ind, window, max_days=92 if quarters else 1)
            return formulas.trend(series) if len(series) >= 2 else unknown
        if "percentage" in ql and len(spans) >= 2:
            a, b = ctx.value(sym, ind, spans[0]), ctx.value(sym, ind, spans[1])
            return _num(formulas.growth_rate(a, b)) if a and b is not None else unknown
        if m := re.search(r"had been (\d+(?:\.\d+)?)% higher", q):
            v = ctx.value(sym, ind, span)
            return _num(v * (1 + float(m.group(1)) / 100)) if v is not None else unknown
        if "close higher than it opened" in ql:
            o, c = ctx.value(sym, "Open", span), ctx.value(sym, "Close", span)
            return unknown if o is None or c is None else ("Yes" if c > o else "No")
        if "positive, negative or neutral" in ql or "sentiment" in ql:
            text = self._news(ctx, sym, span, field=2)
            return _sentiment(text) if text else unknown
        if "what happened" in ql:
            title = self._news(ctx, sym, span, field=3)
            if not title:
                return unknown
            name = self.companies[sym]
            return title.removeprefix(name).strip() if title.startswith(name) else title
        ratio = next((x for x in _RATIOS if x in ql), None)
        if ratio is not None:
            v = self._ratio(ctx, sym, span, ratio)
            if v is None:
                return unknown
            if "cover" in ql:
                return "Yes" if v >= 1 else "No"
            return fmt_number(v)
        return _num(ctx.value(sym, ind, span)) or unknown

    @staticmethod
    def _ratio(ctx: _Context, sym: str, span, ratio: str) -> float | None:
        get = lambda ind: ctx.value(sym, ind, span)
        if ratio == "current ratio":
            a, b = get("totalCurrentAssets"), get("totalCurrentLiabilities")
            return None if a is None or not b else formulas.current_ratio(a, b)
        if ratio == "gross margin":
            a, b = get("totalRevenue"), get("costOfRevenue")
            return None if not a or b is None else formulas.gross_margin(a, b)
        s, lt, e = get("shortTermDebt"), get("longTermDebt"), get("totalShareholderEquity")
        return None if s is None or lt is None or not e else formulas.debt_to_equity(s, lt, e)

    @staticmethod
    def _news(ctx: _Context, sym: str, span, *, field: int) -> str | None:
        """The retrieved news about `sym` at `span` (else the nearest retrieved one)."""
        about = [n for n in ctx.news if sym in n[1]]
        if not about:
            return None
        if span is not None:
            same = [n for n in about if n[0].overlaps(span)]
            if same:
                return same[0][field]
            mid = span.start.toordinal()
            about.sort(key=lambda n: abs(n[0].start.toordinal() - mid))
        return about[0][field]

    @staticmethod
    def _chart_trend(r: Retrieved, sym: str, window) -> str | None:
        """From a retrieved chart entity's summary ("open X, close Y")."""
        for it in r.items:
            if isinstance(it, Entity) and it.kind == "chart" and f"({sym})" in it.description:
                if window is not None and it.time != window:
                    continue
                o = re.search(r"\bopen (-?\d+(?:\.\d+)?)", it.description)
                c = re.search(r"\bclose (-?\d+(?:\.\d+)?)", it.description)
                if o and c:
                    return "increasing" if float(c.group(1)) >= float(o.group(1)) else "decreasing"
        return None


def _sentiment(text: str) -> str:
    low = text.lower()
    if "in line with expectations" in low:
        return "Neutral"
    words = re.findall(r"[a-z]+", low)
    pos = sum(w in _POSITIVE for w in words)
    neg = sum(w in _NEGATIVE for w in words)
    return "Positive" if pos > neg else "Negative" if neg > pos else "Neutral"
