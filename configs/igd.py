"""IGD: information-gain token weighting and decoding for LLM recommendation (arXiv 2506.13229).

Variants (`--config configs/igd.py:VARIANT`):
  tiny                 CI smoke test, seconds on CPU (synthetic catalog, tiny random decoder).
  demo                 synthetic catalog with skewed popularity and shared title prefixes, a tiny
                       decoder trained in the run (minutes on 2 CPU cores); HR/NDCG for
                       beta = 1 vs 0.1 and alpha = 0 vs 0.2.
  books | video_games | toys | cds
                       the authors' setting on Amazon Review 2018: Qwen2.5-1.5B full fine-tune,
                       per-category beta, lr 1e-4, 128 = 16 x 8 accumulation, 3 epochs with early
                       stopping on the weighted validation loss, D3-style decoding
                       (length_penalty 0). Append "_bigrec" for BIGRec-style decoding
                       (length_penalty 1), e.g. `video_games_bigrec`.
Paper variants read the authors' processed CSVs from `data/amazon/` (see docs/igd.md); use
`--config.data.source=raw --config.data.raw_dir=...` to process the raw review files instead.
"""

import ml_collections

# Category folder name, prompt beta (ig_monitor.sh comments), and the hard-coded F.
PAPER = {
    "books": ("Books", 0.1, 675262.0),
    "video_games": ("Video_Games", 0.2, 195559.0),
    "toys": ("Toys_and_Games", 0.5, 111806.0),
    "cds": ("CDs_and_Vinyl", 0.1, 134436.0),
}
VARIANTS = ("tiny", "demo", *PAPER, *(f"{k}_bigrec" for k in PAPER))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "demo"
    if variant not in VARIANTS:
        raise ValueError(f"configs/igd.py: unknown variant {variant!r}; choose from {VARIANTS}")
    c = ml_collections.ConfigDict()
    c.method = "igd"
    c.name = f"igd_{variant}"
    c.seed = 0
    c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
    c.log_every = 10
    c.keep_checkpoints = 4
    c.progress = True

    c.data = ml_collections.ConfigDict()
    c.data.source = "synthetic"
    c.data.category = "Video_Games"
    c.data.train_file = ""
    c.data.valid_file = ""
    c.data.test_file = ""
    c.data.info_file = ""
    c.data.item_frequency_file = ""
    c.data.raw_dir = ""
    c.data.total_frequency = 0.0
    c.data.cutoff_len = 512
    c.data.min_items = 10000
    c.data.history_len = 10
    c.data.max_train = -1
    c.data.max_valid = -1
    c.data.max_test = -1
    c.data.seed = 0
    c.data.num_franchises = 8
    c.data.items_per_franchise = 12
    c.data.num_users = 400
    c.data.events_per_user = (6, 14)
    c.data.loyalty = 0.85
    c.data.zipf_a = 1.1

    c.model = ml_collections.ConfigDict()
    c.model.source = "tiny"
    c.model.path = "Qwen/Qwen2.5-1.5B"
    c.model.dtype = ""
    c.model.param_dtype = "float32"
    c.model.scan_layers = False
    c.model.remat = False
    c.model.lora_rank = 0
    c.model.lora_alpha = 64.0
    c.model.lora_dropout = 0.05
    c.model.lora_targets = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
    c.model.vocab_size = 512
    c.model.hidden_size = 64
    c.model.intermediate_size = 128
    c.model.num_layers = 2
    c.model.num_heads = 4
    c.model.num_kv_heads = 2
    c.model.head_dim = 16

    c.tuning = ml_collections.ConfigDict()
    c.tuning.weighting = "igd"  # "pos" (+ cft_alpha > 0 for CFT), "none"
    c.tuning.betas = (0.1,)
    c.tuning.cft_alpha = 0.0
    c.tuning.lr = 1e-4
    c.tuning.warmup_steps = 20
    c.tuning.weight_decay = 0.0
    c.tuning.max_grad_norm = 1.0
    c.tuning.epochs = 3
    c.tuning.micro_batch_size = 16
    c.tuning.grad_accum_steps = 8
    c.tuning.eval_batch_size = 16
    c.tuning.patience = 1
    c.tuning.logprob_chunk = 256

    c.decode = ml_collections.ConfigDict()
    c.decode.alphas = (0.0, 0.2)
    c.decode.num_beams = 10
    c.decode.num_return_sequences = 10
    c.decode.max_new_tokens = 72
    c.decode.length_penalty = 0.0
    c.decode.batch_size = 16
    c.decode.ks = (1, 3, 5, 10, 20)

    if variant == "tiny":
        c.progress = False
        c.log_every = 2
        c.data.num_franchises = 3
        c.data.items_per_franchise = 6
        c.data.num_users = 40
        c.data.events_per_user = (6, 8)
        c.data.history_len = 3
        c.data.max_train = 64
        c.data.max_valid = 8
        c.data.max_test = 8
        c.model.vocab_size = 160
        c.model.hidden_size = 32
        c.model.intermediate_size = 64
        c.model.head_dim = 8
        c.tuning.betas = (0.1,)
        c.tuning.lr = 3e-3
        c.tuning.warmup_steps = 1
        c.tuning.epochs = 2
        c.tuning.micro_batch_size = 8
        c.tuning.grad_accum_steps = 2
        c.tuning.eval_batch_size = 8
        c.decode.alphas = (0.0, 0.2)
        c.decode.num_beams = 4
        c.decode.num_return_sequences = 4
        c.decode.max_new_tokens = 20
        c.decode.batch_size = 8
        c.decode.ks = (1, 3, 5)
    elif variant == "demo":
        # A tiny decoder learns the catalog from scratch, so it needs far more steps and a larger
        # learning rate than fine-tuning a pretrained 1.5B model; everything else is the paper's.
        c.log_every = 50
        c.data.num_franchises = 12
        c.data.items_per_franchise = 20
        c.data.num_users = 500
        c.data.loyalty = 0.75
        c.data.history_len = 5
        c.tuning.betas = (1.0, 0.1)
        c.tuning.lr = 3e-3
        c.tuning.warmup_steps = 20
        c.tuning.epochs = 8
        c.tuning.micro_batch_size = 16
        c.tuning.grad_accum_steps = 2
        c.tuning.patience = 2
        c.decode.max_new_tokens = 24
        c.decode.batch_size = 32
    else:
        base = variant.removesuffix("_bigrec")
        category, beta, total = PAPER[base]
        stem = f"{category}_5_*-11"
        c.data.source = "csv"
        c.data.category = category
        c.data.train_file = f"data/amazon/train/{stem}.csv"
        c.data.valid_file = f"data/amazon/valid/{stem}.csv"
        c.data.test_file = f"data/amazon/test/{stem}.csv"
        c.data.info_file = f"data/amazon/info/{category}_5_*.txt"
        c.data.item_frequency_file = f"data/amazon/item_frequency/{category}.json"
        c.data.total_frequency = total
        c.model.source = "pretrained"
        c.model.dtype = "bfloat16"
        c.model.remat = True
        c.tuning.betas = (beta,)
        c.decode.length_penalty = 1.0 if variant.endswith("_bigrec") else 0.0
        c.log_every = 20
    return c
