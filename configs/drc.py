"""DRC: disentangled style / semantic representations composed into latent instructions, against
Pigeon, for personalized image generation.

Variants (`--config configs/drc.py:VARIANT[,key=value,...]`):
  tiny     CI: a small styled-shapes world, every phase a few steps.
  demo     the styled-shapes world (32x32 RGB; style = palette and texture, semantics = shape
           and pose): a VQ tokenizer (cached in the workdir), a tiny image-token LM, Pigeon
           (SFT + DPO) and DRC (stage 1 + 2) trained in the run; rows none / Pigeon / DRC judged
           by style and shape classifiers trained in the run (CPU, a few minutes).
  sticker / movie
           the paper's setting on Pigeon's SER-30K / MovieLens-latest-small folders
           (`data.path`, visual-token ids per item in `data.codes_file`) with LaVIT-7B-v2
           (`lm.source`), Pigeon's LoRA r 8 / alpha 16 / dropout 0.05 on q_proj, v_proj, SFT lr
           1e-5 (20 warmup steps), DPO lr 5e-6, beta 0.1, batch 16 / 8.
  bench    the demo's sizes with a larger LM, for `benchmarks/drc_step.py`.
Shortcuts: seed, users (data.num_users), lr1 / lr2 (DRC stage 1 / 2), steps1 / steps2,
sft (Pigeon SFT steps), dpo (Pigeon DPO steps), formula (importance-sampling formula),
motifs (the world's shape classes), restyle (DRC's style-transfer augmentation fraction).
"""

from configs.common import apply_overrides, config_from, parse_arg
from jaxmethods.methods.drc.config import DRCRunConfig

ALL_PROJECTIONS = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
VARIANTS = ("tiny", "demo", "sticker", "movie", "bench")
SHORTCUTS = {
    "seed": "seed",
    "users": "data.num_users",
    "lr1": "drc.stage1_lr",
    "lr2": "drc.stage2_lr",
    "steps1": "drc.stage1_steps",
    "steps2": "drc.stage2_steps",
    "sft": "pigeon.sft_steps",
    "dpo": "pigeon.dpo_steps",
    "formula": "drc.sampler.formula",
    "motifs": "data.motifs",
    "restyle": "drc.restyle",
}


def _small(c) -> None:
    """The demo's tiny models and learning rates (the paper's are for a 7B LLM); no dropout
    (each random-bits site costs seconds of XLA compilation on CPU); noise-free pixels."""
    c.data.noise = 0.0
    c.pigeon.ffn_dim, c.pigeon.ref_hidden = 64, 64
    c.pigeon.drop_prob, c.pigeon.encoder_dropout, c.pigeon.lora_dropout = 0.0, 0.0, 0.0
    c.pigeon.sft_lr, c.pigeon.dpo_lr = 3e-3, 1e-3
    c.drc.train_lora = True  # DRC adapts the LM with the same LoRA as Pigeon
    c.drc.tower.num_heads, c.drc.fusion.num_heads = 4, 4
    # a checkpoint at the end of every phase (and every 200 steps): a rerun resumes
    c.loop.checkpoint_every, c.loop.log_every, c.loop.progress = 200, 25, False


def get_config(arg: str | None = None):
    variant, overrides = parse_arg(arg, VARIANTS, default="demo", where=__file__)
    c = config_from(DRCRunConfig)
    c.name = f"drc_{variant}"
    if variant == "tiny":
        _small(c)
        c.data.num_users, c.data.seq_len = 24, 7
        c.vq.steps, c.vq.batch_size = 8, 16
        c.judges.steps, c.judges.images = 20, 200
        c.lm.hidden_size, c.lm.intermediate_size = 32, 64
        c.lm.pretrain_steps, c.lm.pretrain_batch_size = 2, 8
        c.pigeon.sft_steps, c.pigeon.dpo_steps, c.pigeon.batch_size = 2, 2, 8
        c.pigeon.dpo_batch_size = 8
        c.pigeon.dpo_prompts, c.pigeon.dpo_candidates = 8, 2
        c.drc.stage1_steps, c.drc.stage2_steps = 3, 2
        c.drc.stage1_batch_size, c.drc.stage2_batch_size = 8, 8
        c.drc.fusion.num_latents, c.drc.num_augment = 4, 1
        c.generate.batch_size = 8
        c.grid_rows = 2
        c.loop.checkpoint_every, c.loop.log_every = 0, 1
    elif variant in ("demo", "bench"):
        _small(c)
        if variant == "demo":
            # cells less one quadrant: a one-token-per-cell VQ keeps the 4 classes apart;
            # 240 users give 96 test episodes (48 gave standard errors of ~0.1)
            c.data.motifs, c.data.num_users = "notch", 240
            c.drc.restyle = 0.5  # half of DRC's stage-2 references: the world's style transfer
        # an LM that has learnt the images (200 steps left it at 1.46 nats per token, where
        # no conditioning can be read; 1500 steps: 0.15)
        c.lm.pretrain_steps = 1500
        # a k-means codebook start: the VQ keeps the shape classes on every seed tried (random
        # picks lost them on seed 1); judges strong enough to read them
        c.vq.kmeans_iters = 10
        c.judges.steps, c.judges.hidden = 1000, 128
        # LoRA on every projection of the 2-layer, width-64 LM (q / v alone could not learn to
        # read a soft prompt in the demo's budget); the same adapters for Pigeon and DRC
        c.pigeon.lora_targets = ALL_PROJECTIONS
        c.drc.stage1_lr, c.drc.stage2_lr = 3e-3, 3e-3  # Pigeon's SFT learning rate
        # Pigeon SFT + DPO take as many steps as DRC's stage 1 + stage 2 (1200)
        c.pigeon.sft_steps, c.pigeon.dpo_steps = 1140, 60
        c.drc.stage1_steps, c.drc.stage2_steps = 200, 1000
        if variant == "bench":
            c.lm.hidden_size, c.lm.intermediate_size, c.lm.num_layers = 256, 688, 4
            c.lm.num_heads, c.lm.num_kv_heads = 8, 8
    else:
        c.data.source, c.data.scenario = "pigeon", variant
        c.data.image_size = 512  # Pigeon resizes to 512 px for its metrics
        c.drc.triplet_rule = variant
        c.lm.source = "rain1011/LaVIT-7B-v2"
        c.lm.dtype = "bfloat16"
        c.vq.codebook_size = 16384
        c.pigeon.batch_size = 16
        c.drc.tower.dim = 1024  # a light adapter over the 4096-wide LLM [reconstruction]
    return apply_overrides(c, overrides, shortcuts=SHORTCUTS, where=__file__)
