"""FinTMMBench (arXiv 2503.05185): BM25, Naive RAG, TMMHybridRAG and its ablations.

Variants (`--config configs/fintmm.py:VARIANT[,key=value,...]`):
  tiny    CI: 3 synthetic tickers, monthly charts, 1 question per kind, template generator.
  demo    the synthetic corpus on CPU (6 tickers, 2021-2023, weekly + monthly charts, statements
          with every Alpha Vantage field), rule keywords, sub-word hashing encoder, in-memory
          graph, template generator: every system in ~31 s of CPU (~2 minutes).
  paper   the repository clone (`root=/path/to/FinTMMBench`), gpt-4o-mini for news extraction,
          chart summaries (multimodal), keywords, generation and the judge;
          text-embedding-3-small; kuzu graph store (`graph=neo4j` for the paper's DB).
  bench   16 tickers over 2022 (timing of KG build, index and retrieval).
Shortcuts: root, tickers, questions (max_questions), tasks, systems, k, hops, graph_limit,
  max_raw, baseline_k, encoder, tokens (hashing encoder: word | subword), start, end (synthetic
  history), graph, keywords, generator, llm_model, llm_url, judge_model, entity_tokens,
  relation_tokens, raw_tokens (the generator's context budget, every variant: LightRAG's 4000
  each by default; 0 = none).
The paper does not report K, the graph search depth, the prompts or the chunking of the
baselines: every default here is a reconstruction (docs/fintmm.md).
"""

from configs.common import apply_overrides, config_from, parse_arg
from jaxmethods.methods.fintmm.config import FinTMMConfig

VARIANTS = ("tiny", "demo", "paper", "bench")
SHORTCUTS = {
    "root": "data.root",
    "tickers": "data.tickers",
    "questions": "data.max_questions",
    "tasks": "data.tasks",
    "systems": "systems",
    "k": "retrieval.k",
    "hops": "retrieval.hops",
    "graph_limit": "retrieval.graph_limit",
    "max_raw": "retrieval.max_raw",
    "baseline_k": "retrieval.baseline_k",
    "encoder": "index.encoder",
    "tokens": "index.tokens",
    "raw_tokens": "retrieval.raw_tokens",
    "entity_tokens": "retrieval.entity_tokens",
    "relation_tokens": "retrieval.relation_tokens",
    "start": "data.start",
    "end": "data.end",
    "graph": "kg.graph_store",
    "keywords": "retrieval.keywords",
    "generator": "generation.backend",
    "llm_model": "generation.llm.model",
    "llm_url": "generation.llm.base_url",
    "judge_model": "judge.model",
}

GPT = dict(backend="openai", model="gpt-4o-mini", api_key_env="OPENAI_API_KEY",
           price_input_per_1m=0.15, price_output_per_1m=0.60)  # fmt: skip


def _llm(section, **extra):
    for k, v in {**GPT, **extra}.items():
        section[k] = v


def get_config(arg: str | None = None):
    variant, overrides = parse_arg(arg, VARIANTS, default="demo", where=__file__)
    c = config_from(FinTMMConfig)
    c.name = f"fintmm_{variant}"
    if variant == "tiny":
        c.data.tickers, c.data.qa_per_kind, c.data.charts = 3, 1, "monthly"
        c.index.dim = 256
    elif variant in ("demo", "bench"):
        c.data.tickers, c.data.qa_per_kind, c.data.charts = 6, 4, "all"
        c.index.tokens = "subword"  # dates as pieces, as sub-word embedders see them
        c.data.full_statements = True  # 86 Alpha Vantage fields a period, as the benchmark
        if variant == "bench":
            c.data.tickers = 16
        else:  # three years, so a company has every indicator at many other times
            c.data.start, c.data.end, c.data.news_per_company = "2021-01-01", "2023-12-31", 36
    else:  # paper
        c.data.source = "repo"
        c.kg.extractor, c.kg.graph_store = "llm", "kuzu"
        _llm(c.kg.llm)
        _llm(c.kg.chart_llm)
        c.retrieval.keywords = "llm"
        _llm(c.retrieval.keywords_llm)
        c.retrieval.max_items, c.retrieval.max_raw = 80, 80  # prompt length (cost) bound
        c.generation.backend = "llm"
        _llm(c.generation.llm)
        _llm(c.judge)
        c.index.encoder = "openai:text-embedding-3-small"
        c.index.batch_size = 512
    return apply_overrides(c, overrides, shortcuts=SHORTCUTS, where=__file__)
