"""IGD (arXiv 2506.13229): information-gain token weighting and decoding for LLM recommendation.

Modules: `trie` (catalog prefix tree, IG), `prompt` / `dataset` / `pipeline` (data), `steps`
(loss for the shared train step), `decoding` (IG-rescaling processor on the shared beam search),
`predict` / `evaluate` (HR/NDCG), `config` / `train` (`run(config, workdir)`). See docs/igd.md.
"""
