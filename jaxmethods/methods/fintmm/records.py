"""FinTMMBench record types and time parsing (the types every fintmm module shares).

Formats follow the authors' prompt templates (`data/Prompt/*.txt`, README): an atomic datum is
`{Company, Symbol, Date, Interval, indicator_name, indicator_value, unit, UUID, SourceType}`, a
news item `{Title, Date, Text, uuid, Company[], Symbol[]}`, a chart file
`{TICKER}_{year}-{W1..W52|M1..M12}_Kline.png`.

Time is an inclusive calendar-day window (`TimeSpan`). Intervals:
- "Date": that day;
- "Quarter": the date is the quarter's end (Alpha Vantage `fiscalDateEnding`; the prompt says
  "if the Interval is Quarter and the date is 2022-03-31, then the quarter is Q1 2022"): the three
  calendar months ending with the date's month, i.e. the calendar quarter for Mar/Jun/Sep/Dec
  ends and the true fiscal quarter for other ends (NVDA's 2022-01-31 -> 2021-11-01..2022-01-31);
- "Year": likewise the twelve months ending with the date's month (the calendar year for Dec 31).
Labels round-trip through `parse_time`: "2022-03-15", "2022-Q1", "2022", "2022-W11" (ISO week),
"2022-M3", "2021-11-01..2022-01-31".
"""

from __future__ import annotations

import calendar
import datetime
import functools
import re
from dataclasses import dataclass, field

__all__ = [
    "INTERVALS",
    "MODALITIES",
    "TASKS",
    "Chart",
    "Corpus",
    "Datum",
    "NewsItem",
    "QAItem",
    "TimeSpan",
    "parse_date",
    "parse_time",
]

TASKS = ("IE", "AC", "TA", "LR", "SC", "ED", "CR", "CP", "ST", "CT")
MODALITIES = ("Table", "News", "Price", "Chart", "Hybrid")
INTERVALS = ("Date", "Quarter", "Year")

_INTERVAL_ALIASES = {
    "date": "Date",
    "day": "Date",
    "daily": "Date",
    "quarter": "Quarter",
    "quarterly": "Quarter",
    "year": "Year",
    "annual": "Year",
    "yearly": "Year",
}


def _month_end(year: int, month: int) -> datetime.date:
    return datetime.date(year, month, calendar.monthrange(year, month)[1])


def _months_back(year: int, month: int, n: int) -> tuple[int, int]:
    """(year, month) n-1 months before (year, month): the first month of an n-month window."""
    k = year * 12 + (month - 1) - (n - 1)
    return k // 12, k % 12 + 1


@dataclass(frozen=True)
class TimeSpan:
    """Inclusive calendar-day window [start, end]."""

    start: datetime.date
    end: datetime.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"TimeSpan: end {self.end} is before start {self.start}")

    @classmethod
    def day(cls, d: datetime.date) -> TimeSpan:
        return cls(d, d)

    @classmethod
    def month(cls, year: int, month: int) -> TimeSpan:
        return cls(datetime.date(year, month, 1), _month_end(year, month))

    @classmethod
    def quarter(cls, year: int, q: int) -> TimeSpan:
        return cls(datetime.date(year, 3 * q - 2, 1), _month_end(year, 3 * q))

    @classmethod
    def year(cls, year: int) -> TimeSpan:
        return cls(datetime.date(year, 1, 1), datetime.date(year, 12, 31))

    @classmethod
    def iso_week(cls, year: int, week: int) -> TimeSpan:
        """Monday..Sunday of ISO week `week` of ISO year `year`."""
        monday = datetime.date.fromisocalendar(year, week, 1)
        return cls(monday, monday + datetime.timedelta(days=6))

    def ordinals(self) -> tuple[int, int]:
        """(start.toordinal(), end.toordinal()): the day ordinals the vector store filters on."""
        return self.start.toordinal(), self.end.toordinal()

    def overlaps(self, other: TimeSpan) -> bool:
        return self.start <= other.end and other.start <= self.end

    def contains(self, d: datetime.date) -> bool:
        return self.start <= d <= self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def label(self) -> str:
        """The first that fits: "2022-03-15" | "2022" | "2022-Q1" | "2022-M3" | "2022-W11" |
        "2022-01-03..2022-01-05"."""
        s, e = self.start, self.end
        if s == e:
            return s.isoformat()
        if s.day == 1 and e == _month_end(e.year, e.month):
            if s.month == 1 and e.month == 12 and s.year == e.year:
                return str(s.year)
            if s.year == e.year and s.month == e.month:
                return f"{s.year}-M{s.month}"
            if s.year == e.year and e.month % 3 == 0 and s.month == e.month - 2:
                return f"{s.year}-Q{e.month // 3}"
        if s.isoweekday() == 1 and (e - s).days == 6:
            iy, iw, _ = s.isocalendar()
            return f"{iy}-W{iw}"
        return f"{s.isoformat()}..{e.isoformat()}"

    def __str__(self) -> str:
        return self.label()


_DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T].*)?\s*$")
_LABEL_Y = re.compile(r"^\s*(\d{4})\s*$")
_LABEL_Q = re.compile(r"^\s*(\d{4})-?Q([1-4])\s*$", re.I)
_LABEL_Q2 = re.compile(r"^\s*Q([1-4])\s+(\d{4})\s*$", re.I)  # "Q1 2022", the prompts' form
_LABEL_M = re.compile(r"^\s*(\d{4})-M(\d{1,2})\s*$", re.I)
_LABEL_W = re.compile(r"^\s*(\d{4})-W(\d{1,2})\s*$", re.I)
_LABEL_RANGE = re.compile(r"^\s*(\S+)\s*\.\.\s*(\S+)\s*$")


def parse_date(value: str, *, where: str) -> datetime.date:
    """ "YYYY-MM-DD" (optionally followed by a time, which is dropped) -> date.

    Raises ValueError naming `where` (e.g. "StockPrice.json[12] (uuid ...)").
    """
    m = _DATE.match(str(value))
    if m:
        try:
            return datetime.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError as err:
            raise ValueError(f"{where}: invalid date {value!r} ({err})") from None
    raise ValueError(f"{where}: cannot parse date {value!r} (expected YYYY-MM-DD)")


def _parse_label(value: str, *, where: str) -> TimeSpan | None:
    try:
        if m := _LABEL_Y.match(value):
            return TimeSpan.year(int(m[1]))
        if m := _LABEL_Q.match(value):
            return TimeSpan.quarter(int(m[1]), int(m[2]))
        if m := _LABEL_Q2.match(value):
            return TimeSpan.quarter(int(m[2]), int(m[1]))
        if m := _LABEL_M.match(value):
            return TimeSpan.month(int(m[1]), int(m[2]))
        if m := _LABEL_W.match(value):
            return TimeSpan.iso_week(int(m[1]), int(m[2]))
        if m := _LABEL_RANGE.match(value):
            return TimeSpan(parse_date(m[1], where=where), parse_date(m[2], where=where))
    except ValueError as err:
        msg = str(err) if str(err).startswith(where) else f"{where}: bad time {value!r} ({err})"
        raise ValueError(msg) from None
    return None


def parse_time(value: str, interval: str = "Date", *, where: str) -> TimeSpan:
    """A datum's (Date, Interval) -> TimeSpan; also accepts any `TimeSpan.label()` string
    (and the prompts' "Q1 2022" / "2022Q1" quarter forms).

    "Date" -> that day; "Quarter" -> the 3 months ending with the date's month (a calendar
    quarter for a Mar/Jun/Sep/Dec end); "Year" -> the 12 months ending with the date's month.
    Interval names are case-insensitive ("Daily", "Quarterly", "Annual" also accepted).
    Raises ValueError naming `where` for an unknown interval or an unparseable value.
    """
    span = _parse_cached(str(value), str(interval))
    return span if span is not None else _parse_time(value, interval, where=where)


@functools.lru_cache(maxsize=1 << 16)
def _parse_cached(value: str, interval: str) -> TimeSpan | None:
    """Memoised success path (records repeat a few hundred dates); None -> reparse to raise."""
    try:
        return _parse_time(value, interval, where="")
    except ValueError:
        return None


def _parse_time(value: str, interval: str, *, where: str) -> TimeSpan:
    kind = _INTERVAL_ALIASES.get(str(interval).strip().lower())
    if kind is None:
        raise ValueError(f"{where}: unknown Interval {interval!r} (expected one of {INTERVALS})")
    text = str(value).strip()
    if not _DATE.match(text):
        span = _parse_label(text, where=where)
        if span is None:
            raise ValueError(
                f"{where}: cannot parse time {value!r} (expected YYYY-MM-DD or a label such as "
                "2022-Q1, 2022, 2022-W11, 2022-M3, a..b)"
            )
        return span
    d = parse_date(text, where=where)
    if kind == "Date":
        return TimeSpan.day(d)
    n = 3 if kind == "Quarter" else 12
    y0, m0 = _months_back(d.year, d.month, n)
    return TimeSpan(datetime.date(y0, m0, 1), _month_end(d.year, d.month))


@dataclass(frozen=True)
class Datum:
    """One atomic datum of FinancialTable.json / StockPrice.json (one indicator at one time)."""

    company: str
    symbol: str
    date: str
    interval: str  # "Date" | "Quarter" | "Year"
    indicator: str
    value: float
    unit: str
    uuid: str
    source_type: str  # "FinancialTable" | "StockPrice"
    table: str | None = None  # "balance_sheet" | "income_statement" | "cash_flow" | None

    @property
    def time(self) -> TimeSpan:
        return parse_time(self.date, self.interval, where=f"{self.source_type} datum {self.uuid}")


@dataclass(frozen=True)
class NewsItem:
    """One news article; `date` is its publication date (a time part, if any, is dropped)."""

    title: str
    date: str
    text: str
    uuid: str
    companies: tuple[str, ...]
    symbols: tuple[str, ...]

    @property
    def time(self) -> TimeSpan:
        return parse_time(self.date, "Date", where=f"news {self.uuid}")


_CHART_PERIOD = re.compile(r"^([WM])(\d{1,2})$")


@dataclass(frozen=True)
class Chart:
    """A weekly (`W1..W52`, ISO weeks) or monthly (`M1..M12`) candlestick chart of `year`."""

    symbol: str
    period: str  # "W11" | "M3"
    year: int
    path: str | None  # None when the PNG is missing
    uuid: str  # f"{symbol}_{year}-{period}_Kline"

    @staticmethod
    def make_uuid(symbol: str, year: int, period: str) -> str:
        return f"{symbol}_{year}-{period}_Kline"

    @property
    def time(self) -> TimeSpan:
        m = _CHART_PERIOD.match(self.period)
        if not m:
            raise ValueError(f"chart {self.uuid}: period {self.period!r} is not W<n> or M<n>")
        try:
            if m[1] == "W":
                return TimeSpan.iso_week(self.year, int(m[2]))
            return TimeSpan.month(self.year, int(m[2]))
        except ValueError as err:
            raise ValueError(f"chart {self.uuid}: bad period {self.period!r} ({err})") from None


@dataclass(frozen=True)
class QAItem:
    """One question with its gold answer, task, modality, source uuids and time window."""

    qid: str
    question: str
    answer: str
    task: str  # IE AC TA LR SC ED CR CP ST CT
    modality: str  # Table News Price Chart Hybrid
    sources: tuple[str, ...]
    time: TimeSpan | None
    explanation: str = ""


@dataclass
class Corpus:
    """Everything one benchmark root holds (see `loaders.load_corpus`)."""

    data: list[Datum]
    news: list[NewsItem]
    charts: list[Chart]
    qa: list[QAItem]
    prompts: dict[str, str] = field(default_factory=dict)  # Prompt/*.txt stem -> text
    templates: list[dict[str, str]] = field(default_factory=list)  # schema.xlsx rows + "sheet"
    companies: dict[str, str] = field(default_factory=dict)  # symbol -> company name

    def by_uuid(self) -> dict[str, Datum | NewsItem | Chart]:
        """uuid -> record over data, news and charts (O(n) each call; keep the result).

        Raises ValueError naming the uuid when two records share one.
        """
        out: dict[str, Datum | NewsItem | Chart] = {}
        for rec in (*self.data, *self.news, *self.charts):
            prev = out.setdefault(rec.uuid, rec)
            if prev is not rec:
                raise ValueError(
                    f"Corpus.by_uuid: uuid {rec.uuid!r} is shared by a "
                    f"{type(prev).__name__} and a {type(rec).__name__}"
                )
        return out
