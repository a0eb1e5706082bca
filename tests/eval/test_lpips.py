"""LPIPS (VGG) against the `lpips` package: the committed fixture `tests/data/lpips/` holds a
width-reduced VGG16 (random weights, torchvision / lpips key names) and the package's own
distances on it (`make_fixture.py`); the live test compares the full network when torch, lpips,
torchvision and the VGG16 ImageNet weights are all present (it skips in CI)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from jaxmethods.eval.lpips import LPIPSScorer, to_lpips_range
from jaxmethods.hf.lpips_loading import (
    LPIPSWeightsMissing,
    default_lin_path,
    default_vgg_path,
    load_lpips,
    lpips_from_state,
    read_state_dict,
    try_load_lpips,
)

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "lpips")
WEIGHTS = os.path.join(DATA, "tiny_lpips.safetensors")


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(os.path.join(DATA, "expected.npz")) as f:
        return {k: f[k] for k in f.files}


def test_matches_the_lpips_package_on_the_tiny_vgg(expected):
    """30x26 images: every max pool floors (down to 1x1 at relu5_3). One test, so that the one
    compiled shape is not compiled again on another xdist worker."""
    scorer = LPIPSScorer(load_lpips(WEIGHTS))
    assert scorer.model.config.widths == (4, 8, 8, 16, 16)
    x0, x1 = _nhwc(expected["x0"]), _nhwc(expected["x1"])
    layers = np.asarray(scorer.per_layer(x0, x1))
    np.testing.assert_allclose(layers, expected["layers"], rtol=1e-5, atol=1e-6)
    dist = np.asarray(scorer.distance(x0, x1))
    np.testing.assert_allclose(dist, expected["dist"], rtol=1e-5, atol=1e-6)
    # identical images -> 0 (up to rounding); symmetric in its arguments
    np.testing.assert_allclose(np.asarray(scorer.distance(x0, x0)), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(scorer.distance(x1, x0)), expected["dist"], rtol=1e-5)
    # uint8 inputs map as Pigeon's im2tensor_lpips (the fixture's shape: no new compile)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 30, 26, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (3, 30, 26, 3), dtype=np.uint8)
    # im2tensor_lpips(im, cent=1, factor=255/2) = im / 127.5 - 1
    np.testing.assert_allclose(np.asarray(to_lpips_range(a)), a / (255.0 / 2.0) - 1.0, atol=1e-6)
    got = np.asarray(scorer.distance_uint8(a, b))
    want = np.asarray(scorer.distance(a / 127.5 - 1.0, b / 127.5 - 1.0))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError, match="26, 3"):
        scorer.model(to_lpips_range(a), to_lpips_range(b[:, :16]))
    with pytest.raises(ValueError, match="30x8 are too small"):
        scorer.model(to_lpips_range(a[:, :, :8]), to_lpips_range(b[:, :, :8]))


def test_missing_and_bad_weights_are_clear_errors(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(LPIPSWeightsMissing, match=r"nope\.safetensors"):
        load_lpips(missing)
    model, line = try_load_lpips(vgg=tmp_path / "vgg16.pth", lin=tmp_path / "vgg.pth")
    assert model is None and line.startswith("LPIPS skipped: VGG16 weights not found")
    assert default_vgg_path().endswith(os.path.join("hub", "checkpoints", "vgg16-397923af.pth"))
    state = read_state_dict(WEIGHTS, "LPIPS")
    with pytest.raises(ValueError, match=r"'features\.7\.weight' has shape"):
        bad = dict(state)
        bad["features.7.weight"] = bad["features.7.weight"][:, :2]
        lpips_from_state(bad)
    with pytest.raises(ValueError, match="unexpected tensors"):
        lpips_from_state({**state, "extra.weight": np.zeros(3, np.float32)})
    with pytest.raises(LPIPSWeightsMissing, match="lin4"):
        lpips_from_state({k: v for k, v in state.items() if not k.startswith("lin4")})


def test_pth_files_and_the_converter(tmp_path, expected):
    """The .pth path (torch.load(weights_only=True)) and `convert_lpips_weights`."""
    torch = pytest.importorskip("torch")
    from jaxmethods.hf.lpips_loading import convert_lpips_weights

    state = read_state_dict(WEIGHTS, "LPIPS")
    trunk = {k: torch.from_numpy(v) for k, v in state.items() if k.startswith("features.")}
    trunk["classifier.0.weight"] = torch.zeros(2, 2)  # ignored, as in torchvision's file
    lin = {k: torch.from_numpy(v) for k, v in state.items() if k.startswith("lin")}
    torch.save(trunk, tmp_path / "vgg.pth")
    torch.save(lin, tmp_path / "lin.pth")
    x0, x1 = _nhwc(expected["x0"]), _nhwc(expected["x1"])
    for model in (
        load_lpips(vgg=tmp_path / "vgg.pth", lin=tmp_path / "lin.pth"),
        load_lpips(
            convert_lpips_weights(
                tmp_path / "vgg.pth", tmp_path / "lin.pth", tmp_path / "c.safetensors"
            )
        ),
    ):
        np.testing.assert_allclose(np.asarray(model(x0, x1)), expected["dist"], rtol=1e-5)


@pytest.mark.hf_parity
def test_live_full_vgg_lpips_against_the_package():
    """Full VGG16-LPIPS with the ImageNet trunk; needs torch, lpips, torchvision and
    vgg16-397923af.pth in the torch hub cache."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    lpips = pytest.importorskip("lpips")
    if not os.path.isfile(default_vgg_path()) or default_lin_path() is None:
        pytest.skip(f"no VGG16 weights at {default_vgg_path()} or no lpips lin weights")
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)
    x1 = np.clip(x0 + 0.3 * rng.standard_normal(x0.shape), -1, 1).astype(np.float32)
    with torch.no_grad():
        want = lpips.LPIPS(net="vgg", verbose=False)(torch.from_numpy(x0), torch.from_numpy(x1))
    got = np.asarray(load_lpips()(_nhwc(x0), _nhwc(x1)))
    np.testing.assert_allclose(got, want.numpy().reshape(-1), rtol=1e-4, atol=1e-5)
