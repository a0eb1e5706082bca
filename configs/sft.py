"""SFT: supervised fine-tuning of a decoder LM on prompt/response pairs (response-only loss).

Variants (`--config configs/sft.py:VARIANT[,key=value,...]`):
  tiny   CI: a random tiny decoder on synthetic QA, a few steps.
  demo   a tiny decoder learns synthetic fictitious-author QA on CPU (about a minute).
  qwen   a real recipe: Qwen2.5-0.5B-Instruct with LoRA r=16 on your JSONL
         (`data.train_file=...`), bf16 compute, fp32 masters.
  bench  a larger tiny decoder for step timing.
Shortcuts: lr, epochs, bs (micro-batch), ga, model (source), train, valid (JSONL files).
"""

from configs.common import apply_overrides, config_from, parse_arg
from jaxmethods.methods.sft.config import SFTConfig

VARIANTS = ("tiny", "demo", "qwen", "bench")
SHORTCUTS = {
    "lr": "optim.lr",
    "epochs": "epochs",
    "bs": "batch_size",
    "ga": "optim.grad_accum",
    "model": "model.source",
    "train": "data.train_file",
    "valid": "data.valid_file",
}


def get_config(arg: str | None = None):
    variant, overrides = parse_arg(arg, VARIANTS, default="demo", where=__file__)
    c = config_from(SFTConfig)
    c.name = f"sft_{variant}"
    if variant == "tiny":
        c.epochs = 2.0
        c.batch_size = 4
        c.eval_batch_size = 4
        c.data.num_authors = 6
        c.data.questions_per_author = 2
        c.data.valid_frac = 0.25
        c.data.max_length = 48
        c.model.hidden_size, c.model.intermediate_size = 32, 64
        c.model.num_layers, c.model.head_dim, c.model.vocab_size = 1, 8, 256
        c.optim.lr, c.optim.warmup_ratio = 3e-3, 0.0
        c.loop.checkpoint_every, c.loop.log_every, c.loop.progress = 4, 1, False
    elif variant == "demo":
        c.epochs = 20.0
        c.batch_size = 8
        c.data.max_length = 64
        c.optim.lr = 3e-3
        c.patience = 3
        c.loop.log_every = 20
    elif variant == "qwen":
        c.data.source = "jsonl"
        c.model.source = "Qwen/Qwen2.5-0.5B-Instruct"
        c.model.dtype = "bfloat16"
        c.model.remat = "full"
        c.model.logits_chunk_size = 256
        c.model.lora.rank, c.model.lora.alpha, c.model.lora.dropout = 16, 32.0, 0.05
        c.data.max_length = 1024
        c.data.user_start = "<|im_start|>user\n"
        c.data.user_end = "<|im_end|>\n"
        c.data.asst_start = "<|im_start|>assistant\n"
        c.data.asst_end = "<|im_end|>\n"
        c.optim.lr, c.optim.grad_accum = 2e-4, 4
        c.loop.checkpoint_every = 200
    elif variant == "bench":
        c.epochs = 1.0
        c.data.num_authors = 40
        c.model.hidden_size, c.model.intermediate_size, c.model.num_layers = 256, 688, 4
        c.model.num_heads, c.model.num_kv_heads, c.model.head_dim = 8, 8, 32
        c.loop.progress = False
    return apply_overrides(c, overrides, shortcuts=SHORTCUTS, where=__file__)
