"""Real data's visual-token ids per item (LaVIT's visual tokenizer is external).

`load_codes` reads a codes file (`.npy` [num_items, N], row = iid, or `.npz` with `codes`,
optional `codebook` features and `aug_codes` of augmented views), `check_item_codes` checks every
item of every window (errors name the item and a window holding it), `window_arrays` gives the
windows as [n, 5, N] / [n, N] arrays.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from jaxmethods.methods.drc.data import WINDOW, Sample


@dataclasses.dataclass
class ItemCodes:
    """The visual-token ids of every item, row = iid (`load_codes`).

    codes: [num_items, N] int64, N ids per image.
    features: [codebook_size, D] float32 features of the visual ids (e.g. LaVIT's quantizer
      embeddings; None = not in the file).
    augmented: [num_items, A, N] int64 ids of A semantic-preserving augmentations of each
      item's image (DRC's stage-2 references; None = not in the file).
    path: the file (named by every error).
    """

    codes: np.ndarray
    features: np.ndarray | None
    augmented: np.ndarray | None
    path: str


def _int_array(x: Any, path: str, name: str, ndim: int) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer) or x.ndim != ndim:
        want = "[num_items, N]" if ndim == 2 else "[num_items, A, N]"
        raise ValueError(f"{path}: {name} must be {want} integers, got {x.dtype} {x.shape}")
    return x.astype(np.int64)


def load_codes(path: str) -> ItemCodes:
    """Reads a codes file: `.npy` [num_items, N] ints (row = iid), or `.npz` with `codes`
    [num_items, N] and optionally `codebook` [codebook_size, D] (features of the visual ids)
    and `aug_codes` [num_items, A, N] (ids of A augmented views per item)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: missing (the visual-token ids per item, data.codes_file)")
    try:
        raw = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise ValueError(f"{path}: not a readable .npy / .npz file ({e})") from e
        raise ValueError(
            f"{path}: holds Python objects (ragged rows?); every item needs the same number N "
            "of visual ids, an int array [num_items, N] (pad or trim LaVIT's dynamic token "
            "sequences first)"
        ) from e
    except Exception as e:
        raise ValueError(f"{path}: not a readable .npy / .npz file ({e})") from e
    if isinstance(raw, np.ndarray):
        return ItemCodes(_int_array(raw, path, "the array", 2), None, None, path)
    with raw as z:
        if "codes" not in z.files:
            raise ValueError(f"{path}: an .npz codes file needs a 'codes' array, has {z.files}")
        codes = _int_array(z["codes"], path, "'codes'", 2)
        feats = np.asarray(z["codebook"], np.float32) if "codebook" in z.files else None
        aug = _int_array(z["aug_codes"], path, "'aug_codes'", 3) if "aug_codes" in z.files else None
    if feats is not None and feats.ndim != 2:
        raise ValueError(f"{path}: 'codebook' must be [codebook_size, D], got {feats.shape}")
    if aug is not None and (len(aug) != len(codes) or aug.shape[2] != codes.shape[1]):
        raise ValueError(
            f"{path}: 'aug_codes' {aug.shape} must be [{len(codes)}, A, {codes.shape[1]}]"
        )
    return ItemCodes(codes, feats, aug, path)


def check_item_codes(
    item_codes: ItemCodes, splits: dict[str, list[Sample]], codebook_size: int
) -> None:
    """Every item of every window has a row of ids inside [0, codebook_size) (in `codes` and,
    when present, `augmented`); `features` has codebook_size rows. Errors name the item and
    the first window that holds it."""
    ic = item_codes
    where: dict[int, str] = {}
    label = {"codes": "visual ids", "aug_codes": "aug_codes ids"}
    for name, rows in splits.items():
        for r, s in enumerate(rows):
            for iid in (*s.history, s.target):
                where.setdefault(iid, f"{name} window {r} (user {s.uid!r}, genre {s.gid!r})")
    for iid in sorted(where):
        if iid >= len(ic.codes):
            raise ValueError(
                f"{ic.path}: item {iid} (in {where[iid]}) has no row of visual ids: the file "
                f"has {len(ic.codes)} rows (row = iid)"
            )
        for arr, name in ((ic.codes, "codes"), (ic.augmented, "aug_codes")):
            if arr is None:
                continue
            row = arr[iid].reshape(-1)
            bad = row[(row < 0) | (row >= codebook_size)]
            if len(bad) == len(row):
                raise ValueError(f"{ic.path}: item {iid} (in {where[iid]}) has no {name}: all "
                                 f"{len(row)} ids are outside [0, {codebook_size})")  # fmt: skip
            if len(bad):
                raise ValueError(
                    f"{ic.path}: item {iid} (in {where[iid]}): {label[name]} "
                    f"{sorted(set(bad.tolist()))[:5]} are outside the codebook [0, {codebook_size})"
                )
    if ic.features is not None and len(ic.features) != codebook_size:
        raise ValueError(
            f"{ic.path}: 'codebook' has {len(ic.features)} rows, the codebook {codebook_size}"
        )


def window_arrays(samples: list[Sample], codes: np.ndarray) -> dict[str, np.ndarray]:
    """Windows as arrays: history [n, 5, N] and target [n, N] int32 codes, hist_ids [n, 5] and
    target_ids [n] int64 iids (`codes` [num_items, N], checked by `check_item_codes`)."""
    hist_ids = np.asarray([s.history for s in samples], np.int64).reshape(-1, WINDOW - 1)
    target_ids = np.asarray([s.target for s in samples], np.int64)
    return {
        "history": codes[hist_ids].astype(np.int32), "target": codes[target_ids].astype(np.int32),
        "hist_ids": hist_ids, "target_ids": target_ids,
    }  # fmt: skip
