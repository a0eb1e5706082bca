"""Retrieval: an on-device exact dense index, BM25 (bm25s), hybrid fusion, cached top-k files and
the corpus formats (DPR TSV, BEIR JSONL).

    from jaxmethods.retrieval import DenseIndex, BM25Retriever, HybridRetriever, DocStore

Every retriever answers `search(queries, k) -> (scores [Q, k], indices [Q, k])` over its
`docs` (a `DocStore`); see docs/retrieval.md. Names are imported on first use.
"""

from jaxmethods._exports import lazy_exports

_EXPORTS = {
    "BM25Retriever": "bm25",
    "HashingEncoder": "hashing_encoder",
    "CachedQuestion": "cache",
    "CachedRetriever": "cache",
    "cache_retrieval": "cache",
    "read_cached_topk": "cache",
    "write_cached_topk": "cache",
    "DenseIndex": "dense",
    "DenseRetriever": "dense_retriever",
    "build_dense_index": "dense_retriever",
    "DocStore": "docstore",
    "Passage": "docstore",
    "Query": "docstore",
    "passage_text": "docstore",
    "read_beir_corpus": "formats",
    "read_beir_queries": "formats",
    "read_dpr_tsv": "formats",
    "read_qrels": "formats",
    "write_dpr_tsv": "formats",
    "rrf_fuse": "fusion",
    "score_fuse": "fusion",
    "HybridRetriever": "hybrid",
    "Retriever": "protocols",
    "TextEncoder": "protocols",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
