"""Writes the LPIPS parity fixture with the `lpips` package (v0.1.4) itself; run under a venv
with torch + lpips (torchvision is optional: a stand-in `torchvision.models.vgg16` is installed
when it cannot be imported, since only its `features` layout is used):

    PYTHONPATH=/work/main /work/torchenv/bin/python tests/data/lpips/make_fixture.py [--full]

Outputs (in this folder):
  tiny_lpips.safetensors  a width-reduced VGG16 (widths 4, 8, 8, 16, 16; same layer structure,
                          random He-init weights) under torchvision's keys `features.<n>.*`, and
                          random non-negative lin weights under lpips' keys `lin<k>.model.1.weight`
  expected.npz            x0, x1 [3, 3, 30, 26] in [-1, 1] (NCHW; odd sizes, so every max pool
                          floors, down to 1x1 at relu5_3; the last pair is a near pair) and
                          `lpips.LPIPS(net="vgg")(x0, x1, retPerLayer=True)` on them:
                          dist [3], layers [3, 5]

`--full` also checks (not written to disk) the full-width network: VGG16 widths with a random
trunk and the package's real `weights/v0.1/vgg.pth` lin layers, run by lpips and by
`jaxmethods.hf.lpips_loading.load_lpips(vgg=..., lin=...)` from `.pth` files, and prints the
largest difference.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import types

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
TINY_WIDTHS = (4, 8, 8, 16, 16)
CONVS = (2, 2, 3, 3, 3)
STATE: dict[str, tuple[int, ...]] = {"widths": TINY_WIDTHS}


def vgg_features(widths) -> nn.Sequential:
    """torchvision's `vgg16().features` layout with the given block widths."""
    layers, c_in = [], 3
    for w, n in zip(widths, CONVS):
        for _ in range(n):
            layers += [nn.Conv2d(c_in, w, 3, padding=1), nn.ReLU(inplace=True)]
            c_in = w
        layers.append(nn.MaxPool2d(2, 2))
    feats = nn.Sequential(*layers)
    for m in feats:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
            nn.init.uniform_(m.bias, -0.1, 0.1)
    return feats


def install_torchvision_standin() -> None:
    try:
        import torchvision  # noqa: F401

        return
    except Exception:
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
    tv = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    models.vgg16 = lambda *a, **k: types.SimpleNamespace(features=vgg_features(STATE["widths"]))
    tv.models = models
    sys.modules["torchvision"], sys.modules["torchvision.models"] = tv, models


def build(widths, lin_state=None):
    """lpips.LPIPS(net="vgg") over a random trunk of `widths`; lin layers random or given."""
    import lpips

    STATE["widths"] = tuple(widths)
    model = lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False)
    lins = [lpips.NetLinLayer(w, use_dropout=True) for w in widths]
    for k, lin in enumerate(lins):
        setattr(model, f"lin{k}", lin)
        with torch.no_grad():
            if lin_state is None:
                lin.model[1].weight.uniform_(0.0, 1.0 / widths[k] ** 0.5)
            else:
                lin.model[1].weight.copy_(lin_state[f"lin{k}.model.1.weight"])
    model.lins = nn.ModuleList(lins)
    model.chns = list(widths)
    return model.eval()


def torch_state(model) -> dict[str, torch.Tensor]:
    """Trunk under torchvision's `features.<n>` keys + lin under lpips' keys."""
    out = {}
    for s in range(1, 6):
        for name, p in getattr(model.net, f"slice{s}").named_parameters():
            out[f"features.{name}"] = p.detach().clone()
    for k, lin in enumerate(model.lins):
        out[f"lin{k}.model.1.weight"] = lin.model[1].weight.detach().clone()
    return out


def run(model, x0, x1):
    with torch.no_grad():
        d, layers = model(torch.from_numpy(x0), torch.from_numpy(x1), retPerLayer=True)
    layers = torch.stack([t.reshape(-1) for t in layers], dim=-1)
    return d.reshape(-1).numpy(), layers.numpy()


def images(rng, b, h, w):
    x0 = rng.uniform(-1, 1, (b, 3, h, w)).astype(np.float32)
    x1 = rng.uniform(-1, 1, (b, 3, h, w)).astype(np.float32)
    x1[-1] = np.clip(x0[-1] + 0.1 * rng.standard_normal((3, h, w)), -1, 1)  # a near pair
    return x0, x1


def write_tiny() -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build(TINY_WIDTHS)
    save_file(torch_state(model), os.path.join(HERE, "tiny_lpips.safetensors"))
    x0, x1 = images(rng, 3, 30, 26)
    dist, layers = run(model, x0, x1)
    np.savez_compressed(os.path.join(HERE, "expected.npz"), x0=x0, x1=x1, dist=dist, layers=layers)
    print("tiny:", dist)


def check_full() -> None:
    import lpips

    from jaxmethods.hf.lpips_loading import default_lin_path, load_lpips

    torch.manual_seed(1)
    lin_path = default_lin_path() or os.path.join(
        os.path.dirname(lpips.__file__), "weights", "v0.1", "vgg.pth"
    )
    lin_state = torch.load(lin_path, map_location="cpu", weights_only=True)
    model = build((64, 128, 256, 512, 512), lin_state)
    state = torch_state(model)
    rng = np.random.default_rng(1)
    x0, x1 = images(rng, 2, 64, 64)
    want, _ = run(model, x0, x1)
    with tempfile.TemporaryDirectory() as d:
        vgg = os.path.join(d, "vgg16.pth")
        torch.save({k: v for k, v in state.items() if k.startswith("features.")}, vgg)
        ours = load_lpips(vgg=vgg, lin=lin_path)
        got = np.asarray(ours(x0.transpose(0, 2, 3, 1), x1.transpose(0, 2, 3, 1)))
    print("full width, real lin weights: lpips", want, "ours", got, "max |diff|",
          np.abs(got - want).max())  # fmt: skip


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--full", action="store_true")
    args = p.parse_args()
    install_torchvision_standin()
    write_tiny()
    if args.full:
        check_full()
