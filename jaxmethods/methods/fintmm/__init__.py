"""FinTMMBench (arXiv 2503.05185) data, metrics and the TMMHybridRAG temporal multimodal RAG.

Modules: `records` (shared record types, time parsing), `loaders` (the benchmark's files),
`synthetic` (a generated corpus in the same file layout), `formulas` (schema.xlsx ratio
templates), `metrics` (per-task/per-modality tables, LLM judge, bar chart); the KG, stores,
retrieval pipeline and run live beside them. See `docs/fintmm.md`.
"""
