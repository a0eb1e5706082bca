"""DEP (difference-aware embedding-based personalization, EMNLP 2025): data side.

`data` (DPL readers, selection), `embeddings` (extractor, readers), `differences` (peer maps,
his/diff rows), `prompts` (Qwen2 prompt, special tokens, fitting), `dataset` (examples),
`synthetic` (styled users for the demo). See docs/dep.md.
"""
