"""Typed configuration of the FinTMMBench run (the CLI ConfigDict is converted here; errors name
the field)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from jaxmethods.llm.config import LLMConfig
from jaxmethods.methods.fintmm.context_budget import ContextBudget
from jaxmethods.train.config import (
    ConfigError,
    check_choice,
    non_negative,
    positive,
    to_dataclass,
)

SOURCES = ("synthetic", "repo")
EXTRACTORS = ("rule", "llm")
GRAPH_STORES = ("memory", "kuzu", "neo4j")
KEYWORDS = ("rule", "llm")
GENERATORS = ("template", "llm")
QUERY_MODES = ("joined", "each")
# System name -> what it is. "tmmhybridrag" and the ablations share the KG and the index.
SYSTEMS = ("bm25", "naive_rag", "tmmhybridrag", "-vec", "-graph", "-raw", "-temporal")


@dataclass(frozen=True)
class DataConfig:
    """source "synthetic": `synthetic.make_synthetic_corpus` writes the benchmark's file layout
    under `<workdir>/data` (tickers / seed / qa_per_kind questions per task x modality kind /
    charts "all" | "weekly" | "monthly" | "none") and it is read back with the loaders;
    "repo": `root` is a clone of github.com/lijunfeng99/FinTMMBench (with `QA.json` and the
    large JSON files). Synthetic history: trading days, news and charts from `start` to `end`
    (ISO dates; tables for every calendar year touched), `news_per_company` news items per
    company; `full_statements`: every Alpha Vantage field of the three statements (86 a
    period, as in the benchmark's tables; False: the 14 the questions use). `max_questions`
    keeps the first n questions (-1 = all); `tasks` keeps those tasks ("" = all, else
    separated by "," or "+", e.g. "IE+AC")."""

    source: str = "synthetic"
    root: str = ""
    tickers: int = positive(6)
    seed: int = 0
    qa_per_kind: int = positive(4)
    charts: str = "all"
    start: str = "2022-01-01"
    end: str = "2022-12-31"
    news_per_company: int = positive(12)
    full_statements: bool = False
    max_questions: int = -1
    tasks: str = ""


@dataclass(frozen=True)
class KGConfig:
    """extractor "rule" (deterministic) or "llm" (`llm`, JSON extraction of news entities and
    relations); charts are summarised by `chart_llm` (a multimodal endpoint) when its model is
    set, else from the daily prices. graph_store: "memory" (dicts), "kuzu" (embedded, under
    `<workdir>/kuzu`) or "neo4j" (`neo4j_uri`, user, password from `neo4j_password_env`)."""

    extractor: str = "rule"
    llm: LLMConfig = field(default_factory=LLMConfig)
    chart_llm: LLMConfig = field(default_factory=LLMConfig)
    graph_store: str = "memory"
    neo4j_uri: str = "bolt://localhost:7687"
    neo4j_user: str = "neo4j"
    neo4j_password_env: str = "NEO4J_PASSWORD"


@dataclass(frozen=True)
class IndexConfig:
    """encoder: "hashing" (`jaxmethods.retrieval.hashing_encoder.HashingEncoder(dim)`, offline
    and training-free; `tokens` "word": "2022-03-15" is one token, "subword": split on every
    non-alphanumeric character, so nearby dates share most features, as in the sub-word
    vocabularies of real embedders), "openai:<model>" (e.g. "openai:text-embedding-3-small", through the
    `openai` package; key from `api_key_env`, endpoint `base_url`), or an HF id / folder
    (`jaxmethods.models.text_encoder.TextEncoder`). Embeddings of non-hashing encoders are
    cached in the workdir."""

    encoder: str = "hashing"
    dim: int = positive(1024)
    tokens: str = "word"
    batch_size: int = positive(256)
    base_url: str = ""
    api_key_env: str = "OPENAI_API_KEY"


@dataclass(frozen=True)
class RetrievalConfig:
    """TMMHybridRAG: keywords "rule" / "llm" (`keywords_llm`), dense top-`k` per keyword query
    (`query_mode` "joined": LightRAG's one low-level + one high-level query; "each": one per
    keyword), graph expansion `hops` deep keeping at most `graph_limit` items, then at most
    `max_items` KG items and `max_raw` raw records for the generator. Baselines: `baseline_k`
    chunks of `rows_per_chunk` records each. The generator's context budget, for every system
    (`context_budget.ContextBudget`; 0 = none): at most `entity_tokens` of KG entity lines,
    `relation_tokens` of relation lines and `raw_tokens` of raw record lines, each a prefix of
    the retrieval order (defaults: LightRAG's QueryParam of early 2025, 4000 each)."""

    keywords: str = "rule"
    keywords_llm: LLMConfig = field(default_factory=LLMConfig)
    k: int = positive(10)
    query_mode: str = "joined"
    hops: int = positive(1)
    graph_limit: int = positive(120)
    max_items: int = positive(150)
    max_raw: int = positive(150)
    baseline_k: int = positive(20)
    rows_per_chunk: int = positive(1)
    entity_tokens: int = non_negative(4000)
    relation_tokens: int = non_negative(4000)
    raw_tokens: int = non_negative(4000)

    def budget(self) -> ContextBudget | None:
        """The `ContextBudget`, or None when every budget is 0."""
        b = (self.entity_tokens, self.relation_tokens, self.raw_tokens)
        return ContextBudget(*b) if any(b) else None


@dataclass(frozen=True)
class GenerationConfig:
    """backend "template" (`generate.TemplateGenerator`: deterministic answers from the
    retrieved records only) or "llm" (`llm`: OpenAI-compatible endpoint or the local NNX
    decoder). `max_images`: retrieved chart PNGs attached to the LLM request as image parts
    (a multimodal endpoint; 0 = charts reach the LLM as their KG summary only)."""

    backend: str = "template"
    llm: LLMConfig = field(default_factory=LLMConfig)
    max_tokens: int = positive(512)
    max_images: int = 0


@dataclass(frozen=True)
class FinTMMConfig:
    method: str = "fintmm"
    name: str = "fintmm"
    seed: int = 0
    mesh: dict = field(default_factory=lambda: {"corpus": -1})
    data: DataConfig = field(default_factory=DataConfig)
    kg: KGConfig = field(default_factory=KGConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    judge: LLMConfig = field(default_factory=LLMConfig)  # model "" = no LLM-judge Acc
    systems: str = ",".join(SYSTEMS)
    plot: bool = True  # the per-modality bar chart (matplotlib)

    @property
    def system_list(self) -> list[str]:
        """`systems` split on ",", "+" or spaces ("bm25+tmmhybridrag" in `variant,key=value`
        overrides, where "," separates keys)."""
        return [s for s in re.split(r"[,+\s]+", self.systems) if s]


def _need_model(llm: LLMConfig, where: str, why: str) -> None:
    if not llm.model:
        raise ConfigError(f"{where}.model: required {why}")


def from_config_dict(config: Any) -> FinTMMConfig:
    cfg = to_dataclass(FinTMMConfig, config)
    check_choice(cfg.data.source, SOURCES, "config.data.source")
    check_choice(cfg.data.charts, ("all", "weekly", "monthly", "none"), "config.data.charts")
    check_choice(cfg.index.tokens, ("word", "subword"), "config.index.tokens")
    check_choice(cfg.kg.extractor, EXTRACTORS, "config.kg.extractor")
    check_choice(cfg.kg.graph_store, GRAPH_STORES, "config.kg.graph_store")
    check_choice(cfg.retrieval.keywords, KEYWORDS, "config.retrieval.keywords")
    check_choice(cfg.retrieval.query_mode, QUERY_MODES, "config.retrieval.query_mode")
    check_choice(cfg.generation.backend, GENERATORS, "config.generation.backend")
    systems = cfg.system_list
    if not systems:
        raise ConfigError(f"config.systems: empty; choose from {SYSTEMS}")
    for s in systems:
        check_choice(s, SYSTEMS, "config.systems")
    if cfg.data.source == "repo" and not cfg.data.root:
        raise ConfigError("config.data.root: required for source 'repo' (the FinTMMBench clone)")
    if cfg.kg.extractor == "llm":
        _need_model(cfg.kg.llm, "config.kg.llm", "for extractor 'llm'")
    if cfg.retrieval.keywords == "llm":
        _need_model(cfg.retrieval.keywords_llm, "config.retrieval.keywords_llm",
                    "for keywords 'llm'")  # fmt: skip
    if cfg.generation.backend == "llm":
        _need_model(cfg.generation.llm, "config.generation.llm", "for backend 'llm'")
    enc = cfg.index.encoder
    if enc.startswith("openai:") and not enc.split(":", 1)[1]:
        raise ConfigError("config.index.encoder: 'openai:' needs a model, e.g. "
                          "'openai:text-embedding-3-small'")  # fmt: skip
    return cfg
