"""Pigeon's data formats (SER-30K stickers, MovieLens-latest-small posters) and image loading.

Layout of a Pigeon `processed_seq` folder (read with `np.load(..., allow_pickle=True)`):
  sticker: `mapped_anno_dict.npy` {iid: {"emo", "text"}}, `sticker_semantics.npy` [iid] -> str,
           `mapped_user_dict.npy` {uid: {gid: [iid, ...]}} (one theme gid per user);
  movie:   `mapped_movies.npy` {iid: {"title", "genres" ("A|B"), "intro"}},
           `movie_semantics.npy` [iid] -> str, `user_seq_dict.npy` {uid: {gid: [iid, ...]}};
  both:    `all_image_paths.npy` [iid] -> path under the image folder, and the splits
           `train.npy` / `valid.npy` / `test.npy` {uid: {gid: [[iid x 6], ...]}}.
A sample is a window of 6 interactions: 5 history images and the target. When the split files
are absent they are rebuilt from the user sequences: a sliding window of 6 moving one step,
then the samples split 8:1:1 (Pigeon's README; its preprocessing script is not public, so the
split order is a choice: "random" over all samples with a seed, or "chronological" per user).
Errors name the file, user, genre and row. `vq_tokenizer` / `vq_codec`: the run's VQ tokenizer
(trained once and cached in the workdir) and images <-> visual codes.

Real data's visual-token ids per item (written by LaVIT's external tokenizer) are read and
checked in `item_codes.py`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.models.vision.vq import VQTokenizer

WINDOW = 6
SCENARIOS = {  # scenario -> (item info, semantics, user sequences)
    "sticker": ("mapped_anno_dict.npy", "sticker_semantics.npy", "mapped_user_dict.npy"),
    "movie": ("mapped_movies.npy", "movie_semantics.npy", "user_seq_dict.npy"),
}
SPLITS = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One window: user `uid`, genre/theme `gid`, 5 history iids and the target iid."""

    uid: Any
    gid: Any
    history: tuple[int, ...]
    target: int


@dataclasses.dataclass
class PigeonData:
    """splits: {"train", "valid", "test"} -> samples; item_info {iid: dict}; semantics [iid]
    -> caption; image_paths [iid] -> relative path (None when the file is absent)."""

    scenario: str
    splits: dict[str, list[Sample]]
    item_info: dict
    semantics: list[str]
    image_paths: list[str] | None


def load_npy(path: str, *, kind: str) -> Any:
    """`np.load(path, allow_pickle=True)` as a dict (kind "dict") or a list (kind "list")."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: missing (a Pigeon processed_seq file)")
    try:
        arr = np.load(path, allow_pickle=True)
    except Exception as e:
        raise ValueError(f"{path}: not a readable .npy file ({e})") from e
    if kind == "dict":
        obj = arr.item() if arr.shape == () else None
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: expected a pickled dict, got an array of shape {arr.shape}")
        return obj
    if arr.ndim != 1:
        raise ValueError(f"{path}: expected a 1-d list, got an array of shape {arr.shape}")
    return arr.tolist()


def sliding_windows(seq: list[int], window: int = WINDOW) -> list[list[int]]:
    """All windows of `window` consecutive items, moving one step."""
    return [list(seq[i : i + window]) for i in range(len(seq) - window + 1)]


def split_samples(
    samples: list[Sample], *, ratios=(8, 1, 1), mode: str = "random", seed: int = 0
) -> dict[str, list[Sample]]:
    """Splits samples into train / valid / test by `ratios`: "random" shuffles all samples with
    `seed` and cuts; "chronological" cuts each (uid, gid) sequence in its given order (train
    first; a sequence of >= 3 windows gives at least one valid and one test sample)."""
    if mode not in ("random", "chronological"):
        raise ValueError(f"split_samples: mode {mode!r} is not random or chronological")
    r = np.asarray(ratios, np.float64) / np.sum(ratios)

    def cut(rows, at_least):
        n = len(rows)
        n_test, n_valid = (int(np.floor(n * f + 0.5)) for f in (r[2], r[1]))
        if at_least and n >= 3:
            n_test, n_valid = max(n_test, 1), max(n_valid, 1)
        a = n - n_test - n_valid
        return {"train": rows[:a], "valid": rows[a : a + n_valid], "test": rows[a + n_valid :]}

    if mode == "random":
        order = np.random.default_rng(seed).permutation(len(samples))
        return cut([samples[i] for i in order], False)
    groups: dict[tuple, list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.uid, s.gid), []).append(s)
    out: dict[str, list[Sample]] = {k: [] for k in SPLITS}
    for rows in groups.values():
        for k, v in cut(rows, True).items():
            out[k].extend(v)
    return out


def samples_from_split(split: dict, path: str, num_items: int) -> list[Sample]:
    """{uid: {gid: [[iid x 6], ...]}} -> samples; errors name the file, uid, gid and row."""
    out = []
    for uid, genres in split.items():
        if not isinstance(genres, dict):
            raise ValueError(f"{path}: user {uid!r}: expected {{gid: [windows]}}, got {genres!r}")
        for gid, rows in genres.items():
            for r, row in enumerate(rows):
                where = f"{path}: user {uid!r}, genre {gid!r}, row {r}"
                ids = list(row)
                if len(ids) != WINDOW:
                    raise ValueError(f"{where}: a window has {WINDOW} iids, got {len(ids)}")
                bad = [i for i in ids if not 0 <= int(i) < num_items]
                if bad:
                    raise ValueError(f"{where}: iids {bad} are outside [0, {num_items})")
                ids = [int(i) for i in ids]
                out.append(Sample(uid, gid, tuple(ids[:-1]), ids[-1]))
    return out


def load_pigeon(
    data_path: str, scenario: str, *, split_mode: str = "random", seed: int = 0
) -> PigeonData:
    """Reads a Pigeon processed_seq folder (module docstring); rebuilds the splits from the user
    sequences when train/valid/test.npy are absent."""
    if scenario not in SCENARIOS:
        raise ValueError(f"load_pigeon: scenario {scenario!r} is not one of {sorted(SCENARIOS)}")
    info_file, sem_file, seq_file = SCENARIOS[scenario]
    info = load_npy(os.path.join(data_path, info_file), kind="dict")
    semantics = load_npy(os.path.join(data_path, sem_file), kind="list")
    paths_file = os.path.join(data_path, "all_image_paths.npy")
    paths = load_npy(paths_file, kind="list") if os.path.exists(paths_file) else None
    n = len(semantics)
    if paths is not None and len(paths) != n:
        raise ValueError(f"{paths_file}: {len(paths)} paths but {n} rows in {sem_file}")
    field = "emo" if scenario == "sticker" else "title"
    for iid, row in info.items():
        if not isinstance(row, dict) or field not in row:
            raise ValueError(f"{os.path.join(data_path, info_file)}: iid {iid!r} has no {field!r}")
    files = [os.path.join(data_path, f"{k}.npy") for k in SPLITS]
    if all(os.path.exists(f) for f in files):
        splits = {
            k: samples_from_split(load_npy(f, kind="dict"), f, n)
            for k, f in zip(SPLITS, files, strict=True)
        }
    else:
        path = os.path.join(data_path, seq_file)
        windows = {
            uid: {gid: sliding_windows(list(seq)) for gid, seq in genres.items()}
            for uid, genres in load_npy(path, kind="dict").items()
        }
        splits = split_samples(samples_from_split(windows, path, n), mode=split_mode, seed=seed)
    for k, rows in splits.items():
        missing = [s.target for s in rows if s.target not in info]
        if missing:
            raise ValueError(f"{k} split: target iids {missing[:5]} are not in {info_file}")
    return PigeonData(scenario, splits, info, [str(s) for s in semantics], paths)


def item_metadata(data: PigeonData) -> dict[str, np.ndarray]:
    """Per-iid arrays for the triplet rules (`triplets.RULES`): sticker {"gid", "emo"} (the
    theme of the first sample that holds the item), movie {"uid", "genre"} (first user, first
    genre); items in no sample get key -1 / ""."""
    n = len(data.semantics)
    owner_gid, owner_uid = np.full(n, -1, object), np.full(n, -1, object)
    for rows in data.splits.values():
        for s in rows:
            for iid in (*s.history, s.target):
                if owner_gid[iid] == -1:
                    owner_gid[iid], owner_uid[iid] = s.gid, s.uid
    info = data.item_info
    if data.scenario == "sticker":
        emo = np.asarray([str(info.get(i, {}).get("emo", "")) for i in range(n)], object)
        return {"gid": owner_gid, "emo": emo}
    genre = [str(info.get(i, {}).get("genres", "")).split("|")[0] for i in range(n)]
    return {"uid": owner_uid, "genre": np.asarray(genre, object)}


def pigeon_prompt(data: PigeonData, sample: Sample) -> str:
    """Pigeon's instruction for one sample (`<img>` per history image, the target info and
    `<emb>`, ending with `Response: <img>`), for the LaVIT tokenizer of the paper variants."""
    head = (
        "Below is an instruction that describes a task, paired with an input that provides "
        "further context. Write a response that appropriately completes the request.\n"
    )
    what = "stickers" if data.scenario == "sticker" else "movies"
    task = (
        f"Instruction: You are a helpful personalized assistant. You will be provided with a "
        f"list of {what} that the user likes"
    )
    if data.scenario == "sticker":
        task += (
            " to analyze the user's preference over stickers. Based on this analysis, please "
            "design a personalized sticker that aligns with target sticker info and the user's "
            "sticker tastes."
        )
        hist = "".join("\n<img>" for _ in sample.history)
        emo = data.item_info[sample.target]["emo"]
        target = f"The target sticker info: a sticker with the emotion of {emo}. "
    else:
        task += (
            ", along with the movie posters, to analyze the user's preference over posters. "
            "Based on this analysis, please design a personalized poster that aligns with "
            "target movie and the user's poster tastes."
        )
        hist = "".join(f"\n{_title(data.item_info[i]['title'])} <img>" for i in sample.history)
        target = f"The target movie is titled '{_title(data.item_info[sample.target]['title'])}'. "
    return (
        f"{head}{task}\nInput: The user likes the following {what}: {hist}\n"
        f"{target}{data.semantics[sample.target]} <emb>\nResponse: <img>"
    )


def _title(title: str) -> str:
    """'Heat (1995)' -> 'Heat' (Pigeon strips a trailing year)."""
    head, sep, tail = title.rstrip().rpartition(" (")
    return head if sep and tail.endswith(")") and tail[:-1].isdigit() else title


def fit_image(
    image: np.ndarray, size: int, *, on_mismatch: str = "resize", where: str = "image"
) -> np.ndarray:
    """An image [H, W] or [H, W, C] (uint8 0..255 or float in [-1, 1]) -> [size, size, 3]
    float32 in [-1, 1]. on_mismatch: "resize" (bilinear resize; grayscale -> RGB, alpha
    dropped) or "reject" (ValueError naming `where` and the shape)."""
    from PIL import Image

    if on_mismatch not in ("resize", "reject"):
        raise ValueError(f"fit_image: on_mismatch {on_mismatch!r} is not resize or reject")
    x = np.asarray(image)
    ok = x.ndim == 3 and x.shape == (size, size, 3)
    if not ok and on_mismatch == "reject":
        raise ValueError(
            f"{where}: shape {x.shape} is not [{size}, {size}, 3] (set on_mismatch='resize' to "
            f"resize and convert it)"
        )
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"{where}: shape {x.shape} is not an image [H, W] or [H, W, 1|3|4]")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 127.5 - 1.0
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x[..., None]
    x = x[..., :3] if x.shape[-1] == 4 else x
    x = np.repeat(x, 3, -1) if x.shape[-1] == 1 else x
    if x.shape[:2] != (size, size):
        pil = [Image.fromarray(x[..., c]).resize((size, size), Image.BILINEAR) for c in range(3)]
        x = np.stack([np.asarray(p, np.float32) for p in pil], -1)
    return np.clip(x, -1.0, 1.0)


def load_image(path: str, size: int, *, on_mismatch: str = "resize") -> np.ndarray:
    """An image file -> [size, size, 3] float32 in [-1, 1] (`fit_image`; errors name the file)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB") if im.mode in ("P", "CMYK", "LA") else im)
    except OSError as e:
        raise ValueError(f"{path}: not a readable image ({e})") from e
    return fit_image(arr, size, on_mismatch=on_mismatch, where=path)


def vq_tokenizer(cfg: Any, images: np.ndarray, workdir: str) -> VQTokenizer:
    """The run's VQ tokenizer (`cfg`: a `DRCRunConfig`), trained on `images` [N, S, S, 3] or
    loaded from `<workdir>/vq.npz` when its key (`vq.json`: the vq and data sections and the
    seed) matches."""
    from jaxmethods.models.vision.vq import VQConfig, build_vq_tokenizer, train_vq
    from jaxmethods.train.metrics import write_json_atomic

    v = cfg.vq
    vcfg = VQConfig(
        image_size=cfg.data.image_size, hidden=v.hidden, num_downsamples=v.num_downsamples,
        codebook_size=v.codebook_size, code_dim=v.code_dim,
    )  # fmt: skip
    key = {"vq": dataclasses.asdict(v), "seed": cfg.seed, "data": dataclasses.asdict(cfg.data)}
    model = build_vq_tokenizer(vcfg, seed=cfg.seed)
    state = nnx.state(model)
    leaves, treedef = jax.tree.flatten(state)
    path, meta = os.path.join(workdir, "vq.npz"), os.path.join(workdir, "vq.json")
    if os.path.exists(path) and os.path.exists(meta):
        with open(meta) as f:
            same = json.load(f) == json.loads(json.dumps(key))
        if same:
            with np.load(path) as z:
                saved = [z[f"a{i}"] for i in range(len(leaves))]
            nnx.update(model, jax.tree.unflatten(treedef, [jnp.asarray(a) for a in saved]))
            logging.getLogger(__name__).info("VQ tokenizer loaded from %s", path)
            return model
    res = train_vq(
        model,
        images,
        steps=v.steps,
        batch_size=v.batch_size,
        lr=v.lr,
        seed=cfg.seed,
        kmeans_iters=v.kmeans_iters,
    )
    logging.getLogger(__name__).info("VQ tokenizer: %s", res.history[-1])
    leaves = jax.tree.leaves(nnx.state(model))
    os.makedirs(workdir, exist_ok=True)
    np.savez(path + ".tmp.npz", **{f"a{i}": np.asarray(a) for i, a in enumerate(leaves)})
    os.replace(path + ".tmp.npz", path)
    write_json_atomic(meta, key)
    return model


def vq_codec(vq: VQTokenizer):
    """(encode: images [B, S, S, 3] -> codes [B, N] int32, decode: codes [B, N] -> images),
    each one jitted program run over chunks."""
    graphdef, state = nnx.split(vq)
    enc = jax.jit(lambda s, x: nnx.merge(graphdef, s).encode(x))
    dec = jax.jit(lambda s, c: nnx.merge(graphdef, s).decode_latents(
        jnp.take(nnx.merge(graphdef, s).codebook[...], c, axis=0)))  # fmt: skip

    def encode(images: np.ndarray, bs: int = 512) -> np.ndarray:
        out = [np.asarray(enc(state, jnp.asarray(images[i : i + bs])))
               for i in range(0, len(images), bs)]  # fmt: skip
        return np.concatenate(out).reshape(len(images), -1).astype(np.int32)

    def decode(codes: np.ndarray, bs: int = 512) -> np.ndarray:
        g = vq.config.grid
        c = np.asarray(codes).reshape(len(codes), g, g)
        out = [np.asarray(dec(state, jnp.asarray(c[i : i + bs]))) for i in range(0, len(c), bs)]
        return np.clip(np.concatenate(out), -1.0, 1.0)

    return encode, decode
