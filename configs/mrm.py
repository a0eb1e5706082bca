"""MRM: meta-learned personalized reward weights (arXiv 2601.18731).

Variants (`--config configs/mrm.py:VARIANT`):
  tiny     CI smoke test, seconds on CPU (synthetic users).
  demo     synthetic users, < 2 minutes on 2 CPU cores; compares with a global BT baseline.
  prism    the authors' PRISM script (needs a corpus built by the embedding extractor).
  reddit   the authors' Reddit TL;DR script, 150 train pairs per seen user (reddit100: 100).
  bench    a larger synthetic problem for step-time measurements.
"""

import ml_collections

VARIANTS = ("tiny", "demo", "prism", "reddit", "reddit100", "bench")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "demo"
    if variant not in VARIANTS:
        raise ValueError(f"configs/mrm.py: unknown variant {variant!r}; choose from {VARIANTS}")
    c = ml_collections.ConfigDict()
    c.method = "mrm"
    c.name = f"mrm_{variant}"
    c.seed = 42
    c.epochs = 200
    c.mesh = {"data": 1, "fsdp": 1, "tensor": 1}  # tasks_per_batch = 2: one device is plenty
    c.checkpoint_every = 100
    c.keep_checkpoints = 3
    c.log_every = 10
    c.progress = True

    c.data = ml_collections.ConfigDict()
    c.data.source = "synthetic"
    c.data.path = ""
    c.data.seed = 42
    c.data.val_ratio = 0.9
    c.data.embedding_dtype = "float32"
    c.data.num_users = 64
    c.data.dim = 16
    c.data.num_rewards = 2
    c.data.pairs_per_user = (12, 32)
    c.data.convs_per_user = (4, 8)
    c.data.label_noise = 0.1
    c.data.mixture_concentration = 0.3
    c.data.direction_cosine = -0.3
    c.data.feature_scale = 1.0

    c.model = ml_collections.ConfigDict()
    c.model.hidden_layers = (2,)  # one 4096 x 2 matrix in every released script
    c.model.scale = 0.01
    c.model.use_bias = False

    c.meta = ml_collections.ConfigDict()
    c.meta.tasks_per_batch = 2
    c.meta.hypergrad = "second_order"  # or first_order, forward
    c.meta.rpo_tail_frac = 0.5
    c.meta.rpo_gamma = 0.5
    c.meta.inner = ml_collections.ConfigDict()
    c.meta.inner.optimizer = "adam"  # one differentiable Adam step from a fresh state
    c.meta.inner.lr = 1e-3
    c.meta.inner.steps = 1  # train_inner_epochs
    c.meta.inner.b1 = 0.9
    c.meta.inner.b2 = 0.999
    c.meta.inner.eps = 1e-8
    c.meta.inner.eps_root = 0.0

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 1e-3  # meta_lr
    c.optim.warmup_ratio = 0.05
    c.optim.clip_norm = 1.0
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8

    c.eval = ml_collections.ConfigDict()
    c.eval.inner_steps = 1  # eval_inner_epochs in the scripts
    c.eval.every_epochs = 1  # log_freq
    c.eval.worst_frac = 0.1
    c.eval.user_chunk = 1024

    c.baseline = ml_collections.ConfigDict()
    c.baseline.enabled = False
    c.baseline.epochs = 20
    c.baseline.batch_size = 256
    c.baseline.lr = 1e-2

    if variant == "tiny":
        c.epochs = 3
        c.data.num_users = 16
        c.data.dim = 8
        c.data.pairs_per_user = (6, 12)
        c.data.convs_per_user = (2, 4)
        c.checkpoint_every = 8
        c.log_every = 4
        c.meta.tasks_per_batch = 2
        c.eval.every_epochs = 1
        c.progress = False
    elif variant == "demo":
        # Synthetic users whose rewards mix two conflicting hidden directions. Embeddings are
        # scaled like LLM hidden states (large norms, hence MRM's 0.01 input scale). Per-user
        # adaptation needs to move softmax(θ_w) noticeably, so the inner loop takes 5 Adam steps
        # of lr 0.3 at evaluation and 3 at meta-training (the paper scripts use 1 step of 1e-3,
        # tuned for 4096-d Skywork embeddings).
        c.epochs = 40
        c.data.num_users = 200
        c.data.dim = 32
        c.data.pairs_per_user = (16, 48)
        c.data.convs_per_user = (4, 8)
        c.data.label_noise = 0.05
        c.data.feature_scale = 30.0
        c.meta.tasks_per_batch = 4
        c.meta.inner.lr = 0.3
        c.meta.inner.steps = 3
        c.optim.lr = 1e-2
        c.eval.inner_steps = 5
        c.eval.every_epochs = 10
        c.checkpoint_every = 500
        c.log_every = 50
        c.baseline.enabled = True
    elif variant == "prism":
        # scripts/train_on_prism.sh: V1 embeddings in the train script (V2 in the test script).
        c.data.source = "corpus"
        c.data.path = "data/emb/prism_v1"
        c.data.embedding_dtype = "bfloat16"  # the extractor's bf16 embeddings, exactly
        c.meta.inner.lr = 1e-3
        c.optim.lr = 1e-3
        c.epochs = 200
        c.eval.inner_steps = 1
        c.eval.every_epochs = 1
        c.checkpoint_every = 1000
    elif variant in ("reddit", "reddit100"):
        c.data.source = "corpus"
        c.data.path = "data/emb/reddit_v2" if variant == "reddit" else "data/emb/reddit100_v2"
        c.data.embedding_dtype = "bfloat16"
        # The 150/50 (or 100/50) train limits are applied when the corpus is split
        # (`extract_embeddings split --seen_train_limit ...`, docs/mrm_data.md).
        c.meta.inner.lr = 5e-3
        c.optim.lr = 5e-3
        c.epochs = 200
        c.eval.inner_steps = 1
        c.eval.every_epochs = 10
        c.checkpoint_every = 1000
    elif variant == "bench":
        c.epochs = 2
        c.data.num_users = 512
        c.data.dim = 4096
        c.data.pairs_per_user = (32, 64)
        c.meta.tasks_per_batch = 64
        c.progress = False
    return c
