"""Torch-free safetensors reading (single file or sharded index) and writing.

Tensors are read through `safetensors.safe_open(framework="np")`, which memory-maps the file:
`LazyTensor.read(index)` pulls only the requested slice, so each device shard of a sharded
parameter is read straight from disk (bf16 arrives as `ml_dtypes.bfloat16`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class LazyTensor:
    """One checkpoint tensor in our layout ([in, out] when `transpose`), read on demand.

    Attributes: key, file (its name in the folder) and path (for error messages), shape (our
    layout).
    """

    def __init__(self, handle, key: str, file: str, transpose: bool, path: str | None = None):
        self._handle = handle
        self._slice = handle.get_slice(key)
        self.key, self.file, self.transpose = key, file, transpose
        self.path = path or file
        shape = tuple(int(d) for d in self._slice.get_shape())
        if transpose:
            if len(shape) != 2:
                raise ValueError(f"{file}: tensor {key!r} has shape {shape}, expected a 2-D weight")
            shape = shape[::-1]
        self.shape = shape

    def read(self, index: tuple[slice, ...] | None = None) -> np.ndarray:
        """The tensor, or the slice `index` of it (in our layout), as a NumPy array."""
        if index is None or not self.shape:
            full = self._handle.get_tensor(self.key)
            return np.ascontiguousarray(full.T) if self.transpose else full
        index = tuple(index) + (slice(None),) * (len(self.shape) - len(index))
        if self.transpose:
            return np.ascontiguousarray(self._slice[index[1], index[0]].T)
        return np.asarray(self._slice[index])


class SafetensorsCheckpoint(contextlib.AbstractContextManager):
    """All tensors of a folder's `model.safetensors` or sharded `model.safetensors.index.json`.

    Use as a context manager (keeps the files open):
      with SafetensorsCheckpoint(folder) as ckpt: ckpt.tensor_names(); ckpt.tensor(key, transpose)
    """

    def __init__(self, folder: str):
        self.folder = folder
        self.files = safetensors_files(folder)
        self._stack = contextlib.ExitStack()
        self._handles: dict[str, object] = {}
        self._file_of: dict[str, str] = {}

    def __enter__(self) -> SafetensorsCheckpoint:
        index = _read_index(self.folder)
        for name in self.files:
            handle = self._stack.enter_context(open_safetensors(os.path.join(self.folder, name)))
            self._handles[name] = handle
            for key in sorted(handle.keys()):
                if key in self._file_of:
                    raise ValueError(
                        f"tensor {key!r} appears in both {self._file_of[key]} and {name}"
                    )
                if index is not None and index.get(key) != name:
                    raise ValueError(
                        f"{INDEX_FILE}: tensor {key!r} is in {name} but the index says "
                        f"{index.get(key)!r}"
                    )
                self._file_of[key] = name
        if index is not None:
            absent = sorted(set(index) - set(self._file_of))
            if absent:
                raise ValueError(
                    f"{INDEX_FILE} lists tensor {absent[0]!r} in {index[absent[0]]} but that file "
                    f"does not contain it ({len(absent)} such tensor(s))"
                )
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def tensor_names(self) -> list[str]:
        return sorted(self._file_of)

    def file_of(self, key: str) -> str:
        return self._file_of[key]

    def tensor(self, key: str, transpose: bool = False) -> LazyTensor:
        name = self._file_of[key]
        path = os.path.join(self.folder, name)
        return LazyTensor(self._handles[name], key, name, transpose, path)


def open_safetensors(path: str):
    """`safe_open(path)`; a truncated or corrupt file is a ValueError naming its path (the
    safetensors error alone does not)."""
    try:
        return safe_open(path, framework="np")
    except SafetensorError as e:
        size = os.path.getsize(path)
        raise ValueError(
            f"{path}: not a readable safetensors file ({size} bytes; {e}); it may be truncated "
            "by an interrupted download or copy"
        ) from e


def _read_index(folder: str) -> dict[str, str] | None:
    path = os.path.join(folder, INDEX_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        try:
            weight_map = json.load(f)["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise ValueError(f"{path}: not a safetensors index (needs a 'weight_map'): {e}") from e
    return dict(weight_map)


def safetensors_files(folder: str) -> list[str]:
    """The safetensors files of a model folder: from the index, else `model.safetensors`."""
    index = _read_index(folder)
    if index is not None:
        files = sorted(set(index.values()))
        missing = [f for f in files if not os.path.isfile(os.path.join(folder, f))]
        if missing:
            raise FileNotFoundError(f"{INDEX_FILE} in {folder!r} names missing file(s) {missing}")
        return files
    if os.path.isfile(os.path.join(folder, SINGLE_FILE)):
        return [SINGLE_FILE]
    found = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    if not found:
        raise FileNotFoundError(f"no *.safetensors files in {folder!r}")
    return found


def _shards(tensors: dict[str, np.ndarray], max_bytes: int | None) -> Iterator[list[str]]:
    shard, size = [], 0
    for key in tensors:
        nbytes = tensors[key].nbytes
        if shard and max_bytes is not None and size + nbytes > max_bytes:
            yield shard
            shard, size = [], 0
        shard.append(key)
        size += nbytes
    if shard:
        yield shard


def write_safetensors(
    tensors: dict[str, np.ndarray], folder: str, *, max_shard_bytes: int | None = None
) -> list[str]:
    """Writes `model.safetensors`, or `model-0000k-of-0000n.safetensors` shards plus the index
    when the tensors exceed `max_shard_bytes`. Returns the file names written."""
    os.makedirs(folder, exist_ok=True)
    groups: Sequence[list[str]] = list(_shards(tensors, max_shard_bytes))
    meta = {"format": "pt"}  # transformers requires this metadata to load safetensors
    if len(groups) <= 1:
        save_file(
            {k: np.ascontiguousarray(v) for k, v in tensors.items()},
            os.path.join(folder, SINGLE_FILE),
            meta,
        )
        return [SINGLE_FILE]
    names, weight_map = [], {}
    for i, keys in enumerate(groups):
        name = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        save_file(
            {k: np.ascontiguousarray(tensors[k]) for k in keys}, os.path.join(folder, name), meta
        )
        names.append(name)
        weight_map.update({k: name for k in keys})
    total = int(sum(v.nbytes for v in tensors.values()))
    with open(os.path.join(folder, INDEX_FILE), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return [*names, INDEX_FILE]
