"""The paper's embedding-size ranges per dataset (read off Figure 1 of arXiv 2509.15709).

Figure 1 plots NDCG@20 against log2(d) for d = 2^1 ... 2^15. On ModCloth the curves stop early
(memory): at 2^14 for BPR and NeuMF and at 2^12 for LightGCN and SGL; on Douban and ML-100k
every model reaches 2^15. BPR_Drop (the paper's fix for BPR) gets BPR's range. The keys are the
RecBole atomic dataset names (`--config.data.name`).
"""

from __future__ import annotations

_FULL = 2**15

PAPER_DIM_RANGES: dict[str, dict[str, int]] = {
    "modcloth": {"bpr": 2**14, "bpr_drop": 2**14, "neumf": 2**14, "lightgcn": 2**12, "sgl": 2**12},
    "douban": dict.fromkeys(("bpr", "bpr_drop", "neumf", "lightgcn", "sgl"), _FULL),
    "ml-100k": dict.fromkeys(("bpr", "bpr_drop", "neumf", "lightgcn", "sgl"), _FULL),
}
