"""BalDRO: DRO-balanced LLM unlearning (arXiv 2601.09172) on TOFU and MUSE.

Variants (`--config configs/baldro.py:VARIANT[,key=value,...]`):
  tiny   CI smoke test: random tiny decoder, synthetic fictitious authors, NPO plain/G/DV.
  demo   offline CPU, a few minutes: a tiny model is fine-tuned in the run on synthetic
         fictitious-author QA (the "target") and on the retain split (the "retain model"), then
         the target is unlearned with NPO, NPO+BalDRO-G, NPO+BalDRO-DV and NPO+BalDRO-DV(+).
  tofu   the authors' TOFU scripts: Llama-2-7b-chat (open-unlearning's TOFU full model).
  muse   the authors' MUSE scripts: the MUSE News/Books targets, raw forget / retain1 text.
  bench  a larger synthetic problem for step timing (see benchmarks/baldro_step.py).

Defaults come from `BalDROConfig`; each variant states only what differs. `key=value` pairs
after the variant pick one point of the authors' grids (`GRIDS`, `grid_args`):
  loss=npo|simnpo|satimp|ga|graddiff  variant=plain|group|dv|dv_softmax (or plain+group+dv)
  split=forget01|forget05|forget10  corpus=News|Books  lr= bs= ga= epochs= beta_dv= beta=
  delta= gamma= alpha= beta1= beta2= model=<hf id or folder>, or any field path (optim.lr=).
`loss=` is a preset (the loss's defaults of the authors' trainer configs and scripts); it applies
before the field assignments, so `loss=npo,beta_dv=2` and `beta_dv=2,loss=npo` agree.
"""

import itertools

import ml_collections

from configs.common import apply_overrides, config_from, parse_arg
from jaxmethods.eval.gibberish import GIBBERISH_CLASSIFIER
from jaxmethods.methods.baldro.config import BalDROConfig
from jaxmethods.methods.baldro.objective import ObjectiveConfig

VARIANTS = ("tiny", "demo", "tofu", "muse", "bench")

LR5 = (1e-5, 2e-5, 3e-5, 4e-5, 5e-5)
LR3 = (1e-5, 2e-5, 5e-5)
BETA_DV = (0.5, 1.0, 2.0, 5.0, 10.0)
TOFU_SPLITS = ("forget01", "forget05", "forget10")
MUSE_CORPORA = ("News", "Books")
_SIMNPO = {"beta": (3.5, 4.5), "delta": (0.0, 1.0), "gamma": (0.125, 0.25)}
_SATIMP_TOFU = {"alpha": (1.0, 0.1, 0.01), "beta1": (5.0, 6.0), "beta2": (1.0,)}

# Every script of the authors' scripts/unlearn/{tofu,muse}/ (commit 12a0b0c): name
# `{loss}_{variant}` -> the values it loops over (`bs_ga` = per-device batch, grad. accumulation;
# 1 GPU). Method arguments the scripts fix are the loss presets below.
GRIDS = {
    "tofu": {
        "npo_plain": {"split": TOFU_SPLITS, "lr": LR5, "bs_ga": ((8, 2), (8, 4)), "epochs": (5, 10)},
        "npo_group": {"split": ("forget01",), "lr": LR5, "bs_ga": ((8, 2), (8, 4)), "epochs": (5, 10)},
        "npo_dv": {"split": ("forget01",), "lr": LR5, "bs_ga": ((8, 2), (8, 4)), "epochs": (5, 10),
                   "beta_dv": BETA_DV},
        "simnpo_plain": {"split": TOFU_SPLITS, "lr": LR3, "bs_ga": ((8, 2), (8, 4)), "epochs": (10,),
                         **_SIMNPO},
        "simnpo_group": {"split": TOFU_SPLITS, "lr": LR3, "bs_ga": ((8, 2), (8, 4)), "epochs": (10,),
                         **_SIMNPO},
        "simnpo_dv": {"split": TOFU_SPLITS, "lr": LR3, "bs_ga": ((8, 2), (8, 4)), "epochs": (10,),
                      **_SIMNPO},  # sigma_forget fixed at 1.0
        "satimp_group": {"split": TOFU_SPLITS, "lr": LR3, "bs_ga": ((4, 8),), "epochs": (10,),
                         **_SATIMP_TOFU},
        "satimp_dv": {"split": TOFU_SPLITS, "lr": LR3, "bs_ga": ((4, 8),), "epochs": (10,),
                      **_SATIMP_TOFU},  # sigma_forget fixed at 1.0
    },
    "muse": {
        "ga_plain": {"corpus": MUSE_CORPORA, "lr": LR5, "bs_ga": ((8, 4),), "epochs": (10,)},
        "graddiff_plain": {"corpus": MUSE_CORPORA, "lr": LR5, "bs_ga": ((8, 4),), "epochs": (10,),
                           "alpha": (1.0, 2.0, 5.0, 10.0)},
        "npo_plain": {"corpus": MUSE_CORPORA, "lr": LR5, "bs_ga": ((4, 8),), "epochs": (10,),
                      "alpha": (1.0, 2.0, 5.0, 10.0)},
        "npo_group": {"corpus": MUSE_CORPORA, "lr": LR5, "bs_ga": ((4, 8),), "epochs": (10,),
                      "alpha": (1.0, 2.0, 5.0, 10.0)},
        # The script passes `sigma`, which DrNPO does not take (see docs/baldro.md).
        "npo_dv": {"corpus": MUSE_CORPORA, "lr": LR5, "bs_ga": ((4, 4), (4, 8)), "epochs": (10,),
                   "beta_dv": BETA_DV},
        "simnpo_plain": {"corpus": MUSE_CORPORA, "lr": LR3, "bs_ga": ((4, 8),), "epochs": (10,),
                         **_SIMNPO},
        "simnpo_group": {"corpus": MUSE_CORPORA, "lr": LR5, "bs_ga": ((4, 8),), "epochs": (10,),
                         "beta": (4.5,), "delta": (0.0,), "gamma": (0.125,)},
        "simnpo_dv": {"corpus": MUSE_CORPORA, "lr": LR3, "bs_ga": ((4, 8),), "epochs": (10,),
                      **_SIMNPO, "beta_dv": BETA_DV},
        "satimp_plain": {"corpus": MUSE_CORPORA, "lr": LR3, "bs_ga": ((4, 8),), "epochs": (10,)},
        "satimp_group": {"corpus": MUSE_CORPORA, "lr": LR3, "bs_ga": ((4, 8),), "epochs": (10,)},
        # The script sweeps `beta_dv_forget`, DrSatImp's temperature is `sigma_forget`.
        "satimp_dv": {"corpus": MUSE_CORPORA, "lr": LR5, "bs_ga": ((4, 4), (4, 8)), "epochs": (10,),
                      "beta_dv": BETA_DV},
    },
}  # fmt: skip

# Method arguments of the authors' trainer configs (configs/trainer/*.yaml) and the values the
# scripts fix; MUSE SatImp runs with gamma 1.0 in every MUSE script, TOFU's with 0.1.
LOSS_DEFAULTS = {
    "npo": dict(beta=0.1, alpha=1.0, gamma=1.0),
    "simnpo": dict(beta=4.5, delta=0.0, alpha=1.0, gamma=0.125),
    "satimp": dict(beta1=5.0, beta2=1.0, alpha=1.0, gamma=0.1),
    "ga": dict(alpha=0.0, gamma=1.0),
    "graddiff": dict(alpha=1.0, gamma=1.0),
}
MUSE_LOSS_DEFAULTS = {"satimp": dict(gamma=1.0)}
# (per-device batch, grad. accumulation) of each loss's scripts, where it differs from the
# benchmark's default (TOFU 8 x 2, MUSE 4 x 8).
LOSS_BATCH = {"tofu": {"satimp": (4, 8)}, "muse": {"ga": (8, 4), "graddiff": (8, 4)}}
MUSE_RETRAIN_AUC = {"News": 0.5236, "Books": 0.4592}  # mia_min_k of the retrained models
_LOSS_KEYS = sorted({k for d in LOSS_DEFAULTS.values() for k in d} | {"beta_dv"})


def _loss(c: ml_collections.ConfigDict, value: str) -> None:
    if value not in LOSS_DEFAULTS:
        raise ValueError(f"unknown loss {value!r}; choose from {tuple(LOSS_DEFAULTS)}")
    defaults = config_from(ObjectiveConfig)
    for key in _LOSS_KEYS:
        c.unlearn[key] = defaults[key]
    c.unlearn.loss = value
    c.unlearn.update(LOSS_DEFAULTS[value])
    bench = c.data.benchmark
    if bench == "muse":
        c.unlearn.update(MUSE_LOSS_DEFAULTS.get(value, {}))
    if value in LOSS_BATCH.get(bench, {}):
        c.train.micro_batch_size, c.optim.grad_accum = LOSS_BATCH[bench][value]


def _split(c: ml_collections.ConfigDict, value: str) -> None:
    pct = int(value.removeprefix("forget"))
    c.data.forget_split, c.data.retain_split = value, f"retain{100 - pct}"
    if c.data.benchmark == "tofu":
        c.eval.retain_logs_path = (
            f"saves/eval/tofu_Llama-2-7b-chat-hf_retain{100 - pct}/TOFU_EVAL.json"
        )


def _corpus(c: ml_collections.ConfigDict, value: str) -> None:
    if value not in MUSE_RETRAIN_AUC:
        raise ValueError(f"unknown corpus {value!r}; choose from {tuple(MUSE_RETRAIN_AUC)}")
    c.data.corpus = value
    c.model.source = f"muse-bench/MUSE-{value.lower()}_target"
    c.eval.retrain_auc = MUSE_RETRAIN_AUC[value]


SHORTCUTS = {
    "loss": _loss,
    "split": _split,
    "corpus": _corpus,
    "variant": "variants",
    "lr": "optim.lr",
    "ga": "optim.grad_accum",
    "bs": "train.micro_batch_size",
    "epochs": "train.epochs",
    "model": "model.source",
    **{k: f"unlearn.{k}" for k in ("beta_dv", "beta", "delta", "gamma", "alpha", "beta1", "beta2")},
}


def _tiny(c):
    c.variants = ("plain", "group", "dv")
    c.loop.progress = False
    c.model.update(hidden_size=32, intermediate_size=64, num_layers=1, head_dim=8,
                   scan_layers=False, vocab_size=256)  # fmt: skip
    c.data.update(num_authors=20, questions_per_author=2, max_length=48)
    c.optim.update(lr=1e-3, grad_accum=1)
    c.train.update(epochs=2.0, micro_batch_size=4, warmup_epochs=0.0)  # 4 fake CPU devices
    c.eval.update(batch_size=8, length=48, prompt_length=40, max_new_tokens=4)


def _demo(c):
    c.variants = ("plain", "group", "dv", "dv_softmax")
    c.data.update(num_authors=40, max_length=64)
    c.finetune.update(enabled=True, epochs=40.0)
    c.optim.update(lr=1e-3, grad_accum=1)
    c.eval.update(length=64, prompt_length=40, max_new_tokens=24)


def _tofu(c):
    c.mesh = {"data": 1, "fsdp": -1, "tensor": 1}
    c.loop.keep_checkpoints = 1  # 7B weights + AdamW moments per checkpoint
    c.model.update(source="open-unlearning/tofu_Llama-2-7b-chat-hf_full", dtype="bfloat16",
                   remat="full", logits_chunk_size=128)  # fmt: skip
    c.data.update(benchmark="tofu", forget_split="forget01", retain_split="retain99")
    c.eval.retain_logs_path = "saves/eval/tofu_Llama-2-7b-chat-hf_retain99/TOFU_EVAL.json"
    c.eval.gibberish_classifier = GIBBERISH_CLASSIFIER


def _muse(c):
    _tofu(c)
    c.data.update(benchmark="muse", max_length=2048)
    c.model.update(source="muse-bench/MUSE-news_target", tokenizer="meta-llama/Llama-2-7b-hf")
    c.optim.update(weight_decay=0.0, schedule="constant", grad_accum=8)
    c.train.update(micro_batch_size=4, warmup_epochs=0.0)
    c.eval.update(retain_logs_path="", retrain_auc=MUSE_RETRAIN_AUC["News"], batch_size=8,
                  gibberish_classifier="",
                  length=2048, prompt_length=1024, at_start=False)  # fmt: skip


def _bench(c):
    c.loop.progress = False
    c.eval.enabled = False
    c.model.update(hidden_size=256, intermediate_size=688, num_layers=4, num_heads=8,
                   num_kv_heads=8, head_dim=32, vocab_size=512)  # fmt: skip
    c.data.update(num_authors=40, max_length=64)
    c.optim.grad_accum = 1


SETTINGS = {"tiny": _tiny, "demo": _demo, "tofu": _tofu, "muse": _muse, "bench": _bench}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant, pairs = parse_arg(arg, VARIANTS, default="demo", where=__file__)
    c = config_from(BalDROConfig)
    c.name = f"baldro_{variant}"
    SETTINGS[variant](c)
    return apply_overrides(c, pairs, shortcuts=SHORTCUTS, where=__file__)


def grid_args(benchmark: str, name: str) -> list[str]:
    """Every `configs/baldro.py` argument of one script's grid, e.g.
    `tofu,loss=npo,variant=dv,split=forget01,lr=1e-05,bs=8,ga=2,epochs=5,beta_dv=0.5`."""
    grid = GRIDS[benchmark][name]
    loss, _, variant = name.rpartition("_")
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        parts = [benchmark, f"loss={loss}", f"variant={variant}"]
        for k, v in zip(keys, values):
            parts += [f"bs={v[0]}", f"ga={v[1]}"] if k == "bs_ga" else [f"{k}={v}"]
        out.append(",".join(parts))
    return out
