"""News -> KG entities/relations, and chart summaries, for `build_kg`: the public entry that
re-exports the three modules holding them.

Two news extractors with one interface, `extract(news, companies) -> list[Extraction]` (one per
news item, in order; `Extraction.ok` False = skipped):

- `RuleExtractor` (`news_extract`, with the interface and `CompanyNames`): deterministic (demo,
  tests). Per (mentioned company, aspect) an "event" entity `f"{company} {aspect} news {date}"`
  whose description holds the sentiment (lexicon based), the title and the key sentence, linked
  `about` the company; co-mentioned companies are linked `co_mentioned` on that date.
- `LLMExtractor(client)` (`news_llm`): one chat request per news item through
  `jaxmethods.llm`; the prompt merges the authors' `data/Prompt/NewsEvent.txt` /
  `News_sentiment.txt` (events, aspect-based sentiment, the aspect list) with LightRAG's
  entity/relation extraction (typed entities with descriptions, relations with descriptions),
  JSON out. An unparseable answer is retried with a follow-up turn ("not valid JSON, answer
  again": a new request, so the client's cache does not replay the bad answer) up to
  `max_retries` times, then skipped and counted. With the client's JSONL cache a rerun makes
  zero calls.

Chart summaries (`chart_summary`), `summarize(charts) -> list[str | None]`:

- `MLLMChartSummarizer(client)`: the PNG as a base64 data URL in an OpenAI-style image content
  part (`jaxmethods.llm.types.image_part`) next to the prompt, through a multimodal endpoint.
- `PriceChartSummarizer(data)`: the fallback when no multimodal endpoint is configured: open,
  close, high, low, volume and trend over the chart's period computed from the daily prices,
  labelled as such in the text (`PRICE_FALLBACK_LABEL`).
"""

from jaxmethods.llm.types import image_part
from jaxmethods.methods.fintmm.chart_summary import (
    CHART_PROMPT,
    PRICE_FALLBACK_LABEL,
    ChartSummarizer,
    MLLMChartSummarizer,
    PriceChartSummarizer,
    image_message,
)
from jaxmethods.methods.fintmm.kg_names import chart_period_name
from jaxmethods.methods.fintmm.kg_types import Entity, Relation
from jaxmethods.methods.fintmm.news_extract import (
    ASPECTS,
    SENTIMENTS,
    CompanyNames,
    Extraction,
    NewsExtractor,
    RuleExtractor,
)
from jaxmethods.methods.fintmm.news_llm import (
    EXTRACT_PROMPT,
    RETRY_PROMPT,
    LLMExtractor,
    parse_json_object,
)
from jaxmethods.methods.fintmm.records import Chart, Datum, NewsItem, TimeSpan

__all__ = [
    "ASPECTS",
    "CHART_PROMPT",
    "EXTRACT_PROMPT",
    "PRICE_FALLBACK_LABEL",
    "RETRY_PROMPT",
    "SENTIMENTS",
    "Chart",
    "ChartSummarizer",
    "CompanyNames",
    "Datum",
    "Entity",
    "Extraction",
    "LLMExtractor",
    "MLLMChartSummarizer",
    "NewsExtractor",
    "NewsItem",
    "PriceChartSummarizer",
    "Relation",
    "RuleExtractor",
    "TimeSpan",
    "chart_period_name",
    "image_message",
    "image_part",
    "parse_json_object",
]
