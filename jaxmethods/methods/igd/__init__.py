"""IGD (arXiv 2506.13229): information-gain token weighting and decoding for LLM recommendation.

Modules: `trie` (catalog prefix tree, IG), `prompt` / `dataset` / `pipeline` (data), `loss`
(the pure loss for the shared trainer, the validation loss), `decoding` (IG-rescaling processor
on the shared beam search), `predict` / `evaluate` (HR/NDCG), `config` / `run`
(`run(config, workdir)`). See docs/igd.md.
"""

from jaxmethods.methods.igd.config import IGDConfig
from jaxmethods.methods.igd.dataset import TokenizedExamples, assemble_batch, tokenize_samples
from jaxmethods.methods.igd.decoding import IGDLogitsProcessor, igd_beam_search
from jaxmethods.methods.igd.evaluate import match_ranks, ranking_metrics
from jaxmethods.methods.igd.loss import make_loss_fn
from jaxmethods.methods.igd.trie import ItemTrie

__all__ = [
    "IGDConfig",
    "IGDLogitsProcessor",
    "ItemTrie",
    "TokenizedExamples",
    "assemble_batch",
    "igd_beam_search",
    "make_loss_fn",
    "match_ranks",
    "ranking_metrics",
    "tokenize_samples",
]
