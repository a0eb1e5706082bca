"""The synthetic questions' periods and the wording of their time expressions: a seeded mix
of the forms that the benchmark's GPT-written questions use.

The generators in `synthetic_qa` write every time in one canonical form (ISO dates
"2022-03-15", quarters "Q2 2022", annual reports "the 2022 annual report"; months and weeks as
"March 2022" and "week 11 of 2022"). `rephrase` then rewrites the days and quarters of one
question with forms drawn from its own generator, one form per question (a question writes its
two dates alike). The forms it knows:

    days      "2022-03-15" (iso) | "March 15, 2022" (long) | "Mar 15, 2022" (short)
    quarters  "Q2 2022" (q_year) | "the second quarter of 2022" (ordinal) | "2022Q2" (year_q)

and the mix it draws from by default (`DAY_MIX`, `QUARTER_MIX`) is the benchmark's, as far as
its questions are published: the few-shot questions of the generation prompts
(`data/Prompt/{FinancialTable,StockPrice,MultiPriceTable}.txt`: "on 2022-03-04", "on July 22,
2022", "As of March 31, 2022", "from 2022Q2 to 2022Q4"; `NewsEvent.txt`: "Q4 2022" twice; the
instruction "you can use Q1 2022 instead of 2022-03-31"): days 1/3 ISO and 2/3 long,
quarters 2/3 "Q2 2022" and 1/3 "2022Q2"; no abbreviated month and no ordinal quarter
appears. (`QA.json` itself is not in the repository snapshot we have.)

Only the wording changes: the gold answer, sources and window of a question stay as drawn
(`question_window` reads every form back to the same window), and the question generator's own
random stream is not touched, so a seed draws the same questions as before.
"""

from __future__ import annotations

import calendar
import datetime
import re

import numpy as np

__all__ = [
    "DAY_FORMS",
    "DAY_MIX",
    "QUARTER_FORMS",
    "QUARTER_MIX",
    "Q_TOKEN_FORMS",
    "period_text",
    "rephrase",
    "say_day",
    "say_quarter",
]

DAY_FORMS = ("iso", "long", "short")
QUARTER_FORMS = ("q_year", "ordinal", "year_q")
Q_TOKEN_FORMS = ("q_year", "year_q")  # the forms with a "Q<k>" token
# The benchmark prompts' few-shot questions (module docstring): one form drawn per question.
DAY_MIX = ("iso", "long", "long")
QUARTER_MIX = ("q_year", "q_year", "year_q")
_ORDINAL = ("first", "second", "third", "fourth")

_ISO_DAY = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_Q_YEAR = re.compile(r"\bQ([1-4]) (\d{4})\b")


def say_day(day: datetime.date, form: str) -> str:
    """2022-03-15 as "2022-03-15" (iso), "March 15, 2022" (long) or "Mar 15, 2022" (short)."""
    if form == "iso":
        return day.isoformat()
    if form == "long":
        return f"{calendar.month_name[day.month]} {day.day}, {day.year}"
    if form == "short":
        return f"{calendar.month_abbr[day.month]} {day.day}, {day.year}"
    raise ValueError(f"say_day: form must be one of {DAY_FORMS}, got {form!r}")


def say_quarter(year: int, quarter: int, form: str) -> str:
    """Q2 of 2022 as "Q2 2022" (q_year), "the second quarter of 2022" (ordinal) or "2022Q2"
    (year_q, the benchmark's "from 2022Q2 to 2022Q4")."""
    if form == "q_year":
        return f"Q{quarter} {year}"
    if form == "ordinal":
        return f"the {_ORDINAL[quarter - 1]} quarter of {year}"
    if form == "year_q":
        return f"{year}Q{quarter}"
    raise ValueError(f"say_quarter: form must be one of {QUARTER_FORMS}, got {form!r}")


def period_text(year: int, k: int) -> tuple[str, str]:
    """(canonical question text, time label) of quarter k of `year` (k = 0: the annual
    report)."""
    return (f"the {year} annual report", str(year)) if k == 0 else (f"Q{k} {year}", f"{year}-Q{k}")


def period_days(
    days: list[datetime.date], rng: np.random.Generator, kind: str
) -> tuple[int, str, list[int]]:
    """A random ISO week ("W") or calendar month ("M") of the trading `days`: (year, period
    label "W11" | "M3", indices of its trading days)."""
    d = days[int(rng.integers(len(days)))]
    year, n = (d.isocalendar()[0], d.isocalendar()[1]) if kind == "W" else (d.year, d.month)
    key = (lambda e: e.isocalendar()[:2]) if kind == "W" else (lambda e: (e.year, e.month))
    return year, f"{kind}{n}", [t for t, e in enumerate(days) if key(e) == key(d)]


def rephrase(
    question: str,
    rng: np.random.Generator,
    *,
    day_forms: tuple[str, ...] = DAY_MIX,
    quarter_forms: tuple[str, ...] = QUARTER_MIX,
) -> str:
    """Rewrite the canonical ISO days and "Q<k> <year>" quarters of `question` in one form of
    `day_forms` and one of `quarter_forms`, each drawn uniformly from `rng` (a form listed
    twice is drawn twice as often; two draws per question,
    whatever it contains, so the draws of later questions do not depend on this one's text)."""
    day_form = day_forms[int(rng.integers(len(day_forms)))]
    quarter_form = quarter_forms[int(rng.integers(len(quarter_forms)))]

    def day(m: re.Match) -> str:
        return say_day(datetime.date(int(m[1]), int(m[2]), int(m[3])), day_form)

    question = _ISO_DAY.sub(day, question)
    return _Q_YEAR.sub(lambda m: say_quarter(int(m[2]), int(m[1]), quarter_form), question)
