"""Regex sharding rules over parameter paths, with an automatic FSDP fallback.

Rules are an ordered list of `(regex, PartitionSpec)`; the first regex that `re.search`es the
"/"-joined parameter path wins. Arrays no rule matches are sharded over `fsdp` on their largest
divisible dimension when they are big enough (big_vision's rule), and replicated otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

Rules = Sequence[tuple[str, P]]


def path_str(path: tuple) -> str:
    """`(DictKey('a'), SequenceKey(0), GetAttrKey('b'))` -> "a/0/b"."""
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def _axis_size(mesh: Mesh, axis: Any) -> int:
    if axis is None:
        return 1
    axes = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([mesh.shape[a] for a in axes]))


def _fit(spec: P, shape: tuple[int, ...], mesh: Mesh) -> P:
    """Drops axes that do not divide their dimension (or are absent from the mesh)."""
    out = []
    for dim, axis in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        axes = axis if isinstance(axis, tuple) else (axis,)
        absent = axis is None or any(a not in mesh.axis_names for a in axes)
        if absent or dim % _axis_size(mesh, axis):
            out.append(None)
        else:
            out.append(axis)
    return P(*out)


def spec_for(
    path: str,
    shape: tuple[int, ...],
    itemsize: int,
    mesh: Mesh,
    rules: Rules = (),
    *,
    fsdp_axis: str = "fsdp",
    min_fsdp_bytes: int = 1 << 20,
) -> P:
    """The PartitionSpec for one array (see module docstring)."""
    for pattern, spec in rules:
        if re.search(pattern, path):
            if len(spec) > len(shape):
                raise ValueError(
                    f"sharding rule {pattern!r} -> {spec} has rank {len(spec)} but parameter "
                    f"{path!r} has shape {shape}"
                )
            return _fit(spec, shape, mesh)
    n = mesh.shape.get(fsdp_axis, 1)
    if n > 1 and shape and int(np.prod(shape)) * itemsize >= min_fsdp_bytes:
        for dim in np.argsort(shape)[::-1]:
            if shape[dim] % n == 0:
                spec = [None] * len(shape)
                spec[dim] = fsdp_axis
                return P(*spec)
    return P()


def param_shardings(
    tree: Any,
    mesh: Mesh,
    rules: Rules = (),
    *,
    fsdp_axis: str = "fsdp",
    min_fsdp_bytes: int = 1 << 20,
) -> Any:
    """A tree of `NamedSharding` matching `tree` (arrays or `ShapeDtypeStruct`s)."""

    def one(path, x):
        if not hasattr(x, "shape"):
            return NamedSharding(mesh, P())
        itemsize = np.dtype(x.dtype).itemsize if hasattr(x, "dtype") else 4
        spec = spec_for(
            path_str(path),
            tuple(x.shape),
            itemsize,
            mesh,
            rules,
            fsdp_axis=fsdp_axis,
            min_fsdp_bytes=min_fsdp_bytes,
        )
        return NamedSharding(mesh, spec)

    return jax.tree_util.tree_map_with_path(one, tree)
