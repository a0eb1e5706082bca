"""LPIPS (VGG) weights from the user's files -> `jaxmethods.models.vision.lpips.LPIPS`.

Two sources, as the `lpips` package (v0.1, `net="vgg"`) assembles them:
  * the VGG16 trunk: torchvision's ImageNet checkpoint (`vgg16-397923af.pth`, keys
    `features.<n>.weight` [C_out, C_in, 3, 3] / `.bias` [C_out]; `classifier.*` is ignored);
    default: the torch hub cache ($TORCH_HOME/hub/checkpoints, ~/.cache/torch/hub/checkpoints);
  * the learned lin layers: lpips' `weights/v0.1/vgg.pth` (keys `lin<k>.model.1.weight`
    [1, C_k, 1, 1]); default: the file inside an installed `lpips` package (found without
    importing it).
Each may be a `.pth` (read with `torch.load(weights_only=True)`: needs the torch extra) or a
`.safetensors`; `convert_lpips_weights` writes both into one `.safetensors` with the same key
names, which `load_lpips(weights=...)` reads without torch:

    python -m jaxmethods.hf.lpips_loading --vgg vgg16-397923af.pth --lin vgg.pth --out lpips.st

The block widths are read from the checkpoint (VGG16's layer structure, any widths), so reduced
test networks load the same way. Missing or unreadable weights raise `LPIPSWeightsMissing`,
which callers turn into one "LPIPS skipped: <why>" line (`try_load_lpips`).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.models.vision.lpips import LPIPS, LPIPSConfig

log = logging.getLogger(__name__)

VGG16_FILE = "vgg16-397923af.pth"
HOW_TO_GET = (
    "get them with `pip install lpips torchvision` and `torchvision.models.vgg16(weights="
    "'IMAGENET1K_V1')` (caches vgg16-397923af.pth), then pass vgg= and lin= (or convert them "
    "once with `python -m jaxmethods.hf.lpips_loading`)"
)


class LPIPSWeightsMissing(FileNotFoundError):
    """The VGG16 or lpips lin weights are not there (or need torch to be read)."""


def default_lin_path() -> str | None:
    """`weights/v0.1/vgg.pth` of an installed `lpips` package (not imported), else None."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "weights", "v0.1", "vgg.pth")
    return path if os.path.isfile(path) else None


def default_vgg_path() -> str:
    """Where torchvision caches the VGG16 ImageNet weights (torch.hub's directory rules)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return os.path.join(torch_home, "hub", "checkpoints", VGG16_FILE)


def read_state_dict(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    """float32 arrays of a `.safetensors` or a torch `.pth`/`.pt`/`.bin` (torch needed)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise LPIPSWeightsMissing(f"{what} weights not found at {path!r}; {HOW_TO_GET}")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return {k: np.asarray(v, np.float32) for k, v in load_file(path).items()}
    try:
        import torch
    except ImportError as e:
        raise LPIPSWeightsMissing(
            f"{what} weights {path!r} are a torch file and torch is not installed "
            "(pip install 'jaxmethods[torch]', or convert them to .safetensors elsewhere with "
            "`python -m jaxmethods.hf.lpips_loading`)"
        ) from e
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return {k: v.detach().float().numpy() for k, v in state.items() if hasattr(v, "detach")}


def convert_lpips_weights(
    vgg: str | os.PathLike, lin: str | os.PathLike, out: str | os.PathLike
) -> str:
    """Writes the trunk (`features.*`) and lin (`lin<k>.*`) tensors of two checkpoints into one
    `.safetensors` at `out` (the classifier is dropped). Returns the path."""
    from safetensors.numpy import save_file

    tensors = {k: v for k, v in read_state_dict(vgg, "VGG16").items() if k.startswith("features.")}
    tensors.update(
        {k: v for k, v in read_state_dict(lin, "lpips lin").items() if k.startswith("lin")}
    )
    out = os.fspath(out)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, out)
    return out


def _lin_key(state: dict[str, np.ndarray], k: int) -> str:
    for key in (f"lin{k}.model.1.weight", f"lin{k}.model.0.weight"):
        if key in state:
            return key
    raise LPIPSWeightsMissing(f"lpips lin weights: no tensor lin{k}.model.1.weight")


def config_from_state(state: dict[str, np.ndarray], **overrides: Any) -> LPIPSConfig:
    """An `LPIPSConfig` with VGG16's structure and the widths found in `state`."""
    base = LPIPSConfig(**overrides)
    widths = []
    for idx in base.torchvision_indices():
        key = f"features.{idx[-1]}.weight"
        if key not in state:
            raise LPIPSWeightsMissing(f"VGG16 weights: no tensor {key!r} (is this a VGG16?)")
        widths.append(int(state[key].shape[0]))
    return dataclasses.replace(base, widths=tuple(widths))


def _put(param: nnx.Param, value: np.ndarray, key: str, source: str) -> None:
    want = tuple(param[...].shape)
    if tuple(value.shape) != want:
        raise ValueError(f"{source}: tensor {key!r} has shape {value.shape}, expected {want}")
    param.set_value(jnp.asarray(value, param[...].dtype))


def lpips_from_state(
    state: dict[str, np.ndarray], *, source: str = "state dict", **config_overrides: Any
) -> LPIPS:
    """Builds `LPIPS` from torch-named arrays (trunk `features.<n>.*` + lin `lin<k>.*`); every
    used tensor must be there with its shape, unknown keys (other than `classifier.*`) are
    errors naming the key."""
    config = config_from_state(state, **config_overrides)
    model = LPIPS(config, seed=None)
    used = set()
    for b, idx in enumerate(config.torchvision_indices()):
        for i, n in enumerate(idx):
            conv = model.trunk.blocks[b][i]
            for name, param, perm in (("weight", conv.kernel, (2, 3, 1, 0)), ("bias", conv.bias, None)):  # fmt: skip
                key = f"features.{n}.{name}"
                if key not in state:
                    raise LPIPSWeightsMissing(f"{source}: no tensor {key!r}")
                value = state[key] if perm is None else np.transpose(state[key], perm)
                _put(param, value, key, source)
                used.add(key)
    for k in range(len(config.widths)):
        key = _lin_key(state, k)
        _put(model.lins[k], state[key].reshape(-1), key, source)
        used.add(key)
    unknown = sorted(k for k in state if k not in used and not k.startswith("classifier."))
    if unknown:
        raise ValueError(f"{source}: unexpected tensors {unknown[:5]} (of {len(unknown)})")
    return model


def load_lpips(
    weights: str | os.PathLike | None = None,
    *,
    vgg: str | os.PathLike | None = None,
    lin: str | os.PathLike | None = None,
    dtype: Any = jnp.float32,
) -> LPIPS:
    """VGG-LPIPS from one converted `.safetensors` (`weights`) or from the trunk and lin files.

    Args:
      weights: a file written by `convert_lpips_weights` (both parts); excludes vgg / lin.
      vgg: torchvision's VGG16 checkpoint (.pth or .safetensors); default `default_vgg_path()`.
      lin: lpips' `vgg.pth` (or .safetensors); default the installed lpips package's file.
      dtype: compute dtype (float32 for the metric).
    Raises:
      LPIPSWeightsMissing: a file is missing, or is a .pth and torch is not installed.
    """
    overrides = dict(dtype=dtype)
    if weights is not None:
        if vgg is not None or lin is not None:
            raise ValueError("load_lpips: pass either weights= or vgg= / lin=, not both")
        state = read_state_dict(weights, "LPIPS")
        return lpips_from_state(state, source=os.fspath(weights), **overrides)
    vgg = default_vgg_path() if vgg is None else vgg
    lin = default_lin_path() if lin is None else lin
    if lin is None:
        raise LPIPSWeightsMissing(f"lpips lin weights: no path given and no lpips package; {HOW_TO_GET}")  # fmt: skip
    state = read_state_dict(vgg, "VGG16")
    state = {k: v for k, v in state.items() if not k.startswith("lin")}
    state.update(read_state_dict(lin, "lpips lin"))
    return lpips_from_state(state, source=f"{os.fspath(vgg)} + {os.fspath(lin)}", **overrides)


def try_load_lpips(*args: Any, **kwargs: Any) -> tuple[LPIPS | None, str | None]:
    """`load_lpips(...)`, or (None, "LPIPS skipped: <why>") logged once when weights are
    missing; (model, None) otherwise."""
    try:
        return load_lpips(*args, **kwargs), None
    except LPIPSWeightsMissing as e:
        line = f"LPIPS skipped: {e}"
        log.warning("%s", line)
        return None, line


def _main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Convert VGG16 + lpips lin weights to .safetensors")
    p.add_argument("--vgg", default=None, help=f"torchvision VGG16 .pth (default: {VGG16_FILE} in the torch hub cache)")  # fmt: skip
    p.add_argument("--lin", default=None, help="lpips weights/v0.1/vgg.pth (default: lpips')")
    p.add_argument("--out", required=True, help="output .safetensors")
    a = p.parse_args(argv)
    lin = a.lin or default_lin_path()
    if lin is None:
        raise SystemExit("--lin is needed (no lpips package installed)")
    out = convert_lpips_weights(a.vgg or default_vgg_path(), lin, a.out)
    model = load_lpips(out)
    print(f"wrote {out} (VGG widths {model.config.widths})")


if __name__ == "__main__":
    _main()
