"""Collaborative-filtering models: BPR-MF, NeuMF, LightGCN, SGL (+ the bipartite graph).

Design: each model is a plain parameter dict plus pure functions (init, scores, representations)
rather than an NNX module. The scaling sweep trains many replicas (seeds, and embedding sizes
zero-padded to a shared width, see `jaxmethods.models.cf.init`) as one `vmap`ped program, shards tables by
parameter path, and scans whole epochs; a dict of tables is the pytree all of that acts on
directly, with nothing to split or merge. Table names end in `_emb`, which is what the sharding
rules match.
"""

from jaxmethods.models.cf.bpr_mf import (
    bpr_scores,
    init_embeddings,
    pair_scores,
    score_all_items,
)
from jaxmethods.models.cf.graph import (
    BipartiteGraph,
    build_graph,
    edge_dropout_weights,
    normalized_weights,
    propagate,
)
from jaxmethods.models.cf.init import zero_pad
from jaxmethods.models.cf.lightgcn import init_lightgcn, lightgcn_representations
from jaxmethods.models.cf.neumf import init_neumf, neumf_hidden_width, neumf_logits, neumf_scorer
from jaxmethods.models.cf.sgl import contrastive_loss, sample_views

__all__ = [
    "BipartiteGraph",
    "bpr_scores",
    "build_graph",
    "contrastive_loss",
    "edge_dropout_weights",
    "init_embeddings",
    "init_lightgcn",
    "init_neumf",
    "lightgcn_representations",
    "neumf_hidden_width",
    "neumf_logits",
    "neumf_scorer",
    "normalized_weights",
    "pair_scores",
    "propagate",
    "sample_views",
    "score_all_items",
    "zero_pad",
]
