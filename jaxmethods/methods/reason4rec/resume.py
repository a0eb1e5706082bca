"""Safe resumption of a training phase: a phase directory remembers what it was trained from.

Every Reason4Rec phase (the base's pre-training, each expert) resumes from
`<workdir>/<phase>/checkpoints`. A checkpoint of the same shapes restores silently, so a rerun in
the same workdir with other settings (another pre-training schedule, other examples) would apply
an adapter trained on another base, or skip training altogether ("nothing to train"). Each phase
therefore writes `<workdir>/<phase>/inputs.json`: a fingerprint of its frozen inputs (the base),
its initial trainable state and its examples and settings; a later run with another fingerprint
stops with an error that names the directory instead of resuming.

    check_resume(os.path.join(workdir, "reward"), fingerprint(base=..., init=..., examples=...))
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

FILENAME = "inputs.json"


@jax.jit
def _moments(tree: Any) -> Any:
    """Per leaf (sum, sum of squares, a position-weighted sum) in float32, on device."""

    def one(x):
        x = jnp.ravel(x).astype(jnp.float32)
        w = jnp.sin(jnp.arange(x.shape[0], dtype=jnp.float32))
        return jnp.stack([jnp.sum(x), jnp.sum(x * x), jnp.sum(x * w)])

    return jax.tree.map(one, tree)


def tree_digest(tree: Any) -> str:
    """A short digest of a pytree of arrays: its paths, shapes, dtypes and three moments per leaf
    (rounded to 5 significant digits, so the same weights give the same digest on a rerun). Reads
    each array once on device; only 3 numbers per leaf reach the host."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    moments = jax.device_get(_moments([x for _, x in flat]))
    parts = [
        f"{jax.tree_util.keystr(p)}:{tuple(x.shape)}:{jnp.dtype(x.dtype)}:"
        + ",".join(f"{v:.5g}" for v in np.asarray(m, np.float64))
        for (p, x), m in zip(flat, moments)
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def examples_digest(examples: Sequence[dict]) -> str:
    """A digest of tokenised examples ({"input_ids", "labels"} lists)."""
    h = hashlib.sha256()
    for e in examples:
        h.update(np.asarray(e["input_ids"], np.int64).tobytes())
        h.update(b"|")
        h.update(np.asarray(e["labels"], np.int64).tobytes())
        h.update(b"\n")
    return h.hexdigest()[:16]


def fingerprint(*, base: Any, init: Any, examples: Sequence[dict], settings: dict) -> dict:
    """{"base", "init", "examples", "settings"}: digests of the frozen inputs, the initial
    trainable state and the examples, and the phase's settings (JSON-able)."""
    return {
        "base": tree_digest(base),
        "init": tree_digest(init),
        "examples": examples_digest(examples),
        "settings": json.loads(json.dumps(settings, sort_keys=True, default=str)),
    }


def check_resume(phase_dir: str, fp: dict) -> None:
    """Records `fp` in `<phase_dir>/inputs.json`, or raises ValueError when the directory holds a
    phase trained from other inputs (naming what differs). A directory without the file but
    with checkpoints (written before this check existed) is refused too."""
    path = os.path.join(phase_dir, FILENAME)
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        diff = sorted(k for k in set(old) | set(fp) if old.get(k) != fp.get(k))
        if diff:
            raise ValueError(
                f"{phase_dir} was trained from other inputs ({', '.join(diff)} differ: "
                f"{ {k: old.get(k) for k in diff} } vs { {k: fp.get(k) for k in diff} }); "
                f"resuming it would reuse a stale phase. Use another workdir or remove {phase_dir}."
            )
        return
    ckpt = os.path.join(phase_dir, "checkpoints")
    if os.path.isdir(ckpt) and os.listdir(ckpt):
        raise ValueError(
            f"{ckpt} holds checkpoints but no {FILENAME}: they may come from other inputs. Use "
            f"another workdir or remove {phase_dir}."
        )
    if jax.process_index() != 0:
        return
    os.makedirs(phase_dir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(fp, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
