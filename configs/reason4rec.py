"""Reason4Rec (arXiv 2502.02061): Summarizer, reward model, Reasoner and Predictor as LoRA
adapters of one frozen base; reason distillation with the tau filter; three-step inference.

Variants (`--config configs/reason4rec.py:VARIANT[,key=value,...]`):
  tiny   CI: a tiny synthetic world, a 1-layer decoder, a few steps per expert (seconds).
  demo   the synthetic aspect world on CPU (docs/reason4rec.md "The demo"): a tiny decoder
         LM-pre-trained in the run (2 epochs), five adapters, the rule-based teacher, the
         three-step pipeline vs the direct Predictor (same targets, same steps) and the mean
         baselines; about 5 min of CPU on 2 cores.
  music  Amazon Digital Music with Meta-Llama-3-8B-Instruct and the authors' per-module
  book   hyper-parameters (their scripts; tau 0.1 / 0.2 / 0.08 per the paper). Point
  yelp   `data.train_file` etc. at the converted Parquet (`convert.py`); the teacher is the
         `llm` section (GPT-3.5-turbo by default) unless `reasons` names the released reasons.
  bench  the demo world with a larger decoder (timing).
Shortcuts: tau, retries, model, train, test, teacher_summaries, summaries, reasons, teacher
  (rule / llm), llm_model, llm_url, max_test, history,
  item_history.
"""

from configs.common import apply_overrides, config_from, parse_arg
from jaxmethods.methods.reason4rec.config import EXPERTS, Reason4RecConfig

VARIANTS = ("tiny", "demo", "music", "book", "yelp", "bench")
SHORTCUTS = {
    "tau": "distill.tau",
    "retries": "distill.max_retries",
    "teacher": "distill.teacher",
    "model": "model.source",
    "train": "data.train_file",
    "test": "data.test_file",
    "teacher_summaries": "data.teacher_summaries_file",
    "summaries": "data.student_summaries_file",
    "reasons": "data.reasons_file",
    "llm_model": "llm.model",
    "llm_url": "llm.base_url",
    "max_test": "data.max_test",
    "history": "data.max_history",
    "item_history": "data.max_item_history",
}
# (product class, tau) per dataset; the class is the authors' for Music, a guess for the others.
DATASETS = {"music": ("Digital Music", 0.1), "book": ("Book", 0.2), "yelp": ("Business", 0.08)}


def _tiny_model(c, hidden, layers, vocab):
    m = c.model
    m.hidden_size, m.intermediate_size, m.num_layers = hidden, 2 * hidden, layers
    m.num_heads, m.num_kv_heads, m.head_dim, m.vocab_size = 4, 2, hidden // 4, vocab
    m.max_position_embeddings = 1024


def _small_recipes(c, *, epochs, lr, batch, rank):
    for name in EXPERTS:
        e = c[name]
        e.rank, e.alpha, e.lr, e.epochs, e.batch_size = rank, 2.0 * rank, lr, epochs, batch
        e.warmup_steps, e.warmup_ratio, e.dropout = 0, 0.05, 0.0
    c.reasoner.epochs = epochs * 2


def _synthetic(c, *, users, items, per_user):
    s = c.data.synthetic
    s.num_users, s.num_items, s.per_user = users, items, per_user
    c.prompts = "compact"
    c.max_length = 1024
    c.data.max_history = 3
    c.data.num_samples, c.data.reward_samples = 100_000, 40_000
    c.distill.max_tokens = 64
    c.generation.max_new_tokens_summary, c.generation.max_new_tokens_reason = 40, 16
    c.generation.batch_size, c.generation.length_multiple = 64, 32
    c.loop.checkpoint_every, c.loop.log_every, c.loop.progress = 1000, 50, False


def get_config(arg: str | None = None):
    variant, overrides = parse_arg(arg, VARIANTS, default="demo", where=__file__)
    c = config_from(Reason4RecConfig)
    c.name = f"reason4rec_{variant}"
    if variant == "tiny":
        _synthetic(c, users=16, items=8, per_user=6)
        _tiny_model(c, 32, 1, 320)
        _small_recipes(c, epochs=1.0, lr=3e-3, batch=16, rank=4)
        c.pretrain_epochs = 1.0
        c.generation.max_new_tokens_summary, c.generation.max_new_tokens_reason = 8, 8
        c.generation.batch_size = 32
        c.loop.checkpoint_every, c.loop.log_every = 4, 1
    elif variant in ("demo", "bench"):
        _synthetic(c, users=60, items=24, per_user=10)
        _tiny_model(c, 64 if variant == "demo" else 256, 2, 384)
        _small_recipes(c, epochs=8.0, lr=5e-3, batch=16, rank=16)
        c.data.max_history, c.data.max_item_history = 3, 1
        c.data.reward_samples = 30_000  # 30 % of the targets train the reward model
        c.summarizer.lr, c.summarizer.epochs = 1e-2, 8.0
        c.reward.epochs, c.reasoner.epochs = 16.0, 20.0
        c.predictor.epochs = c.direct.epochs = 8.0  # the same budget for both
        c.generation.max_new_tokens_summary, c.generation.max_new_tokens_reason = 14, 4
        c.pretrain_epochs, c.pretrain_lr = 2.0, 1e-3
    else:
        cls, tau = DATASETS[variant]
        c.data.source, c.data.product_class, c.distill.tau = "parquet", cls, tau
        c.distill.teacher = "llm"
        root = f"data/reason4rec/{variant.capitalize()}_data"
        c.data.train_file = f"{root}/raw_data/train.parquet"
        c.data.test_file = f"{root}/raw_data/test.parquet"
        c.data.teacher_summaries_file = f"{root}/train_aspect_preference_summary.parquet"
        c.model.source = "meta-llama/Meta-Llama-3-8B-Instruct"
        c.model.dtype, c.model.remat = "bfloat16", "full"
        c.llm.model = "gpt-3.5-turbo"
        c.loop.checkpoint_every = 200
    return apply_overrides(c, overrides, shortcuts=SHORTCUTS, where=__file__)
