"""Chart summaries for the KG's chart entities, `summarize(charts) -> list[str | None]`:

- `MLLMChartSummarizer(client, companies)`: the PNG as a base64 data URL in an OpenAI-style
  image content part (`jaxmethods.llm.types.image_part`) next to `CHART_PROMPT`, through a
  multimodal endpoint.
- `PriceChartSummarizer(data)`: the fallback when no multimodal endpoint is configured: open,
  close, high, low, volume and trend over the chart's period computed from the daily prices,
  labelled as such in the text (`PRICE_FALLBACK_LABEL`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from jaxmethods.llm.types import image_part
from jaxmethods.methods.fintmm.kg_names import chart_period_name, fmt_value
from jaxmethods.methods.fintmm.records import Chart, Datum, TimeSpan

PRICE_FALLBACK_LABEL = "[chart summary computed from daily prices, not from the image]"


class ChartSummarizer(Protocol):
    """`summarize(charts) -> list[str | None]` (None: no summary for that chart); `source`
    names the method ("mllm" | "prices") for `KGStats`."""

    source: str

    def summarize(self, charts: Sequence[Chart]) -> list[str | None]: ...


CHART_PROMPT = (
    "I am a financial analyst. This is the {freq} candlestick chart (with a volume panel) of "
    "{company} ({symbol}) for {label} ({start} to {end}). Summarise it in 2-4 sentences: the "
    "open and close level, the highest and lowest prices, the overall trend (up, down or "
    "sideways) and any notable moves or volume spikes. State the period in the summary."
)


def image_message(prompt: str, png: bytes) -> dict[str, Any]:
    """One OpenAI-style user message: a text part, then the PNG as a base64 data URL part."""
    return {"role": "user", "content": [{"type": "text", "text": prompt}, image_part(png)]}


class MLLMChartSummarizer:
    """Chart summaries from a multimodal OpenAI-compatible endpoint (e.g. gpt-4o-mini) through
    a `jaxmethods.llm` client. Charts without a PNG get None."""

    source = "mllm"

    def __init__(self, client, companies: Mapping[str, str], *, max_tokens: int = 256):
        self.client, self.companies, self.max_tokens = client, dict(companies), max_tokens

    def summarize(self, charts: Sequence[Chart]) -> list[str | None]:
        todo, requests = [], []
        for i, c in enumerate(charts):
            if c.path is None:
                continue
            with open(c.path, "rb") as f:
                png = f.read()
            t = c.time
            prompt = CHART_PROMPT.format(
                freq=chart_period_name(c).split()[0],
                company=self.companies.get(c.symbol, c.symbol),
                symbol=c.symbol,
                label=t.label(),
                start=t.start.isoformat(),
                end=t.end.isoformat(),
            )
            todo.append(i)
            requests.append(
                {"messages": [image_message(prompt, png)], "max_tokens": self.max_tokens}
            )
        out: list[str | None] = [None] * len(charts)
        if not requests:
            return out
        completions = self.client.complete(requests)
        for i, c in zip(todo, completions):
            out[i] = " ".join(c.text.split())
        return out


class PriceChartSummarizer:
    """The fallback chart summary, computed from the daily `StockPrice` data over the chart's
    period: first open, last close, highest high, lowest low, total volume, the number of trading
    days and the trend (up / down / flat within 0.5%), prefixed by `PRICE_FALLBACK_LABEL`.
    None when the period has no price rows for the symbol."""

    source = "prices"

    def __init__(self, data: Sequence[Datum], companies: Mapping[str, str] | None = None):
        self.companies = dict(companies or {})
        days: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        for d in data:
            if d.source_type == "StockPrice":
                days[d.symbol][d.date[:10]][d.indicator.lower()] = float(d.value)
        self.days = {s: dict(sorted(v.items())) for s, v in days.items()}

    def summarize(self, charts: Sequence[Chart]) -> list[str | None]:
        return [self._one(c) for c in charts]

    def _one(self, chart: Chart) -> str | None:
        span: TimeSpan = chart.time
        lo, hi = span.start.isoformat(), span.end.isoformat()
        rows = [(d, v) for d, v in self.days.get(chart.symbol, {}).items() if lo <= d <= hi]
        if not rows:
            return None
        first, last = rows[0][1], rows[-1][1]
        open_ = first.get("open", first.get("close"))
        close = last.get("close", last.get("open"))
        highs = [v.get("high", v.get("close")) for _, v in rows]
        lows = [v.get("low", v.get("close")) for _, v in rows]
        highs = [h for h in highs if h is not None]
        lows = [x for x in lows if x is not None]
        parts = [
            PRICE_FALLBACK_LABEL,
            f"{self.companies.get(chart.symbol, chart.symbol)} ({chart.symbol})",
            f"{chart_period_name(chart)} for {span.label()} ({rows[0][0]} to {rows[-1][0]},",
            f"{len(rows)} trading days):",
        ]
        facts = []
        if open_ is not None:
            facts.append(f"open {fmt_value(open_)}")
        if close is not None:
            facts.append(f"close {fmt_value(close)}")
        if highs:
            facts.append(f"high {fmt_value(max(highs))}")
        if lows:
            facts.append(f"low {fmt_value(min(lows))}")
        vols = [v["volume"] for _, v in rows if "volume" in v]
        if vols:
            facts.append(f"total volume {fmt_value(sum(vols))}")
        if open_ and close is not None:
            change = (close - open_) / open_ * 100
            trend = "flat" if abs(change) < 0.5 else ("upward" if change > 0 else "downward")
            facts.append(f"trend {trend} ({change:+.2f}%)")
        return " ".join(parts) + " " + ", ".join(facts) + "."
