"""Embedding-dimension scaling in collaborative filtering (arXiv 2509.15709).

Variants (`--config configs/cf_scaling.py:VARIANT`):
  tiny     CI smoke test: a 2-model x 2-size sweep on a small synthetic dataset (seconds).
  demo     the sweep on a synthetic dataset with planted structure and 20 % noisy interactions,
           5 models x sizes 2..256, a few minutes on 2 CPU cores; writes scaling.png + results.md.
  sweep    the paper's study on a RecBole atomic dataset: sizes 2^1..2^15, BPR, NeuMF, LightGCN,
           SGL and BPR_Drop (`--config.data.path=DIR --config.data.name=ml-100k`).
  recbole  one model at one size on a RecBole atomic dataset
           (`--config.model=lightgcn --config.embed_dim=64 --config.data.path=DIR
           --config.data.name=NAME`).
  bench    the synthetic dataset used by benchmarks/cf_epoch.py.
"""

import ml_collections

VARIANTS = ("tiny", "demo", "sweep", "recbole", "bench")


def _hparams() -> ml_collections.ConfigDict:
    """RecBole's model defaults (overridable, e.g. --config.hparams.sgl.temperature=0.2)."""
    h = ml_collections.ConfigDict()
    h.bpr = {"reg_weight": 0.0}
    h.bpr_drop = {"reg_weight": 0.0, "drop_max": 0.2, "drop_ramp_epochs": 10.0}
    h.neumf = {"dropout": 0.1}
    h.lightgcn = {"n_layers": 2, "reg_weight": 1e-5, "squared_reg": False}
    h.sgl = {
        "n_layers": 3,
        "reg_weight": 1e-5,
        "squared_reg": False,
        "ssl_weight": 0.05,
        "temperature": 0.5,
        "edge_drop": 0.1,
    }
    return h


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "demo"
    if variant not in VARIANTS:
        raise ValueError(f"configs/cf_scaling.py: unknown variant {variant!r}; choose {VARIANTS}")
    c = ml_collections.ConfigDict()
    c.method = "cf_scaling"
    c.name = f"cf_scaling_{variant}"
    c.mode = "sweep"
    c.model = "bpr"
    c.embed_dim = 64
    c.seed = 0
    c.mesh = {"data": 1, "fsdp": -1, "tensor": 1}
    c.progress = True

    c.data = ml_collections.ConfigDict()
    c.data.source = "synthetic"
    c.data.path = ""
    c.data.name = ""
    c.data.user_col = "user_id"
    c.data.item_col = "item_id"
    c.data.time_col = ""
    c.data.sep = ","
    c.data.header = True
    c.data.min_rating = ml_collections.FieldReference(None, field_type=float)
    c.data.user_k = 0
    c.data.item_k = 0
    c.data.dedupe = True
    c.data.split = (0.8, 0.1, 0.1)
    c.data.order = "random"  # "time" for a chronological split
    c.data.split_seed = 2020  # RecBole's default seed
    c.data.n_users = 500
    c.data.n_items = 400
    c.data.rank = 16
    c.data.interactions_per_user = 20
    c.data.sharpness = 2.0
    c.data.noise_frac = 0.0
    c.data.seed = 0

    c.train = ml_collections.ConfigDict()
    c.train.lr = 1e-3
    c.train.batch_size = 2048
    c.train.max_epochs = 300
    c.train.patience = 10
    c.train.metric = "ndcg@20"
    c.train.ks = (10, 20)
    c.train.neg_resample_rounds = 8
    c.train.eval_budget = 1 << 26  # floats: bounds the [users, items, width] scoring block
    c.train.propagation_budget = 1 << 28  # floats: bounds the [edges, width] message block
    c.train.checkpoint_every = 10
    c.train.keep_checkpoints = 1
    c.train.fast_compile = False

    c.sweep = ml_collections.ConfigDict()
    c.sweep.models = ("bpr", "neumf", "lightgcn", "sgl", "bpr_drop")
    c.sweep.dims = tuple(2**k for k in range(1, 16))
    # Largest size per model (0: the whole grid), e.g. --config.sweep.max_dim.lightgcn=4096.
    c.sweep.max_dim = {"bpr": 0, "neumf": 0, "lightgcn": 0, "sgl": 0, "bpr_drop": 0}
    c.sweep.seeds = (0,)
    c.sweep.pack_max_dim = 128
    c.sweep.max_group_replicas = 16
    c.sweep.shard_min_dim = 1024
    c.sweep.shard_axis = "dim"
    c.sweep.curve_tol = 0.003
    c.sweep.curve_drop_frac = 0.25

    c.hparams = _hparams()

    if variant == "tiny":
        c.data.n_users, c.data.n_items, c.data.interactions_per_user = 60, 50, 8
        c.data.noise_frac = 0.1
        c.sweep.models = ("bpr", "lightgcn")
        c.sweep.dims = (2, 4)
        c.train.batch_size = 128
        c.train.max_epochs = 2
        c.train.checkpoint_every = 1
        c.train.fast_compile = True  # seconds of XLA compile matter more than run time here
        c.progress = False
    elif variant == "demo":
        # Small enough for a few minutes on 2 CPU cores: a smaller batch and a larger learning
        # rate than the paper protocol so every size converges within 40 epochs.
        c.data.n_users, c.data.n_items, c.data.interactions_per_user = 500, 300, 30
        c.data.rank, c.data.sharpness = 8, 4.0
        c.data.noise_frac = 0.2
        c.sweep.dims = tuple(2**k for k in range(1, 9))
        c.sweep.pack_max_dim = 32  # on CPU padding costs compute: pack only the smallest sizes
        # Graph models stop earlier, as in the paper.
        c.sweep.max_dim.lightgcn = c.sweep.max_dim.sgl = 128
        c.train.batch_size = 256
        c.train.lr = 2e-3
        c.train.max_epochs = 40
        c.train.patience = 5
        c.train.checkpoint_every = 0
        c.sweep.curve_tol = 0.01  # one seed of a small dataset: ignore wiggles under 1 %
        c.progress = False
    elif variant == "sweep":
        c.data.source = "atomic"  # reads DIR/NAME.inter, or the only .inter file in DIR
    elif variant == "recbole":
        c.mode = "single"
        c.data.source = "atomic"
    elif variant == "bench":
        # ML-100k-sized: 943 users, 1,682 items, ~100k interactions.
        c.data.n_users, c.data.n_items, c.data.interactions_per_user = 943, 1682, 106
        c.data.rank, c.data.sharpness = 16, 3.0
        c.data.noise_frac = 0.1
        c.sweep.dims = (64, 1024)
        c.train.checkpoint_every = 0
        c.progress = False
    return c
