"""The news-extractor interface and the deterministic `RuleExtractor`.

`NewsExtractor.extract(news, companies) -> list[Extraction]`: one `Extraction` (KG entities and
relations, `ok` False = skipped) per news item, in order. `CompanyNames` maps the loose company
names of news items to the KG's company entity names (shared with `news_llm` and `kg`).
`RuleExtractor` (demo, tests): per (mentioned company, aspect) an "event" entity
`f"{company} {aspect} news {date}"` whose description holds the lexicon sentiment, the title and
the key sentence, linked `about` the company; co-mentioned companies are linked `co_mentioned`.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Protocol

from jaxmethods.methods.fintmm.kg_types import Entity, Relation
from jaxmethods.methods.fintmm.records import NewsItem

ASPECTS = (
    "Stock",
    "Reputation",
    "Company Communication",
    "Appointment",
    "Financial",
    "Regulatory",
    "Sales",
    "M&A",
    "Legal",
    "Dividend Policy",
    "Risks",
    "Rumors",
    "Strategy",
    "product",
    "service",
    "employment",
)
SENTIMENTS = ("Positive", "Negative", "Neutral")


@dataclasses.dataclass(frozen=True)
class Extraction:
    """What one news item yields. `ok` False: the extractor gave up on it (counted, skipped)."""

    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()
    ok: bool = True


class NewsExtractor(Protocol):
    """`extract(news, companies)`: one `Extraction` per news item, in order. `companies` maps
    symbol -> company name (the KG's company entity names); entities naming a known company
    must use that name. `stats` counts what happened (calls, retries, skipped, ...)."""

    stats: dict[str, int]

    def extract(
        self, news: Sequence[NewsItem], companies: Mapping[str, str]
    ) -> list[Extraction]: ...


# ---------------------------------------------------------------------------------- companies

_SUFFIXES = {"inc", "corp", "corporation", "com", "co", "ltd", "plc", "holdings", "group", "the"}


def _norm_company(name: str) -> str:
    words = re.findall(r"[a-z0-9&]+", name.lower())
    while words and words[-1] in _SUFFIXES:
        words.pop()
    while words and words[0] == "the":
        words.pop(0)
    return " ".join(words)


class CompanyNames:
    """Maps a symbol, a company name or a loose variant ("Apple", "apple inc.") to the
    canonical company name of `companies` (symbol -> name); `None` when unknown."""

    def __init__(self, companies: Mapping[str, str]):
        self.companies = dict(companies)
        self._by_key: dict[str, str] = {}
        for symbol, name in self.companies.items():
            self._by_key[symbol.lower()] = name
            self._by_key[name.lower()] = name
            self._by_key.setdefault(_norm_company(name), name)

    def canonical(self, name: str) -> str | None:
        key = name.strip().lower()
        return self._by_key.get(key) or self._by_key.get(_norm_company(name))

    def of_item(self, item: NewsItem) -> list[str]:
        """Canonical names of the companies an item is tagged with (symbols first), deduped."""
        out: list[str] = []
        for raw in (*item.symbols, *item.companies):
            name = self.canonical(raw)
            if name is not None and name not in out:
                out.append(name)
        return out


# ----------------------------------------------------------------------------- rule extractor

_ASPECT_WORDS: dict[str, tuple[str, ...]] = {
    "M&A": ("acquire", "acquires", "acquisition", "merger", "merge", "takeover", "buyout"),
    "Legal": ("lawsuit", "sue", "sued", "court", "litigation", "settlement", "patent"),
    "Regulatory": (
        "regulator",
        "regulators",
        "regulatory",
        "antitrust",
        "sec",
        "ftc",
        "probe",
        "investigation",
        "fine",
        "fined",
    ),
    "Appointment": (
        "ceo",
        "cfo",
        "appoint",
        "appoints",
        "appointed",
        "officer",
        "resign",
        "resigns",
        "chairman",
    ),
    "Dividend Policy": ("dividend", "dividends", "buyback", "repurchase"),
    "Financial": ("earnings", "revenue", "profit", "results", "guidance", "eps", "outlook"),
    "Sales": ("sales", "demand", "orders", "shipments"),
    "product": (
        "launch",
        "launches",
        "launched",
        "product",
        "unveil",
        "unveils",
        "unveiled",
        "release",
        "chip",
    ),
    "service": ("service", "services", "cloud", "subscription", "subscribers"),
    "employment": ("layoffs", "layoff", "hiring", "jobs", "workers", "employees", "union"),
    "Strategy": ("strategy", "expansion", "partnership", "invest", "plan", "campus", "research"),
    "Stock": ("shares", "stock", "rally", "selloff", "upgrade", "downgrade"),
    "Risks": ("risk", "risks", "warning", "shortage", "recall", "breach", "outage", "hack"),
    "Rumors": ("rumor", "rumors", "reportedly", "speculation"),
    "Company Communication": ("meeting", "shareholder", "conference", "statement"),
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_POSITIVE = _words(
    "beat beats surge surges surged rise rises rose gain gains gained growth grow grows record "
    "strong stronger upgrade upgraded outperform rally rallies jump jumps jumped soar soars "
    "boost boosts boosted profit profits win wins won approval approved expand expands expanded "
    "higher raise raises raised welcomed launched opened"
)
_NEGATIVE = _words(
    "miss misses missed fall falls fell drop drops dropped decline declines declined loss "
    "losses weak weaker downgrade downgraded lawsuit sue sued probe investigation fine fined cut "
    "cuts slump slumps plunge plunges plunged layoffs recall warn warns warned warning lower "
    "shortage delay delays weigh weighs breach faced"
)
_WORD = re.compile(r"[A-Za-z&]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _sentiment(text: str) -> tuple[str, float]:
    """Lexicon sentiment: (label, (pos - neg) / (pos + neg)); equal counts -> Neutral, 0."""
    words = [w.lower() for w in _WORD.findall(text)]
    pos = sum(w in _POSITIVE for w in words)
    neg = sum(w in _NEGATIVE for w in words)
    if pos == neg:
        return "Neutral", 0.0
    score = round((pos - neg) / (pos + neg), 2)
    return ("Positive" if pos > neg else "Negative"), score


def _aspects(title: str, sentence: str) -> list[str]:
    """Aspects whose keywords occur in the title, else in the key sentence, else
    ["Company Communication"]."""
    for text in (title, sentence):
        words = {w.lower() for w in _WORD.findall(text)}
        found = [a for a, keys in _ASPECT_WORDS.items() if words.intersection(keys)]
        if found:
            return found
    return ["Company Communication"]


def _company_text(item: NewsItem, needles: Sequence[str], others: Sequence[str]) -> list[str]:
    """The sentences of the text about one company: those naming it, plus those naming no
    other mentioned company."""
    out = []
    for s in _SENTENCE.split(item.text.strip()):
        low = s.lower()
        if any(n in low for n in needles) or not any(o in low for o in others):
            out.append(s)
    return out


class RuleExtractor:
    """Deterministic extractor (no model). Per news item and mentioned company: one "event"
    entity per detected aspect (keyword lexicon over the title, else the company's key
    sentence; "Company Communication" when none matches) named `f"{company} {aspect} news
    {date}"`, described with the lexicon sentiment and score (title + the sentences about the
    company), the title and the key sentence, and related `about` the company; pairs of co-mentioned companies get a `co_mentioned` relation. Everything carries
    the publication date and the news uuid."""

    def __init__(self) -> None:
        self.stats: dict[str, int] = defaultdict(int)

    def extract(self, news: Sequence[NewsItem], companies: Mapping[str, str]) -> list[Extraction]:
        names = CompanyNames(companies)
        symbols_of: dict[str, list[str]] = defaultdict(list)
        for sym, name in companies.items():
            symbols_of[name].append(sym)
        out = []
        for item in news:
            out.append(self._one(item, names, symbols_of))
            self.stats["news"] += 1
        return out

    def _one(self, item: NewsItem, names: CompanyNames, symbols_of) -> Extraction:
        time = item.time
        date = time.start.isoformat()
        mentioned = names.of_item(item)
        needles = {c: [c.lower(), *(s.lower() for s in symbols_of.get(c, ()))] for c in mentioned}
        entities, relations = [], []
        for company in mentioned:
            others = [n for c in mentioned if c != company for n in needles[c]]
            sentences = _company_text(item, needles[company], others)
            key = next((s for s in sentences if any(n in s.lower() for n in needles[company])),
                       sentences[0] if sentences else "")[:300]  # fmt: skip
            sentiment, score = _sentiment(" ".join([item.title, *sentences]))
            for aspect in _aspects(item.title, key):
                name = f"{company} {aspect} news {date}"
                desc = (
                    f"{sentiment} news (sentiment score {score}) about {company} regarding "
                    f"{aspect} published on {date}: {item.title}. {key}"
                )
                entities.append(Entity(name, "event", time, desc, (item.uuid,)))
                relations.append(
                    Relation(
                        name,
                        company,
                        "about",
                        time,
                        f"{aspect} news about {company} on {date} ({sentiment})",
                        (item.uuid,),
                    )
                )
                self.stats["events"] += 1
        for i, a in enumerate(mentioned):
            for b in mentioned[i + 1 :]:
                relations.append(
                    Relation(
                        a,
                        b,
                        "co_mentioned",
                        time,
                        f"{a} and {b} are both mentioned in the news {item.title!r} on {date}",
                        (item.uuid,),
                    )
                )
        return Extraction(tuple(entities), tuple(relations))
