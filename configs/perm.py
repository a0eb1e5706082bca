"""PERM: psychology-grounded empathetic rewards (supporter resonation / expression, seeker
reception, bystander) for GRPO, with optional per-user perspective weights (MRM-style).

Variants (`--config configs/perm.py:VARIANT[,key=value,...]`):
  tiny         CI: a random tiny policy, synthetic records, the rule judge, a few GRPO steps.
  demo         offline CPU: a tiny policy warm-started on synthetic formatted completions, GRPO
               under the rule judge (the reward rises; metrics.jsonl + reward.png), one pass of
               the judge through the real local server (a tiny judge LM fine-tuned in the run),
               and the per-user weights table (meta-learned vs PERM's harmonic mean).
  perm_qwen7b  the authors' perm/grpo_train.sh: Qwen2.5-7B-Instruct, full fine-tune (`lora=16`:
               LoRA r 16 / alpha 32 / dropout 0.1 on q,k,v,o,gate,up,down, reference = the base),
               3000 prompts of `train=FILE.jsonl`, gpt-4o-mini judge (OPENAI_API_KEY; or
               `judge_url=http://HOST:PORT/v1,judge_model=NAME` for vLLM / jaxmethods.serve).
  perm_mrm     perm_qwen7b with per-user perspective weights: meta-learned on
               `user_weights.path` (per-user preference pairs), GRPO composes each prompt's
               reward with its user's adapted weights (`data.user_key` names the user field).
  bench        a larger tiny decoder for GRPO step timing (rule judge, no warm start).
Shortcuts: lr, steps, train, model, judge_url, judge_model, G (group size), lora (rank; preset).
"""

from configs.common import apply_overrides, config_from, parse_arg
from jaxmethods.methods.perm.config import PERMConfig

VARIANTS = ("tiny", "demo", "perm_qwen7b", "perm_mrm", "bench")


def _lora(c, value: str) -> None:
    """`lora=16`: the script's PEFT settings (r, alpha 2r, dropout 0.1, all seven projections),
    with TRL's PEFT reference (the base model: adapters off)."""
    rank = int(value)
    c.model.lora.rank, c.model.lora.alpha, c.model.lora.dropout = rank, 2.0 * rank, 0.1
    c.grpo.reference = "lora_base" if rank else "frozen"


SHORTCUTS = {
    "lr": "optim.lr",
    "steps": "num_steps",
    "train": "data.train_file",
    "model": "model.source",
    "judge_url": "judge.llm.base_url",
    "judge_model": "judge.llm.model",
    "G": "grpo.group_size",
    "lora": _lora,
}


def _tiny_policy(c, hidden: int, layers: int) -> None:
    c.model.source = "tiny"
    c.model.remat = "none"
    c.model.hidden_size, c.model.intermediate_size = hidden, 2 * hidden
    c.model.num_layers, c.model.num_heads, c.model.num_kv_heads = layers, 4, 2
    c.model.head_dim, c.model.vocab_size = hidden // 4, 512
    c.data.source = "synthetic"
    c.judge.backend = "rule"
    c.grpo.max_prompt_length = 64
    c.grpo.micro_batch_size = 0  # the whole batch
    c.loop.progress = False


def get_config(arg: str | None = None):
    variant, overrides = parse_arg(arg, VARIANTS, default="demo", where=__file__)
    c = config_from(PERMConfig)
    c.name = f"perm_{variant}" if not variant.startswith("perm_") else variant
    if variant == "tiny":
        _tiny_policy(c, hidden=32, layers=1)
        c.data.num_synthetic = 8
        c.num_steps = 3
        c.grpo.group_size, c.grpo.prompts_per_step, c.grpo.max_new_tokens = 4, 2, 16
        c.optim.lr, c.optim.warmup_ratio = 1e-3, 0.0
        c.loop.checkpoint_every, c.loop.log_every = 2, 1
        c.warm_start.steps, c.warm_start.batch_size, c.warm_start.max_length = 2, 4, 192
        c.plot = False
    elif variant == "demo":
        _tiny_policy(c, hidden=64, layers=2)
        c.data.num_synthetic = 64
        c.num_steps = 30
        c.grpo.group_size, c.grpo.prompts_per_step, c.grpo.max_new_tokens = 8, 4, 32
        c.optim.lr, c.optim.warmup_ratio = 2e-3, 0.0
        c.loop.checkpoint_every, c.loop.log_every = 10, 1
        c.warm_start.steps, c.warm_start.batch_size, c.warm_start.max_length = 60, 16, 192
        c.server_judge.enabled = True
        c.user_weights.enabled = True
        c.compose_with_user_weights = False  # the demo's GRPO keeps PERM's harmonic reward
    elif variant in ("perm_qwen7b", "perm_mrm"):
        # grpo_train.sh; the config defaults are the script's values (see config.py).
        c.model.source = "Qwen/Qwen2.5-7B-Instruct"
        c.model.dtype = "bfloat16"
        c.model.remat = "full"
        c.grpo.logits_chunk_size = 1024
        c.grpo.export_every = 200  # an HF export at each of the script's save_steps
        c.grpo.overlap_rewards = False  # TRL 0.25 scores, then updates: strictly on-policy
        c.data.source = "jsonl"
        if variant == "perm_mrm":
            c.user_weights.enabled = True
            c.user_weights.source = "jsonl"
            c.data.user_key = "user"
    elif variant == "bench":
        _tiny_policy(c, hidden=256, layers=4)
        c.model.vocab_size = 1024
        c.data.num_synthetic = 64
        c.num_steps = 5
        c.grpo.group_size, c.grpo.prompts_per_step, c.grpo.max_new_tokens = 8, 4, 128
        c.loop.checkpoint_every, c.loop.log_every = 0, 1
        c.plot = False
    return apply_overrides(c, overrides, shortcuts=SHORTCUTS, where=__file__)
