"""Query analysis for TMMHybridRAG: LightRAG-style keywords and the question's time window.

    kw = RuleKeywords(corpus.companies, indicators)(["What was AAPL's Close on 2022-03-15?"])
    kw[0].low    # ("AAPL", "Apple Inc.", "Close", "2022-03-15")  entity-level keywords
    kw[0].high   # ("stock price",)                              relation / theme keywords
    question_window("What was MSFT's totalRevenue in Q2 2022?")   # TimeSpan 2022-04-01..06-30

`LLMKeywords(client)` asks an LLM for `{"high_level_keywords": [...], "low_level_keywords":
[...]}` with a prompt modelled on LightRAG's `keywords_extraction` (role, goal, instructions, two
examples; our wording, finance examples). `RuleKeywords` is the deterministic stand-in used by
the demo and tests: tickers and company names, indicator names, the window's label (normalised
by the temporal parser; -temporal keeps the time expressions as written instead:
`Keywords.without_time_parsing`), and a few theme words.

`question_window` reads the time expressions the benchmark's questions use (README and
`data/Prompt/*.txt`: "2022-03-04", "Q1 2022", "2022Q2", "2022 Year Report") plus natural forms
("March 15, 2022", "week 11 of 2022", "March 2022") and returns the smallest window covering all
of them (so "from Q1 2022 to Q3 2022" is 2022-01-01..2022-09-30), or None when there is none.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Callable, Mapping, Sequence

from jaxmethods.methods.fintmm.extract import parse_json_object
from jaxmethods.methods.fintmm.records import TimeSpan

__all__ = [
    "KEYWORDS_PROMPT",
    "Keywords",
    "LLMKeywords",
    "RuleKeywords",
    "parse_keywords",
    "question_window",
    "time_mentions",
    "time_phrases",
]

# ---------------------------------------------------------------- time expressions

_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for m in names
}
_MON = r"(?P<mon>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_Y = r"(?P<y>(?:19|20)\d{2})"
_ORD = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}

# Finest first: a span matched by an earlier pattern is masked before later ones run.
_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("range", re.compile(r"\b(?P<a>\d{4}-\d{2}-\d{2})\.\.(?P<b>\d{4}-\d{2}-\d{2})\b")),
    ("iso", re.compile(r"\b" + _Y + r"[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})\b")),
    ("mdy", re.compile(r"\b" + _MON + r"\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+" + _Y, re.I)),
    ("dmy", re.compile(r"\b(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+" + _MON + r",?\s+" + _Y, re.I)),
    ("week", re.compile(r"\b" + _Y + r"[-\s]?W(?P<w>\d{1,2})\b", re.I)),
    ("week", re.compile(r"\bW(?:eek)?\s*(?P<w>\d{1,2})(?:\s*(?:of|,|in)\s*|\s+)" + _Y, re.I)),
    ("month", re.compile(r"\b" + _Y + r"-M(?P<m>\d{1,2})\b", re.I)),
    ("month", re.compile(r"\b" + _MON + r"\s*(?:of\s+|,\s*)?" + _Y, re.I)),
    ("month", re.compile(r"\b" + _Y + r"-(?P<m>\d{2})\b(?!-)")),
    ("quarter", re.compile(r"\b" + _Y + r"\s*-?\s*Q(?P<q>[1-4])\b", re.I)),
    ("quarter", re.compile(r"\bQ(?P<q>[1-4])(?:\s*(?:of|,|in|FY)\s*|\s*)" + _Y, re.I)),
    (
        "quarter",
        re.compile(
            r"\b(?P<qw>first|second|third|fourth|1st|2nd|3rd|4th)\s+(?:fiscal\s+)?quarter"
            r"\s+(?:of\s+|in\s+)?(?:fiscal\s+(?:year\s+)?)?" + _Y,
            re.I,
        ),
    ),
    ("year", re.compile(r"(?<![\d.,$])\b(?:FY\s?)?" + _Y + r"\b(?![.,]\d)", re.I)),
]


def _span(kind: str, m: re.Match) -> TimeSpan | None:
    g = m.groupdict()
    try:
        if kind == "range":
            a = datetime.date.fromisoformat(g["a"])
            return TimeSpan(a, datetime.date.fromisoformat(g["b"]))
        year = int(g["y"])
        if kind in ("iso", "mdy", "dmy"):
            month = int(g["m"]) if g.get("m") else _MONTHS[g["mon"].lower()]
            return TimeSpan.day(datetime.date(year, month, int(g["d"])))
        if kind == "week":
            return TimeSpan.iso_week(year, int(g["w"]))
        if kind == "month":
            month = int(g["m"]) if g.get("m") else _MONTHS[g["mon"].lower()]
            return TimeSpan.month(year, month)
        if kind == "quarter":
            q = int(g["q"]) if g.get("q") else _ORD[g["qw"].lower()]
            return TimeSpan.quarter(year, q)
        return TimeSpan.year(year)
    except ValueError:  # 2022-02-30, week 60: not a date, ignore the mention
        return None


_YEAR_BEFORE = re.compile(
    r"\b(?:in|of|for|during|year|fiscal|the|since|from|to|and|between|until|by|as)\s*$", re.I
)
_YEAR_AFTER = re.compile(r"^\s*(?:$|[?.,;:)]|year|annual|report|fiscal|full)", re.I)


def _year_context(text: str, m: re.Match) -> bool:
    """A bare 4-digit number is a year only in a time context ("in 2022", "the 2022 Year
    Report", "... 2022?"), not in "2000 shares"."""
    if m.group(0).upper().startswith("FY"):
        return True
    return bool(_YEAR_BEFORE.search(text[: m.start()]) or _YEAR_AFTER.match(text[m.end() :]))


def _mentions(question: str) -> list[tuple[int, str, TimeSpan]]:
    text, found = question, []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            if kind == "year" and not _year_context(text, m):
                continue
            span = _span(kind, m)
            if span is not None:
                found.append((m.start(), question[m.start() : m.end()], span))
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return sorted(found, key=lambda x: x[0])


def time_mentions(question: str) -> list[TimeSpan]:
    """Every time expression in `question`, in order of appearance (finer patterns are
    matched first and masked, so "Q2 2022" is a quarter, not also a year)."""
    return [span for _, _, span in _mentions(question)]


def time_phrases(question: str) -> list[str]:
    """The text of every time expression `time_mentions` reads, as written ("March 15, 2022",
    "Q2 2022"), in order of appearance."""
    return [text for _, text, _ in _mentions(question)]


def question_window(question: str) -> TimeSpan | None:
    """The smallest inclusive window covering every time expression of `question`, or None.

    Recognised: ISO dates ("2022-03-15"), "March 15, 2022", "15 March 2022", ISO weeks
    ("2022-W11", "week 11 of 2022"), months ("2022-M3", "March 2022", "2022-03"), quarters
    ("Q2 2022", "2022Q2", "2022-Q2", "second quarter of 2022"), years ("2022", "FY2022",
    "2022 Year Report"), and `TimeSpan` range labels ("2022-01-03..2022-01-07").
    """
    spans = time_mentions(question)
    if not spans:
        return None
    return TimeSpan(min(s.start for s in spans), max(s.end for s in spans))


# ---------------------------------------------------------------- keywords


@dataclasses.dataclass(frozen=True)
class Keywords:
    """Low-level (entity: companies, tickers, indicators, dates) and high-level (relation,
    theme) keywords of one question. `time_keys`: the entries of `low` that a temporal parser
    normalised ("2022-Q2"); `times`: the question's time expressions as written ("Q2 2022")."""

    low: tuple[str, ...] = ()
    high: tuple[str, ...] = ()
    time_keys: tuple[str, ...] = ()
    times: tuple[str, ...] = ()

    def without_time_parsing(self) -> Keywords:
        """What an extractor without a temporal normaliser gives (-temporal): `time_keys`
        replaced in `low` by `times` as written. LLM keywords (times already as written, no
        `time_keys`) come back unchanged."""
        if not self.time_keys:
            return self
        low = [k for k in self.low if k not in self.time_keys] + list(self.times)
        return Keywords(tuple(dict.fromkeys(low)), self.high, (), self.times)

    def queries(self, mode: str = "joined") -> list[str]:
        """Dense-search query strings. "joined": LightRAG's two queries (the low-level keywords
        joined by ", ", then the high-level ones), empty ones dropped; "each": one per keyword."""
        if mode == "each":
            return list(dict.fromkeys(self.low + self.high))
        if mode != "joined":
            raise ValueError(f"Keywords.queries: mode must be 'joined' or 'each', got {mode!r}")
        return [q for q in (", ".join(self.low), ", ".join(self.high)) if q]


KEYWORDS_PROMPT = """---Role---
You are a financial research assistant who identifies both high-level and low-level keywords in
a user's question about companies, their financial statements, stock prices, charts and news.

---Goal---
Given the question, list both high-level and low-level keywords. High-level keywords name the
overarching concepts or themes (e.g. "stock price trend", "profitability", "market sentiment");
low-level keywords name the specific entities and details: company names, ticker symbols,
financial indicators (e.g. "totalRevenue", "Close"), and dates, weeks, months, quarters or years
exactly as the question states them.

---Instructions---
- Answer with JSON only, in this form:
  {{"high_level_keywords": [...], "low_level_keywords": [...]}}
- Keep every time expression of the question among the low-level keywords.

---Examples---
Question: "What was the closing price of Apple Inc. (AAPL) on 2022-03-15?"
Output: {{"high_level_keywords": ["stock price", "closing price"],
"low_level_keywords": ["Apple Inc.", "AAPL", "Close", "2022-03-15"]}}

Question: "Did Microsoft's totalRevenue grow faster than Alphabet's from Q1 2022 to Q3 2022?"
Output: {{"high_level_keywords": ["revenue growth", "comparison"],
"low_level_keywords": ["Microsoft", "MSFT", "Alphabet", "GOOGL", "totalRevenue", "Q1 2022",
"Q3 2022"]}}

---Real data---
Question: "{question}"
Output:"""

_RETRY_SUFFIX = "\n\nYour previous answer was not valid JSON. Reply with the JSON object only."


def _strings(value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))


def parse_keywords(text: str) -> Keywords | None:
    """`{"high_level_keywords": [...], "low_level_keywords": [...]}` from an LLM reply -> Keywords;
    None when there is no JSON object or neither list is present."""
    try:
        obj = parse_json_object(text)
    except ValueError:
        return None
    if not ({"high_level_keywords", "low_level_keywords"} & set(obj)):
        return None
    return Keywords(
        low=_strings(obj.get("low_level_keywords", [])),
        high=_strings(obj.get("high_level_keywords", [])),
    )


class LLMKeywords:
    """LightRAG-style keyword extraction through a `jaxmethods.llm` client.

    A reply without valid JSON is asked once more (the request changes, so the client's cache
    does not return the same reply); if that fails too, `fallback(question)` answers (default:
    no keywords) and `failures` counts it. The client's JSONL cache makes a rerun free.
    """

    def __init__(
        self,
        client,
        *,
        max_tokens: int = 256,
        fallback: Callable[[str], Keywords] | None = None,
        prompt: str = KEYWORDS_PROMPT,
    ):
        self.client, self.max_tokens, self.prompt = client, max_tokens, prompt
        self.fallback = fallback
        self.failures = 0

    def __call__(self, questions: Sequence[str]) -> list[Keywords]:
        from jaxmethods.llm import Request

        prompts = [self.prompt.format(question=q) for q in questions]
        reqs = [Request.from_prompt(p, max_tokens=self.max_tokens) for p in prompts]
        out = [parse_keywords(c.text) for c in self.client.complete(reqs)]
        retry = [i for i, k in enumerate(out) if k is None]
        if retry:
            again = [Request.from_prompt(prompts[i] + _RETRY_SUFFIX, max_tokens=self.max_tokens)
                     for i in retry]  # fmt: skip
            for i, c in zip(retry, self.client.complete(again)):
                out[i] = parse_keywords(c.text)
        result = []
        for q, k in zip(questions, out):
            if k is None:
                self.failures += 1
                k = self.fallback(q) if self.fallback is not None else Keywords()
            result.append(k)
        return result


# Phrases -> the indicator they name (checked before the indicator names themselves).
_INDICATOR_PHRASES = {
    "closing price": "Close",
    "close price": "Close",
    "opening price": "Open",
    "open price": "Open",
    "trading volume": "Volume",
    "highest price": "High",
    "lowest price": "Low",
    "high price": "High",
    "low price": "Low",
}
_THEMES = {
    "stock price": ("close", "open", "price", "volume", "stock", "trading"),
    "financial statement": ("revenue", "income", "assets", "liabilities", "cash", "equity",
                            "profit", "quarter", "report", "debt", "ratio"),
    "news": ("news", "announce", "report", "happened", "event"),
    "sentiment": ("sentiment", "positive", "negative"),
    "trend": ("trend", "increase", "decrease", "rise", "fall", "grow", "growth", "change"),
    "comparison": ("higher", "lower", "compare", "more", "less", "than", "which"),
    "chart": ("chart", "candlestick", "k-line", "kline"),
}  # fmt: skip
_SUFFIXES = re.compile(
    r"[,.]?\s+(?:inc|corp|corporation|co|ltd|plc|holdings|group|company|class [a-c])\.?$", re.I
)


def _short_name(name: str) -> str:
    prev = None
    while prev != name:
        prev, name = name, _SUFFIXES.sub("", name).strip()
    return name


class RuleKeywords:
    """Deterministic keywords: tickers (as whole upper-case words) and company names (full or
    without "Inc."/"Corp" suffixes, case-insensitive) with both forms emitted, indicator names
    (and phrases such as "closing price" -> "Close"), the window's normalised label (the
    `time_keys`; `Keywords.without_time_parsing` swaps it for the times as written), and theme
    words.

    Args:
      companies: symbol -> company name (`Corpus.companies`).
      indicators: indicator names of the corpus (`{d.indicator for d in corpus.data}`).
    """

    def __init__(self, companies: Mapping[str, str], indicators: Sequence[str] = ()):
        self.companies = dict(companies)
        self._symbols = [
            (s, re.compile(r"(?<![A-Za-z0-9])" + re.escape(s) + r"(?![A-Za-z0-9])"))
            for s in sorted(self.companies, key=len, reverse=True)
        ]
        self._names = []
        for s, name in self.companies.items():
            for form in {name, _short_name(name)}:
                if len(form) >= 3:
                    pat = re.compile(r"(?<!\w)" + re.escape(form) + r"(?!\w)", re.I)
                    self._names.append((s, pat))
        self._indicators = [
            (ind, re.compile(r"(?<!\w)" + re.escape(ind) + r"(?!\w)", re.I))
            for ind in sorted(set(indicators), key=len, reverse=True)
        ]

    def symbols(self, question: str) -> list[str]:
        """Tickers the question names (by symbol or by company name), in order of appearance."""
        hits: dict[str, int] = {}
        for s, pat in self._symbols:
            if m := pat.search(question):
                hits.setdefault(s, m.start())
        for s, pat in self._names:
            if m := pat.search(question):
                hits[s] = min(hits.get(s, m.start()), m.start())
        return sorted(hits, key=hits.get)

    def indicators(self, question: str) -> list[str]:
        """Indicator names the question names, in order of appearance."""
        hits: dict[str, int] = {}
        lower = question.lower()
        for phrase, ind in _INDICATOR_PHRASES.items():
            if (i := lower.find(phrase)) >= 0:
                hits.setdefault(ind, i)
        for ind, pat in self._indicators:
            if (m := pat.search(question)) and ind not in hits:
                hits[ind] = m.start()
        return sorted(hits, key=hits.get)

    def one(self, question: str) -> Keywords:
        low: list[str] = []
        for s in self.symbols(question):
            low += [s, self.companies[s]]
        low += self.indicators(question)
        window = question_window(question)
        keys = (window.label(),) if window is not None else ()
        words = set(re.findall(r"[a-z][a-z-]+", question.lower()))
        high = tuple(t for t, cues in _THEMES.items() if any(c in words for c in cues))
        low = tuple(dict.fromkeys(low + list(keys)))
        return Keywords(low, high, time_keys=keys, times=tuple(time_phrases(question)))

    def __call__(self, questions: Sequence[str]) -> list[Keywords]:
        return [self.one(q) for q in questions]
