"""MRM (arXiv 2601.18731): meta-learned personalized reward weights, and its peers.

Modules: `config` (`MRMConfig`), `tasks` (meta-batches with the per-epoch support/query
re-draw), `objective` (inner adaptation, RPO, the `grad_fn` for the shared trainer), `evaluate`
(user-level accuracy), `baseline` (global Bradley–Terry), `peers` (per-user heads, LoRe, PAL-A,
VPL), `report` (table, repeats), `run` (`run(config, workdir)`), `extract_embeddings` (the
offline reward-model embeddings). See docs/mrm.md.
"""

from jaxmethods.methods.mrm.baseline import train_global_bt
from jaxmethods.methods.mrm.config import PEERS, MRMConfig, from_config_dict
from jaxmethods.methods.mrm.evaluate import evaluate, map_users, summarize
from jaxmethods.methods.mrm.objective import make_meta_grad_fn, meta_objective, split_model
from jaxmethods.methods.mrm.peers import PeerContext, run_peers
from jaxmethods.methods.mrm.report import aggregate, format_table
from jaxmethods.methods.mrm.tasks import MetaTaskIterator

__all__ = [
    "PEERS",
    "MRMConfig",
    "MetaTaskIterator",
    "PeerContext",
    "aggregate",
    "evaluate",
    "format_table",
    "from_config_dict",
    "make_meta_grad_fn",
    "map_users",
    "meta_objective",
    "run_peers",
    "split_model",
    "summarize",
    "train_global_bt",
]
