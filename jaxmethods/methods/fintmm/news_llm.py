"""`LLMExtractor`: news -> KG entities/relations through a `jaxmethods.llm` client.

One chat request per news item; the prompt (`EXTRACT_PROMPT`) merges the authors'
`data/Prompt/NewsEvent.txt` / `News_sentiment.txt` (events, aspect-based sentiment, the aspect
list) with LightRAG's entity/relation extraction (typed entities with descriptions, relations
with descriptions), JSON out (`parse_json_object`). An unparseable answer is retried with a
follow-up turn (`RETRY_PROMPT`: a new request, so the client's cache does not replay the bad
answer) up to `max_retries` times, then skipped and counted. With the client's JSONL cache a
rerun makes zero calls.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from jaxmethods.methods.fintmm.kg_types import Entity, Relation
from jaxmethods.methods.fintmm.news_extract import ASPECTS, CompanyNames, Extraction
from jaxmethods.methods.fintmm.records import NewsItem

EXTRACT_PROMPT = """I am a financial analyst working with a range of financial news. I need your \
assistance in extracting the entities, relations and events of the companies in one news article \
and the aspect-based financial sentiment of each company.

#Goal
Identify the entities (companies, people, products, places, organisations, financial metrics) in \
the news, the relations between them, and the events that happened to the companies, each with \
a short, self-contained description that states the date.
For each company, give the sentiment of the news per aspect (the aspect must be in #Aspect-Level).

#Aspect-Level
{aspects}

#Hints
There can be more than one event in the news. Extract as many as the text supports.
The news may contain multiple sentiments, and the sentiments may differ between aspects.
Use the company names exactly as listed in #Companies when an entity is one of them.
Do not invent facts that the text does not state.

#Restrictions
Return just a JSON-formatted answer, without any additional information.
Make sure the answer is well-formed JSON that begins with "{{" and ends with "}}".

#Return
{{
    "entities": [{{"name": <string>, "type": "company" | "person" | "product" | \
"organization" | "location" | "metric" | "event", "description": <string>}}],
    "relations": [{{"source": <entity name>, "target": <entity name>, "type": <string>, \
"description": <string>}}],
    "events": [{{"company": <string>, "event": <string>, "place": <string>, \
"aspect": <one of #Aspect-Level>, "sentiment": "Positive" | "Negative" | "Neutral", \
"sentiment_score": <float in [-1, 1]>}}]
}}

#Companies
{companies}

#Input
{news}
"""

RETRY_PROMPT = (
    "Your answer was not valid JSON of the requested form ({error}). Answer again with only the "
    "JSON object, beginning with '{{' and ending with '}}'."
)


def parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a model answer (code fences and text around it ignored).

    Raises ValueError saying what is wrong."""
    cleaned = re.sub(r"```(?:json)?", "", text)
    start, end = cleaned.find("{"), cleaned.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object found")
    try:
        value = json.loads(cleaned[start : end + 1])
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


class LLMExtractor:
    """News extraction through a `jaxmethods.llm` client (see the module docstring).

    Args:
      client: an `LLMClient` (`make_client(...)`; give it a `cache_dir` so reruns are free).
      max_retries: follow-up requests for an unparseable answer before skipping the item.
      max_tokens: completion budget per request.
      text_chars: the news text is cut to this many characters in the prompt.
    """

    def __init__(
        self, client, *, max_retries: int = 1, max_tokens: int = 1024, text_chars: int = 4000
    ):
        self.client, self.max_retries = client, max_retries
        self.max_tokens, self.text_chars = max_tokens, text_chars
        self.stats: dict[str, int] = defaultdict(int)

    def prompt(self, item: NewsItem, companies: Mapping[str, str]) -> str:
        tagged = set(CompanyNames(companies).of_item(item))
        listed = [f"- {n} ({s})" for s, n in companies.items() if n in tagged]
        news = {
            "Title": item.title,
            "Date": item.date,
            "Text": item.text[: self.text_chars],
            "uuid": item.uuid,
            "Company": list(item.companies),
            "Symbol": list(item.symbols),
        }
        return EXTRACT_PROMPT.format(
            aspects="\n".join(f"- {a}" for a in ASPECTS),
            companies="\n".join(listed) or "- (none tagged)",
            news=json.dumps(news, ensure_ascii=False, indent=1),
        )

    def extract(self, news: Sequence[NewsItem], companies: Mapping[str, str]) -> list[Extraction]:
        names = CompanyNames(companies)
        convos = [[{"role": "user", "content": self.prompt(n, companies)}] for n in news]
        results: list[Extraction | None] = [None] * len(news)
        pending = list(range(len(news)))
        for attempt in range(self.max_retries + 1):
            if not pending:
                break
            requests = [
                {"messages": convos[i], "max_tokens": self.max_tokens, "temperature": 0.0}
                for i in pending
            ]
            outs = self.client.complete(requests)
            self.stats["calls"] += sum(not getattr(o, "cached", False) for o in outs)
            self.stats["cached"] += sum(bool(getattr(o, "cached", False)) for o in outs)
            if attempt:
                self.stats["retries"] += len(pending)
            still = []
            for i, out in zip(pending, outs):
                try:
                    results[i] = self._convert(parse_json_object(out.text), news[i], names)
                except ValueError as err:
                    convos[i] = [
                        *convos[i],
                        {"role": "assistant", "content": out.text},
                        {"role": "user", "content": RETRY_PROMPT.format(error=err)},
                    ]
                    still.append(i)
            pending = still
        self.stats["skipped"] += len(pending)
        self.stats["news"] += len(news)
        return [r if r is not None else Extraction(ok=False) for r in results]

    def _convert(self, obj: dict[str, Any], item: NewsItem, names: CompanyNames) -> Extraction:
        time, src = item.time, (item.uuid,)
        date = time.start.isoformat()

        def canon(name: Any) -> str:
            text = _text(name)
            return names.canonical(text) or text

        ents: dict[str, Entity] = {}
        for e in _as_list(obj.get("entities"), "entities"):
            name = canon(e.get("name"))
            if not name:
                continue
            kind = _text(e.get("type")).lower() or "entity"
            if names.canonical(name) is not None:
                kind = "company"
            ents.setdefault(name, Entity(name, kind, time, _text(e.get("description")), src))
        rels = []
        for r in _as_list(obj.get("relations"), "relations"):
            a, b = canon(r.get("source")), canon(r.get("target"))
            if not a or not b:
                continue
            kind = re.sub(r"\s+", "_", _text(r.get("type")).lower()) or "related_to"
            rels.append(Relation(a, b, kind, time, _text(r.get("description")), src))
        for ev in _as_list(obj.get("events"), "events"):
            company = canon(ev.get("company"))
            event = _text(ev.get("event"))
            if not company or not event:
                continue
            aspect = _text(ev.get("aspect")) or "Company Communication"
            sentiment = _text(ev.get("sentiment")) or "Neutral"
            score = ev.get("sentiment_score", 0.0)
            name = f"{company} {aspect} news {date}"
            desc = (
                f"{sentiment} news (sentiment score {score}) about {company} regarding {aspect} "
                f"published on {date}: {event}"
                + (f" (place: {_text(ev['place'])})" if _text(ev.get("place")) else "")
            )
            prev = ents.get(name)
            if prev is not None:
                desc = f"{prev.description} | {desc}"
            ents[name] = Entity(name, "event", time, desc, src)
            rels.append(Relation(name, company, "about", time, f"{event} ({date})", src))
        return Extraction(tuple(ents.values()), tuple(rels))


def _as_list(value: Any, field: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"field {field!r} must be a list of objects")
    return value
