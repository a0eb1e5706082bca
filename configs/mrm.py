"""MRM: meta-learned personalized reward weights (arXiv 2601.18731).

Variants (`--config configs/mrm.py:VARIANT[,key=value,...]`):
  tiny     CI smoke test, seconds on CPU (synthetic users).
  demo     synthetic users, < 1 minute on 2 CPU cores; MRM beside the global BT baseline and the
           personalized peers (per-user heads, LoRe, PAL-A, VPL).
  prism    the authors' PRISM script (needs the full corpus built by the embedding extractor),
           with every peer.
  reddit   the authors' Reddit TL;DR script, 150 train pairs per seen user (reddit100: 100).
  bench    a larger synthetic problem for step-time measurements.

Defaults live in `jaxmethods.methods.mrm.config.MRMConfig` (the authors' argparse defaults and
script values); each variant states only what differs. Examples of overrides:
`configs/mrm.py:prism,repeats=5`, `configs/mrm.py:demo,peers=lore+vpl,epochs=10`.
"""

from configs.common import apply_overrides, config_from, parse_arg
from jaxmethods.methods.mrm.config import PEERS, MRMConfig

VARIANTS = ("tiny", "demo", "prism", "reddit", "reddit100", "bench")
SHORTCUTS = {
    "lr": "optim.lr",
    "inner_lr": "meta.inner.lr",
    "tasks": "meta.tasks_per_batch",
    "hypergrad": "meta.hypergrad",
    "path": "data.path",
}


def tiny(c) -> None:
    c.epochs = 3
    c.meta.tasks_per_batch = 4  # divisible by a 4-device data mesh (`--config.mesh.data=-1`)
    c.data.num_users = 16
    c.data.dim = 8
    c.data.pairs_per_user = (6, 12)
    c.data.convs_per_user = (2, 4)
    c.loop.checkpoint_every = 8
    c.loop.log_every = 4
    c.loop.progress = False


def demo(c) -> None:
    # Synthetic users whose rewards mix two conflicting hidden directions. Embeddings are scaled
    # like LLM hidden states (large norms, hence MRM's 0.01 input scale). Per-user adaptation
    # needs to move softmax(θ_w) noticeably, so the inner loop takes 5 Adam steps of lr 0.3 at
    # evaluation and 3 at meta-training (the paper scripts use 1 step of 1e-3, tuned for 4096-d
    # Skywork embeddings). The peers keep their papers' models with CPU-sized widths and epochs.
    c.epochs = 40
    c.data.num_users = 200
    c.data.dim = 32
    c.data.pairs_per_user = (16, 48)
    c.data.label_noise = 0.05
    c.data.feature_scale = 30.0
    c.meta.tasks_per_batch = 4
    c.meta.inner.lr = 0.3
    c.meta.inner.steps = 3
    c.optim.lr = 1e-2
    c.eval.inner_steps = 5
    c.eval.every_epochs = 10
    c.loop.checkpoint_every = 500
    c.loop.log_every = 50
    c.baseline.enabled = True
    c.peers = PEERS
    c.per_user.fit.steps = 200
    c.lore.epochs = 300
    c.lore.fit.steps = 200
    c.pal.pref_dim = 16
    c.pal.epochs = 300
    c.pal.users_per_batch = 128
    c.pal.optim.lr = 1e-2
    c.vpl.latent_dim = 16
    c.vpl.hidden_dim = 64
    c.vpl.epochs = 40
    c.vpl.optim.lr = 3e-3
    c.vpl.users_per_batch = 128


def prism(c) -> None:
    # scripts/train_on_prism.sh: V1 embeddings in the train script (V2 in the test script). The
    # full corpus is split in memory with the PRISM protocol (seed + repeat), so repeats re-split.
    c.data.source = "corpus"
    c.data.path = "data/emb/prism_v1_full"
    c.data.protocol = "prism"
    c.data.embedding_dtype = "bfloat16"  # the extractor's bf16 embeddings, exactly
    c.loop.checkpoint_every = 1000
    c.peers = PEERS


def reddit(c, limit: int = 150) -> None:
    # scripts/train_on_reddit*.sh: 150 (or 100) train pairs per seen user, 50 per unseen user.
    c.data.source = "corpus"
    c.data.path = "data/emb/reddit_v2_full"
    c.data.protocol = "reddit"
    c.data.seen_train_limit = limit
    c.data.unseen_train_limit = 50
    c.data.embedding_dtype = "bfloat16"
    c.meta.inner.lr = 5e-3
    c.optim.lr = 5e-3
    c.eval.every_epochs = 10
    c.loop.checkpoint_every = 1000


def bench(c) -> None:
    c.epochs = 2
    c.data.num_users = 512
    c.data.dim = 4096
    c.data.pairs_per_user = (32, 64)
    c.meta.tasks_per_batch = 64
    c.loop.progress = False


SETTINGS = {
    "tiny": tiny,
    "demo": demo,
    "prism": prism,
    "reddit": reddit,
    "reddit100": lambda c: reddit(c, limit=100),
    "bench": bench,
}


def get_config(arg: str | None = None):
    variant, overrides = parse_arg(arg, VARIANTS, default="demo", where=__file__)
    c = config_from(MRMConfig)
    c.name = f"mrm_{variant}"
    c.mesh = {"data": 1, "fsdp": 1, "tensor": 1}  # 2-4 users per meta-step: one device is plenty
    SETTINGS[variant](c)
    return apply_overrides(c, overrides, shortcuts=SHORTCUTS, where=__file__)
