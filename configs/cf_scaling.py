"""Embedding-dimension scaling in collaborative filtering (arXiv 2509.15709).

Defaults come from `CFScalingConfig` (RecBole's protocol); each variant states its differences.
`--config configs/cf_scaling.py:VARIANT[,key=value,...]`:
  tiny     CI smoke test: a 2-model x 2-size sweep on a small synthetic dataset (seconds).
  demo     the sweep on a synthetic dataset with planted structure and 20 % noisy interactions,
           5 models x sizes 2..256 on 2 CPU cores; writes scaling.png + results.md.
  sweep    the paper's study on a RecBole atomic dataset: sizes 2^1..2^15, BPR, NeuMF, LightGCN,
           SGL and BPR_Drop (`sweep,dataset=modcloth,path=DIR`: the paper's size range for
           ModCloth; `noise=0.1` adds 10 % random training interactions; `seeds=0+1+2`).
  recbole  one model at one size on a RecBole atomic dataset
           (`recbole,model=lightgcn,dim=64,path=DIR,name=NAME`).
  bench    the synthetic dataset used by benchmarks/cf_epoch.py.

Shortcuts: dataset=NAME (data.name, i.e. DIR/NAME.inter, + the paper's size range when NAME is
one of the paper's datasets, in any case),
path, name, model, dim, seeds, noise (data.noise_frac), lr, epochs, batch, progress,
neumf_mlp=recbole|scaled (NeuMF widths [128, 64] or [2d, d]); any field path works too.
"""

from configs.common import apply_overrides, config_from, parse_arg
from jaxmethods.methods.cf_scaling.config import CFScalingConfig
from jaxmethods.methods.cf_scaling.presets import PAPER_DIM_RANGES

VARIANTS = ("tiny", "demo", "sweep", "recbole", "bench")


def _tiny(c) -> None:
    c.data.n_users, c.data.n_items, c.data.interactions_per_user = 60, 50, 8
    c.data.noise_frac = 0.1
    c.sweep.models = ("bpr", "lightgcn")
    c.sweep.dims = (2, 4)
    c.train.batch_size = 128
    c.train.max_epochs = 2
    c.loop.checkpoint_every = 1
    c.loop.async_checkpoint = False
    c.train.fast_compile = True  # seconds of XLA compile matter more than run time here
    c.loop.progress = False


def _demo(c) -> None:
    # Small enough for a few minutes on 2 CPU cores: a smaller batch and a larger learning rate
    # than the paper protocol so every size converges within 40 epochs.
    c.data.n_users, c.data.n_items, c.data.interactions_per_user = 500, 300, 30
    c.data.rank, c.data.sharpness = 8, 4.0
    c.data.noise_frac = 0.2
    c.sweep.models = ("bpr", "neumf", "lightgcn", "sgl", "bpr_drop")
    c.sweep.dims = tuple(2**k for k in range(1, 9))
    c.sweep.pack_max_dim = 32  # on CPU padding costs compute: pack only the smallest sizes
    c.sweep.max_dim.lightgcn = c.sweep.max_dim.sgl = 128  # graph models stop earlier (paper)
    c.sweep.curve_tol = 0.01  # one seed of a small dataset: ignore wiggles under 1 %
    c.train.batch_size = 256
    c.optim.lr = 2e-3
    c.train.max_epochs = 40
    c.train.patience = 5


def _sweep(c) -> None:
    c.data.source = "atomic"  # reads DIR/NAME.inter, or the only .inter file in DIR
    c.sweep.models = ("bpr", "neumf", "lightgcn", "sgl", "bpr_drop")


def _recbole(c) -> None:
    c.mode = "single"
    c.data.source = "atomic"


def _bench(c) -> None:
    # ML-100k-sized: 943 users, 1,682 items, ~100k interactions.
    c.data.n_users, c.data.n_items, c.data.interactions_per_user = 943, 1682, 106
    c.data.rank, c.data.sharpness = 16, 3.0
    c.data.noise_frac = 0.1
    c.sweep.dims = (64, 1024)
    c.loop.checkpoint_every = 0
    c.loop.progress = False


VARIANT_SETTINGS = {"tiny": _tiny, "demo": _demo, "sweep": _sweep, "recbole": _recbole}
VARIANT_SETTINGS["bench"] = _bench


def _dataset(c, value: str) -> None:
    c.data.name = value
    if c.data.source == "synthetic":
        c.data.source = "atomic"
    c.sweep.preset = value.lower() if value.lower() in PAPER_DIM_RANGES else ""


def _neumf_mlp(c, value: str) -> None:
    widths = {"recbole": (128, 64), "scaled": ()}
    if value not in widths:
        raise ValueError(f"neumf_mlp must be one of {sorted(widths)}, got {value!r}")
    c.hparams.neumf.mlp_hidden = widths[value]


SHORTCUTS = {
    "dataset": _dataset,
    "neumf_mlp": _neumf_mlp,
    "path": "data.path",
    "name": "data.name",
    "model": "model",
    "dim": "embed_dim",
    "seeds": "sweep.seeds",
    "models": "sweep.models",
    "dims": "sweep.dims",
    "noise": "data.noise_frac",
    "lr": "optim.lr",
    "epochs": "train.max_epochs",
    "batch": "train.batch_size",
    "progress": "loop.progress",
}


def get_config(arg: str | None = None):
    variant, overrides = parse_arg(arg, VARIANTS, default="demo", where=__file__)
    c = config_from(CFScalingConfig, mode="sweep", name=f"cf_scaling_{variant}")
    VARIANT_SETTINGS[variant](c)
    return apply_overrides(c, overrides, shortcuts=SHORTCUTS, where=__file__)
