"""DRC and Pigeon on Pigeon's data (SER-30K stickers, MovieLens posters): `run_real`, which
`run.run` calls when `data.source == "pigeon"`.

Inputs: a Pigeon `processed_seq` folder (`data.path`, `data.load_pigeon`: windows of 6, split
8:1:1) and the visual-token ids of every item (`data.codes_file`, written by LaVIT's external
visual tokenizer: `.npy` [num_items, N], or `.npz` with `codes`, optionally `codebook` [16384, D]
features of the visual ids and `aug_codes` [num_items, A, N] of augmented views; `item_codes.load_codes`).
Every item of every window must have N ids inside the codebook (errors name the item), and N
must fit the LM (Pigeon's prompt holds 5 history images + the target).

Phases (each `fit` phase checkpoints under `<workdir>/<phase>` and resumes; a row whose
generations are in `<workdir>/generations` for the same config and codes is not redone):
  data      windows [n, 5, N] history / [n, N] target per split; DRC's stage-1 triplets among the
            training items by `drc.triplet_rule` (sticker: theme vs emotion; movie: user vs
            first genre; `triplets.py`)
  lm        `lm.source`: a LaVIT-7B-v2 folder / hub id (`image_lm.load_lavit_llm`, no adapters:
            each method adds Pigeon's LoRA r 8 / alpha 16 / dropout 0.05 on q_proj, v_proj from
            the `pigeon` section) or "tiny" (a random `DecoderLM`, for tests); no pre-training
  pigeon    SFT, then DPO on pairs ranked by the codebook-feature cosine to the history and the
            reference (`run.preference_pairs`; Pigeon ranks with CLIP scores on pixels)
  drc       stage 1 on importance-sampled triplets, stage 2 on the training windows with
            augmented references: the codes file's `aug_codes` (the tokenizer's ids of
            `augment.augment`ed images) or, without them, `jitter_codes` (each id moves to one of
            its nearest codebook neighbours with probability AUG_RATE)
  generate  per row, the N ids of each test window's target, reference = the target image (as
            Pigeon evaluates; Pigeon masks it by `pigeon.mask_ratio`): `generations/<row>.npy`
            [n, N] visual ids and `generations/index.jsonl` (i, uid, gid, history, target iids),
            the input of LaVIT's external pixel decoder
  score     token metrics (`real_eval.token_metrics`); Pigeon's pixel metric set when the
            decoded PNGs are in `data.decoded_dir` (default `<workdir>/decoded`)
The row `none` (the reference itself) is skipped: here the reference is the target.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any

import numpy as np

from jaxmethods.methods.drc.config import DRCRunConfig, from_config_dict
from jaxmethods.methods.drc.data import PigeonData, item_metadata, load_pigeon
from jaxmethods.methods.drc.image_lm import VisualVocab, load_lavit_llm
from jaxmethods.methods.drc.item_codes import ItemCodes, check_item_codes, load_codes, window_arrays
from jaxmethods.methods.drc.model_train import drc_generate
from jaxmethods.methods.drc.pigeon import PigeonConfig
from jaxmethods.methods.drc.pigeon_train import pigeon_generate
from jaxmethods.methods.drc.real_eval import score_pixels, token_metrics, token_table
from jaxmethods.methods.drc.run import _batched, build_lm, train_drc, train_pigeon
from jaxmethods.methods.drc.triplets import build_triplets, mining_keys
from jaxmethods.train.config import ConfigError
from jaxmethods.train.mesh import make_mesh
from jaxmethods.train.metrics import make_summary, write_json_atomic

log = logging.getLogger(__name__)

AUG_RATE = 0.3  # fraction of a reference's ids that `jitter_codes` moves [reconstruction]
AUG_NEIGHBOURS = 8  # ... each to one of its 8 nearest codebook neighbours (cosine)
METHOD_ROWS = ("pigeon", "drc")


# ---- data ------------------------------------------------------------------------------------
def real_inputs(cfg: DRCRunConfig) -> dict[str, Any]:
    """Pigeon's folder and the codes, checked: {"data", "codes" (ItemCodes), "train", "test"
    (`item_codes.window_arrays`), "triplets" [T, 3] iids among the training items}."""
    d = cfg.data
    if not os.path.isdir(d.path):
        raise FileNotFoundError(
            f"config.data.path: {d.path!r} is not a Pigeon processed_seq folder"
        )
    if cfg.drc.triplet_rule == "labels":
        raise ConfigError(
            "config.drc.triplet_rule: 'labels' mines the synthetic world's labels; Pigeon's data "
            "needs 'sticker' or 'movie' (configs/drc.py:sticker / :movie set it)"
        )
    data = load_pigeon(d.path, d.scenario, split_mode=d.split_mode, seed=cfg.seed)
    if d.max_test >= 0:
        data.splits["test"] = data.splits["test"][: d.max_test]
    codes = load_codes(d.codes_file)
    check_item_codes(codes, data.splits, cfg.vq.codebook_size)
    train, test = (window_arrays(data.splits[k], codes.codes) for k in ("train", "test"))
    for name, w in (("train", train), ("test", test)):
        if not len(w["target"]):
            raise ValueError(f"{d.path}: the {name} split has no windows")
    return {
        "data": data, "codes": codes, "train": train, "test": test,
        "triplets": train_triplets(cfg, data, train),
    }  # fmt: skip


def train_triplets(cfg: DRCRunConfig, data: PigeonData, train: dict) -> np.ndarray:
    """[T, 3] (anchor, positive-style, positive-semantic) iids, all among the training items."""
    ids = np.unique(np.concatenate([train["hist_ids"].ravel(), train["target_ids"]]))
    meta = {k: v[ids] for k, v in item_metadata(data).items()}
    style, sem = mining_keys(cfg.drc.triplet_rule, meta)
    return ids[build_triplets(style, sem, seed=cfg.seed)]


def jitter_codes(
    codes: np.ndarray, features: np.ndarray, rng: np.random.Generator, *,
    rate: float = AUG_RATE, neighbours: int = AUG_NEIGHBOURS,
) -> np.ndarray:  # fmt: skip
    """A token-level stand-in for image augmentations: each id of codes [R, N] moves, with
    probability `rate`, to one of its `neighbours` nearest other visual ids by the cosine of
    features [C, D] (uniformly)."""
    used, inverse = np.unique(codes, return_inverse=True)
    f = features / (np.linalg.norm(features, axis=-1, keepdims=True) + 1e-8)
    k = min(neighbours, len(f) - 1)
    near = np.empty((len(used), k), np.int64)
    for start in range(0, len(used), 1024):
        part = used[start : start + 1024]
        sim = f[part] @ f.T  # [chunk, C]
        sim[np.arange(len(part)), part] = -np.inf
        near[start : start + len(part)] = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    moved = near[inverse.reshape(codes.shape), rng.integers(0, k, codes.shape)]
    return np.where(rng.random(codes.shape) < rate, moved, codes).astype(codes.dtype)


def augmented_references(
    cfg: DRCRunConfig, codes: ItemCodes, target_ids: np.ndarray, features: np.ndarray
) -> np.ndarray:
    """DRC's stage-2 references [S * A, N] (A = drc.num_augment views of each training target,
    sample-major): the codes file's `aug_codes`, else `jitter_codes`."""
    a = max(cfg.drc.num_augment, 1)
    if codes.augmented is not None:
        if codes.augmented.shape[1] < a:
            raise ValueError(
                f"{codes.path}: 'aug_codes' holds {codes.augmented.shape[1]} views per item, "
                f"config.drc.num_augment asks for {a}"
            )
        return codes.augmented[target_ids, :a].reshape(len(target_ids) * a, -1).astype(np.int32)
    rng = np.random.default_rng(cfg.seed + 12)
    return jitter_codes(np.repeat(codes.codes[target_ids], a, 0), features, rng).astype(np.int32)


# ---- LM --------------------------------------------------------------------------------------
def real_lm(cfg: DRCRunConfig, mesh) -> tuple[Any, VisualVocab]:
    """(the image-token LM, its id layout): "tiny" = `run.build_lm` (random weights), else
    LaVIT-7B-v2's LLM without adapters (the methods add their LoRA)."""
    if cfg.lm.source == "tiny":
        vocab = VisualVocab.tiny(cfg.vq.codebook_size)
        return build_lm(cfg, vocab), vocab
    vocab = VisualVocab(codebook_size=cfg.vq.codebook_size)
    lm = load_lavit_llm(
        cfg.lm.source, vocab=vocab, lora=None, seed=cfg.seed, dtype=cfg.lm.dtype, mesh=mesh
    )
    return lm, vocab


def check_image_length(n: int, lm: Any, cfg: DRCRunConfig, where: str) -> None:
    """N ids per image must fit Pigeon's mask generator (positions 1..256) and the LM's
    positions for Pigeon's prompt (5 images + `<emb> <img>` + target + end) and DRC's."""
    p_max = PigeonConfig().max_positions - 1
    if not 1 <= n <= p_max:
        raise ValueError(
            f"{where}: {n} visual ids per image; Pigeon's mask generator takes 1..{p_max}"
        )
    k = cfg.drc.fusion.num_latents
    need = max(5 * (n + 2) + 2 + n + 1, k + 1 + n + 1)
    have = lm.config.max_position_embeddings
    if need > have:
        raise ValueError(
            f"{where}: {n} visual ids per image make sequences of {need} tokens (5 history "
            f"images + the target), the LM has {have} positions"
        )


def code_features(codes: ItemCodes, lm: Any, vocab: VisualVocab) -> np.ndarray:
    """[C, D] features of the visual ids: the codes file's `codebook`, else the LM's input
    embeddings of the visual ids."""
    if codes.features is not None:
        return codes.features
    import jax.numpy as jnp

    ids = jnp.arange(vocab.codebook_size, dtype=jnp.int32)[None] + vocab.visual_offset
    return np.asarray(lm.embed(ids)[0], np.float32)


@dataclasses.dataclass
class Context:
    """What training and generation share (built only when a row must be computed)."""

    mesh: Any
    lm: Any
    vocab: VisualVocab
    features: np.ndarray

    @classmethod
    def build(cls, cfg: DRCRunConfig, codes: ItemCodes) -> Context:
        mesh = make_mesh(cfg.mesh)
        lm, vocab = real_lm(cfg, mesh)
        check_image_length(codes.codes.shape[1], lm, cfg, codes.path)
        return cls(mesh, lm, vocab, code_features(codes, lm, vocab))


# ---- rows ------------------------------------------------------------------------------------
def pigeon_row(cfg: DRCRunConfig, ctx: Context, inp: dict, workdir: str):
    """Pigeon SFT + DPO (`run.train_pigeon`), then the test generations [n, N]."""
    model, info = train_pigeon(
        cfg, ctx.lm, ctx.vocab, ctx.features, inp["train"], ctx.mesh, workdir
    )
    g, test = cfg.generate, inp["test"]
    gen = _batched(lambda h, r, s: pigeon_generate(
        model, h, r, mask_ratio=cfg.pigeon.mask_ratio, do_sample=g.do_sample,
        temperature=g.temperature, top_k=g.top_k, seeds=s, seed=g.seed,
    ), test["history"], test["target"], _seeds(cfg, test), g.batch_size)  # fmt: skip
    return gen, info


def drc_row(cfg: DRCRunConfig, ctx: Context, inp: dict, workdir: str):
    """DRC stage 1 + stage 2 (`run.train_drc`), then the test generations [n, N]."""
    train, a = inp["train"], max(cfg.drc.num_augment, 1)
    data = {
        "triplets": inp["triplets"], "item_codes": inp["codes"].codes.astype(np.int32),
        "history": np.repeat(train["history"], a, 0), "target": np.repeat(train["target"], a, 0),
        "aug_reference": augmented_references(
            cfg, inp["codes"], train["target_ids"], ctx.features),
    }  # fmt: skip
    model, info = train_drc(cfg, ctx.lm, ctx.vocab, data, ctx.mesh, workdir)
    info["triplets"] = len(inp["triplets"])
    g, test = cfg.generate, inp["test"]
    gen = _batched(lambda h, r, s: drc_generate(
        model, h, r, do_sample=g.do_sample, temperature=g.temperature, top_k=g.top_k,
        seeds=s if g.do_sample else None,
    ), test["history"], test["target"], _seeds(cfg, test), g.batch_size)  # fmt: skip
    return gen, info


ROW_FNS = {"pigeon": pigeon_row, "drc": drc_row}


def _seeds(cfg: DRCRunConfig, test: dict) -> list[int]:
    return [cfg.generate.seed + i for i in range(len(test["target"]))]


def run_key(cfg: DRCRunConfig, codes: ItemCodes) -> str:
    """A hash of what a row's generations depend on: the config (less what only logs, names
    or scores) and the codes file's content."""
    c = dataclasses.asdict(cfg)
    for drop in ("loop", "name", "grid_rows", "rows"):
        c.pop(drop)
    for drop in ("decoded_dir", "image_size", "on_mismatch"):
        c["data"].pop(drop)
    c["generate"].pop("batch_size")
    h = hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode())
    for arr in (codes.codes, codes.augmented, codes.features):
        h.update(b"-" if arr is None else np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def _load_row(gen_dir: str, row: str, key: str) -> dict | None:
    meta = os.path.join(gen_dir, f"{row}.json")
    if not os.path.exists(meta):
        return None
    with open(meta) as f:
        saved = json.load(f)
    if saved.get("key") != key:
        log.info("%s: other config or codes; %s is redone", meta, row)
        return None
    if row != "target":
        gen = os.path.join(gen_dir, f"{row}.npy")
        if not os.path.exists(gen):
            return None
        saved["gen"] = np.load(gen)
    return saved


def _save_row(gen_dir: str, row: str, key: str, gen, info: dict, scores: dict) -> None:
    if gen is not None:
        tmp = os.path.join(gen_dir, f"{row}.tmp.npy")
        np.save(tmp, np.asarray(gen, np.int32))
        os.replace(tmp, os.path.join(gen_dir, f"{row}.npy"))
    per = {k: np.asarray(v, np.float64).tolist() for k, v in scores.items()}
    meta = {"key": key, "info": info, "scores": per}
    write_json_atomic(os.path.join(gen_dir, f"{row}.json"), meta)


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def write_index(path: str, data: PigeonData) -> None:
    """`index.jsonl`: one line per test window i: {"i", "uid", "gid", "history", "target"}."""
    lines = [
        json.dumps({"i": i, "uid": _plain(s.uid), "gid": _plain(s.gid),
                    "history": [int(x) for x in s.history], "target": int(s.target)}, default=str)
        for i, s in enumerate(data.splits["test"])
    ]  # fmt: skip
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


# ---- run -------------------------------------------------------------------------------------
def run_real(config: Any, workdir: str) -> dict:
    """The run on Pigeon's data (module docstring; `config`: a ConfigDict or `DRCRunConfig`)
    -> the summary: token metrics, pixel metrics or what awaits decoding, losses, files."""
    cfg = config if isinstance(config, DRCRunConfig) else from_config_dict(config)
    if cfg.data.source != "pigeon":
        raise ConfigError(f"config.data.source: run_real needs 'pigeon', got {cfg.data.source!r}")
    inp = real_inputs(cfg)
    test, codes = inp["test"], inp["codes"]
    gen_dir = os.path.join(workdir, "generations")
    os.makedirs(gen_dir, exist_ok=True)
    index = os.path.join(gen_dir, "index.jsonl")
    write_index(index, inp["data"])
    key, ctx = run_key(cfg, codes), None
    rows = [r for r in cfg.rows if r in METHOD_ROWS]
    scores, metrics = {}, {}
    for row in ("target", *rows):
        saved = _load_row(gen_dir, row, key)
        if saved is None:
            ctx = ctx or Context.build(cfg, codes)
            gen, info = (None, {}) if row == "target" else ROW_FNS[row](cfg, ctx, inp, workdir)
            if gen is not None and (np.any(gen < 0) or gen.shape != test["target"].shape):
                want = test["target"].shape
                raise RuntimeError(f"{row}: generations {gen.shape} are not {want} visual ids")
            per = token_metrics(
                test["target"] if gen is None else gen, test["target"], test["history"],
                test["target"], ctx.features,
            )  # fmt: skip
            _save_row(gen_dir, row, key, gen, info, per)
            saved = {"gen": gen, "info": info, "scores": per}
        scores[row] = saved["scores"]
        metrics |= {f"{row}/{k}": v for k, v in saved["info"].items()}
    metrics_t, table = token_table(scores)
    metrics |= metrics_t
    tables = {"tokens": table}
    pixel, lines = score_pixels(cfg, inp, rows, workdir)
    metrics |= pixel
    if lines:
        metrics["pixel_metrics/status"] = " | ".join(lines)
        tables["pixels"] = "\n".join(lines)
    if "none" in cfg.rows:
        metrics["none/status"] = "skipped: on Pigeon's data the reference is the target itself"
    metrics |= {
        "test/windows": len(test["target"]), "train/windows": len(inp["train"]["target"]),
        "drc/triplets": len(inp["triplets"]), "codes/per_image": codes.codes.shape[1],
    }  # fmt: skip
    artifacts = {"index": index} | {r: os.path.join(gen_dir, f"{r}.npy") for r in rows}
    return make_summary(metrics, tables=tables, artifacts=artifacts)
