"""BalDRO: DRO-balanced LLM unlearning (arXiv 2601.09172) on TOFU and MUSE.

Variants (`--config configs/baldro.py:VARIANT[,key=value,...]`):
  tiny   CI smoke test: random tiny decoder, synthetic fictitious authors, NPO plain/G/DV, 1 epoch.
  demo   offline CPU, a few minutes: a tiny model is fine-tuned in the run on synthetic
         fictitious-author QA (the "target") and on the retain split (the "retain model"), then
         the target is unlearned with NPO, NPO+BalDRO-G and NPO+BalDRO-DV; prints forget
         quality, model utility and the forget-set per-sample loss spread of each.
  tofu   the authors' TOFU scripts: Llama-2-7b-chat (open-unlearning's TOFU full model).
  muse   the authors' MUSE scripts: Llama-2-7b MUSE targets, raw forget / retain1 text.
  bench  a larger synthetic problem for step timing (see benchmarks/baldro_step.py).

Optional `key=value` pairs after the variant pick one point of the paper grids (`GRIDS`):
  loss=npo|simnpo|satimp  variant=plain|group|dv (or variants=plain+group+dv)  split=forget01
  lr=2e-5  bs=8  ga=4  epochs=10  beta_dv=2.0  corpus=News|Books  model=<hf id or folder>
e.g. `--config configs/baldro.py:tofu,loss=npo,variant=dv,split=forget05,lr=2e-5,beta_dv=2`.
Any field can also be set with `--config.optim.lr=3e-5` and friends.
"""

import ml_collections

VARIANTS = ("tiny", "demo", "tofu", "muse", "bench")

# The sweeps in the authors' scripts (scripts/unlearn/{tofu,muse}/*.sh), per base loss.
GRIDS = {
    "npo": {"lr": (1e-5, 2e-5, 3e-5, 4e-5, 5e-5), "bs_ga": ((8, 2), (8, 4)), "epochs": (5, 10),
            "beta_dv": (0.5, 1.0, 2.0, 5.0, 10.0)},
    "simnpo": {"lr": (1e-5, 2e-5, 5e-5), "bs_ga": ((8, 2), (8, 4)), "epochs": (10,),
               "beta": (3.5, 4.5), "delta": (0.0, 1.0), "gamma": (0.125, 0.25),
               "beta_dv": (0.5, 1.0, 2.0, 5.0, 10.0)},
    "satimp": {"lr": (1e-5, 2e-5, 5e-5), "bs_ga": ((4, 8),), "epochs": (10,),
               "alpha": (1.0, 0.1, 0.01), "beta1": (5.0, 6.0)},
    "muse": {"lr": (1e-5, 2e-5, 3e-5, 4e-5, 5e-5), "bs_ga": ((4, 4), (4, 8), (8, 4)),
             "epochs": (10,)},
}  # fmt: skip

# Method defaults of the authors' trainer configs (configs/trainer/*.yaml).
LOSS_DEFAULTS = {
    "npo": dict(beta=0.1, alpha=1.0, gamma=1.0, beta_dv=1.0),
    "simnpo": dict(beta=4.5, delta=0.0, alpha=1.0, gamma=0.125, beta_dv=1.0),
    "satimp": dict(beta1=5.0, beta2=1.0, alpha=1.0, gamma=0.1, beta_dv=1.0),
}
MUSE_RETRAIN_AUC = {"News": 0.5236, "Books": 0.4592}  # mia_min_k of the retrained models


def _unlearn(loss: str) -> ml_collections.ConfigDict:
    u = ml_collections.ConfigDict()
    u.loss = loss
    u.beta = 0.1
    u.delta = 0.0
    u.beta1 = 5.0
    u.beta2 = 1.0
    u.gamma = 1.0
    u.alpha = 1.0
    u.sampling_ratio = 0.5
    u.beta_dv = 1.0
    u.dv_sign = -1  # the authors' code; +1 = the soft-max of the paper's text
    u.retain_reduction = "auto"  # DrNPO/DrSatImp: per-sequence-sum mean (the code's quirk)
    u.groups = 1  # per-device batches per micro-batch (1 GPU in the authors' scripts)
    u.reference = "precomputed"  # NPO reference NLLs computed once from the start weights
    u.update(LOSS_DEFAULTS.get(loss, {}))
    return u


def _base(variant: str) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.method = "baldro"
    c.name = f"baldro_{variant}"
    c.seed = 0
    c.variants = ("plain", "group", "dv")
    c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
    c.checkpoint_every = 0
    c.keep_checkpoints = 1
    c.log_every = 10
    c.progress = True

    c.model = ml_collections.ConfigDict()
    c.model.source = "tiny"
    c.model.tokenizer = ""
    c.model.dtype = "float32"
    c.model.param_dtype = "float32"
    c.model.scan_layers = True
    c.model.remat = "none"
    c.model.logits_chunk_size = 0
    c.model.hidden_size = 64
    c.model.intermediate_size = 128
    c.model.num_layers = 2
    c.model.num_heads = 4
    c.model.num_kv_heads = 2
    c.model.head_dim = 16
    c.model.vocab_size = 384

    c.data = ml_collections.ConfigDict()
    c.data.benchmark = "synthetic"
    c.data.source = ""
    c.data.forget_split = "forget10"
    c.data.retain_split = "retain90"
    c.data.corpus = "News"
    c.data.max_length = 64
    c.data.num_authors = 40
    c.data.questions_per_author = 5
    c.data.forget_percent = 10

    c.unlearn = _unlearn("npo")

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 1e-5
    c.optim.epochs = 10
    c.optim.micro_batch_size = 8
    c.optim.grad_accum = 2
    c.optim.weight_decay = 0.01
    c.optim.schedule = "linear"
    c.optim.warmup = "tofu"
    c.optim.max_grad_norm = 1.0
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8

    c.finetune = ml_collections.ConfigDict()
    c.finetune.enabled = False
    c.finetune.epochs = 30
    c.finetune.lr = 3e-3
    c.finetune.batch_size = 16
    c.finetune.warmup_steps = 10

    c.eval = ml_collections.ConfigDict()
    c.eval.enabled = True
    c.eval.retain_logs_path = ""
    c.eval.retrain_auc = -1.0
    c.eval.batch_size = 32
    c.eval.length = 64
    c.eval.prompt_length = 40
    c.eval.max_new_tokens = 24
    c.eval.use_stemmer = True
    c.eval.with_rouge = True
    return c


def _tiny(c):
    c.variants = ("plain", "group", "dv")
    c.progress = False
    c.model.hidden_size = 32
    c.model.intermediate_size = 64
    c.model.num_layers = 1
    c.model.head_dim = 8
    c.model.scan_layers = False  # one layer: nothing to scan, and a faster compile
    c.model.vocab_size = 256
    c.data.num_authors = 20
    c.data.questions_per_author = 2
    c.data.max_length = 48
    c.optim.lr = 1e-3
    c.optim.epochs = 2
    c.optim.micro_batch_size = 4  # divisible by the 4 fake CPU devices of the tests
    c.optim.grad_accum = 1
    c.optim.warmup = "none"
    c.eval.batch_size = 8
    c.eval.length = 48
    c.eval.prompt_length = 40
    c.eval.max_new_tokens = 4


def _demo(c):
    c.variants = ("plain", "group", "dv", "dv_softmax")
    c.finetune.enabled = True
    c.finetune.epochs = 40
    c.optim.lr = 1e-3
    c.optim.epochs = 10
    c.optim.micro_batch_size = 8
    c.optim.grad_accum = 1
    c.optim.warmup = "tofu"


def _tofu(c):
    c.variants = ("plain",)
    c.mesh = {"data": 1, "fsdp": -1, "tensor": 1}
    c.checkpoint_every = 50
    c.model.source = "open-unlearning/tofu_Llama-2-7b-chat-hf_full"
    c.model.dtype = "bfloat16"
    c.model.param_dtype = "float32"  # fp32 master weights (the original trains bf16 weights)
    c.model.remat = "full"  # gradient_checkpointing=true in the scripts
    c.model.logits_chunk_size = 128
    c.data.benchmark = "tofu"
    c.data.forget_split = "forget01"
    c.data.retain_split = "retain99"
    c.data.max_length = 512
    c.optim.lr = 1e-5
    c.optim.epochs = 10
    c.optim.micro_batch_size = 8
    c.optim.grad_accum = 2
    c.optim.weight_decay = 0.01
    c.eval.retain_logs_path = "saves/eval/tofu_Llama-2-7b-chat-hf_retain99/TOFU_EVAL.json"
    c.eval.batch_size = 32
    c.eval.length = 512
    c.eval.prompt_length = 256
    c.eval.max_new_tokens = 200


def _muse(c):
    _tofu(c)
    c.data.benchmark = "muse"
    c.data.max_length = 2048
    c.model.source = "muse-bench/MUSE-news_target"
    c.model.tokenizer = "meta-llama/Llama-2-7b-hf"
    c.optim.micro_batch_size = 4
    c.optim.grad_accum = 4
    c.optim.weight_decay = 0.0
    c.optim.schedule = "constant"
    c.optim.warmup = "none"
    c.eval.retain_logs_path = ""
    c.eval.retrain_auc = MUSE_RETRAIN_AUC["News"]
    c.eval.batch_size = 8
    c.eval.length = 2048
    c.eval.prompt_length = 1024


def _bench(c):
    c.variants = ("plain",)
    c.progress = False
    c.eval.enabled = False
    c.model.hidden_size = 256
    c.model.intermediate_size = 688
    c.model.num_layers = 4
    c.model.num_heads = 8
    c.model.num_kv_heads = 8
    c.model.head_dim = 32
    c.model.vocab_size = 512
    c.data.max_length = 64
    c.optim.micro_batch_size = 8
    c.optim.grad_accum = 1


def _apply_overrides(c, pairs: list[str]) -> None:
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"configs/baldro.py: expected key=value, got {pair!r}")
        if key == "loss":
            c.unlearn = _unlearn(value)
            if c.data.benchmark == "muse" and value == "satimp":
                c.optim.micro_batch_size, c.optim.grad_accum = 4, 8
        elif key in ("variant", "variants"):
            c.variants = tuple(value.split("+"))
        elif key == "split":
            c.data.forget_split = value
            pct = int(value.removeprefix("forget"))
            c.data.retain_split = f"retain{100 - pct}"
            if c.data.benchmark == "tofu":
                c.eval.retain_logs_path = (
                    f"saves/eval/tofu_Llama-2-7b-chat-hf_retain{100 - pct}/TOFU_EVAL.json"
                )
        elif key == "corpus":
            c.data.corpus = value
            c.model.source = f"muse-bench/MUSE-{value.lower()}_target"
            c.eval.retrain_auc = MUSE_RETRAIN_AUC[value]
        elif key in ("lr", "epochs", "bs", "ga"):
            field = {"lr": "lr", "epochs": "epochs", "bs": "micro_batch_size", "ga": "grad_accum"}
            c.optim[field[key]] = float(value) if key == "lr" else int(value)
        elif key in ("beta_dv", "beta", "delta", "gamma", "alpha", "beta1"):
            c.unlearn[key] = float(value)
        elif key == "model":
            c.model.source = value
        else:
            raise ValueError(f"configs/baldro.py: unknown override {key!r}")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    parts = (arg or "demo").split(",")
    variant = parts[0]
    if variant not in VARIANTS:
        raise ValueError(f"configs/baldro.py: unknown variant {variant!r}; choose from {VARIANTS}")
    c = _base(variant)
    {"tiny": _tiny, "demo": _demo, "tofu": _tofu, "muse": _muse, "bench": _bench}[variant](c)
    _apply_overrides(c, parts[1:])
    return c
