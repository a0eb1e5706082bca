"""LLM access for judges, teachers and extractors: one `complete(requests)` interface over an
OpenAI-compatible endpoint (OpenAI, vLLM, `python -m jaxmethods.serve`) or in-process generation.

    from jaxmethods.llm import Request, make_client, parse_score

    client = make_client({"backend": "openai", "model": "gpt-4o-mini", "cache_dir": "cache"})
    outs = client.complete([Request.from_prompt(p, max_tokens=16) for p in prompts])
    scores = [parse_score(o.text, 1, 5, integer=True) for o in outs]

Names are imported on first use (`openai` only with the OpenAI backend). See docs/llm.md.
"""

from jaxmethods._exports import lazy_exports

_EXPORTS = {
    "Prices": "accounting",
    "Usage": "accounting",
    "CompletionCache": "cache",
    "LLMClient": "client",
    "make_client": "client",
    "LLMConfig": "config",
    "llm_config": "config",
    "EngineRequest": "batching",
    "EngineResult": "batching",
    "GenerationEngine": "engine",
    "FunctionClient": "function_backend",
    "LocalClient": "local_backend",
    "OpenAIClient": "openai_backend",
    "RowSampler": "sampler",
    "parse_score": "scores",
    "parse_scores": "scores",
    "Completion": "types",
    "LLMRequestError": "types",
    "Request": "types",
    "as_request": "types",
    "request_key": "types",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
