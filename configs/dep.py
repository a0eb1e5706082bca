"""DEP: difference-aware user embeddings, a sparse autoencoder and soft tokens in a frozen LLM.

Variants (`--config configs/dep.py:VARIANT[,key=value,...]`):
  tiny    CI: synthetic users, a tiny decoder and a tiny encoder trained in the run, few steps.
  demo    synthetic users with distinct styles whose history mixes their word with their
          favourite items' tone (the peers' reviews cancel it); the tiny encoder and decoder
          are trained in the run, then non-personalized / history-only / DEP are trained and
          compared on the test users (CPU, about 4 minutes).
  books / movies / cds
          the authors' settings on one DPL-main category: Qwen2.5-7B-Instruct frozen in bf16,
          bge-m3 embeddings, AdamW lr 1e-5 wd 0.025, 1 % warmup + linear decay, clip 1.0,
          batch 1 x 16 accumulation, 5 epochs, a checkpoint per epoch, selection by METEOR on
          512 val samples, sampling T 0.8 top-p 0.95 up to 2048 tokens.
  bench   a larger tiny decoder for step timing.
Shortcuts: lr, epochs, bs (micro-batch), ga, model (source), data (DPL-main source), emb (folder).
"""

from configs.common import apply_overrides, config_from, parse_arg
from jaxmethods.methods.dep.config import DEPConfig

VARIANTS = ("tiny", "demo", "books", "movies", "cds", "bench")
CATEGORY = {"books": "Books", "movies": "Movies_and_TV", "cds": "CDs_and_Vinyl"}
SHORTCUTS = {
    "lr": "optim.lr",
    "epochs": "epochs",
    "bs": "batch_size",
    "ga": "optim.grad_accum",
    "model": "model.source",
    "data": "data.source",
    "emb": "embed.folder",
}


def _tiny_common(c, *, hidden: int, layers: int, vocab: int, embed: int, code: int) -> None:
    c.model.source, c.model.dtype, c.model.param_dtype = "tiny", "float32", "float32"
    c.model.remat, c.model.logits_chunk_size = "none", 0
    c.model.hidden_size, c.model.intermediate_size = hidden, 2 * hidden
    c.model.num_layers, c.model.num_heads, c.model.num_kv_heads = layers, 4, 2
    c.model.head_dim, c.model.vocab_size = hidden // 4, vocab
    c.adapter.embed_size, c.adapter.code_size = embed, code
    c.embed.source, c.embed.dim = "tiny", embed
    c.data.source, c.data.categories = "synthetic", ("Books",)
    c.data.mean_rows, c.data.peer_rule, c.data.pad_missing = "code", "others", True
    c.eval.meteor_wordnet, c.eval.meteor_tokenizer = False, "wordpunct"
    c.optim.grad_accum, c.optim.warmup_ratio = 1, 0.0
    c.checkpoint_per_epoch = False


def get_config(arg: str | None = None):
    variant, overrides = parse_arg(arg, VARIANTS, default="demo", where=__file__)
    c = config_from(DEPConfig)
    c.name = f"dep_{variant}"
    if variant == "tiny":
        _tiny_common(c, hidden=32, layers=2, vocab=400, embed=16, code=16)
        c.data.num_users, c.data.num_items, c.data.reviews_per_user = 8, 24, 18
        c.data.max_length, c.data.total_length, c.data.num_val = 400, 480, 4
        c.data.max_test = 4
        c.model.max_position_embeddings = 512
        c.pretrain.enabled, c.pretrain.steps, c.pretrain.batch_size = True, 2, 4
        c.embed.train_steps = 2
        c.generate.max_new_tokens = 8
        c.epochs, c.batch_size, c.eval_batch_size = 1, 4, 4
        c.optim.lr = 1e-3
        c.loop.checkpoint_every, c.loop.log_every, c.loop.progress = 0, 1, False
    elif variant in ("demo", "bench"):
        _tiny_common(c, hidden=64, layers=2, vocab=1000, embed=32, code=32)
        c.data.num_users, c.data.num_items, c.data.reviews_per_user = 96, 112, 20
        c.data.world = "favourite"  # history alone cannot tell a user's word from their tone
        c.data.max_length, c.data.total_length, c.data.num_val = 160, 192, 16
        c.model.max_position_embeddings = 256
        c.data.prompt_history = "placeholders"  # style reaches the LLM only via the soft tokens
        c.data.system_prompt = False
        c.embed.pooling = "mean"
        c.embed.train_steps = 160
        c.pretrain.enabled, c.pretrain.steps, c.pretrain.lr = True, 1000, 3e-3
        c.pretrain.users, c.pretrain.mask_arms, c.pretrain.all_labels = 480, True, False
        c.pretrain.share_train, c.pretrain.keep_adapter = False, True
        c.generate.max_new_tokens = 28
        c.epochs, c.batch_size, c.eval_batch_size = 3, 16, 16
        c.optim.lr = 3e-3
        c.loop.checkpoint_every, c.loop.log_every, c.loop.progress = 0, 10, False
        if variant == "bench":
            c.model.hidden_size, c.model.intermediate_size = 256, 688
            c.model.num_heads, c.model.num_kv_heads, c.model.head_dim = 8, 8, 32
            c.arms = ("dep",)
    else:
        c.data.source, c.data.categories = "SnowCharmQ/DPL-main", (CATEGORY[variant],)
        c.embed.folder = f"embeddings/{CATEGORY[variant]}"
    return apply_overrides(c, overrides, shortcuts=SHORTCUTS, where=__file__)
