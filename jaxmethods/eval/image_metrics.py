"""Pixel and feature metrics for generated images: SSIM, MS-SSIM, FID (LPIPS: `eval.lpips`).

Conventions are those of the libraries Pigeon's `Evaluation/eval_utils.py` calls:

* **SSIM** (Wang et al. 2004) as `pytorch_msssim.ssim`: an 11-tap Gaussian window (sigma 1.5)
  applied separably as a *valid* filter (no padding; a side shorter than the window is not
  filtered), K1 = 0.01, K2 = 0.03, C1 = (K1 L)^2, C2 = (K2 L)^2 with L = `data_range`,
  SSIM map = l * cs, averaged over pixels, then over channels -> one value per image.
  Pigeon passes uint8-valued float images with data_range = 255.
* **MS-SSIM** (Wang et al. 2003) as `pytorch_msssim.ms_ssim`: 5 scales with weights
  (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); between scales a 2x2 average pool with zero padding
  of (side % 2) on both sides, counted in the average; relu on the per-channel cs of scales 1-4
  and on the last scale's SSIM; product of the powers per channel, mean over channels. Both
  sides must exceed (11 - 1) * 2^4 = 160 pixels.
* **FID** (Heusel et al. 2017) as `pytorch_fid.calculate_frechet_distance`:
  ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)), sqrtm from `scipy.linalg.sqrtm`, retried with
  eps * I added to both covariances when the root is not finite, the imaginary part dropped
  when negligible. Features: Pigeon uses Inception-v3 pool3 (2048-d), which is not ported; the
  CLIP image features (`ClipScorer.image_features`) are the in-project substitute, so FID values
  are comparable only with FIDs computed on the same features.
* **LPIPS**: `jaxmethods.eval.lpips.LPIPSScorer` (VGG, lpips v0.1); weights via
  `jaxmethods.hf.lpips_loading.try_load_lpips`, which returns the "LPIPS skipped: <why>" line.

Images are channels-last [B, H, W, C] float.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
LPIPS_SKIP = (
    "LPIPS skipped: no VGG16 / lpips lin weights were given (see "
    "jaxmethods.hf.lpips_loading.load_lpips); SSIM, MS-SSIM, FID and the CLIP/DINO scores still run"
)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian [size] centred on size // 2."""
    coords = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(coords**2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def _filter_axis(x: jnp.ndarray, window: np.ndarray, axis: int) -> jnp.ndarray:
    """Valid correlation of x with `window` along `axis`: a `fori_loop` over the k taps adding
    weighted shifted slices (small to compile, and on CPU far faster than a depthwise
    convolution); a side shorter than the window is left unfiltered, as in pytorch_msssim."""
    k, n = len(window), x.shape[axis]
    if n < k:
        return x
    m = n - k + 1
    taps = jnp.asarray(window, x.dtype)

    def add_tap(i, acc):
        return acc + taps[i] * jax.lax.dynamic_slice_in_dim(x, i, m, axis=axis)

    shape = (*x.shape[:axis], m, *x.shape[axis + 1 :])
    return jax.lax.fori_loop(0, k, add_tap, jnp.zeros(shape, x.dtype))


def _blur(x: jnp.ndarray, window: np.ndarray) -> jnp.ndarray:
    """[B, H, W, C] -> [B, H', W', C] separable valid Gaussian filter."""
    return _filter_axis(_filter_axis(x, window, 1), window, 2)


def _ssim_parts(x, y, data_range, window, k1, k2) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(ssim per channel [B, C], cs per channel [B, C])."""
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu1, mu2 = _blur(x, window), _blur(y, window)
    s11 = _blur(x * x, window) - mu1 * mu1
    s22 = _blur(y * y, window) - mu2 * mu2
    s12 = _blur(x * y, window) - mu1 * mu2
    cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
    ssim_map = (2 * mu1 * mu2 + c1) / (mu1 * mu1 + mu2 * mu2 + c1) * cs_map
    return ssim_map.mean(axis=(1, 2)), cs_map.mean(axis=(1, 2))


def _check_pair(x, y, name: str) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"{name}: expected two [B, H, W, C] batches of one shape, got {x.shape} "
                         f"and {y.shape}")  # fmt: skip


@functools.partial(jax.jit, static_argnames=("data_range", "win_size", "sigma", "k1", "k2"))
def _ssim(x, y, *, data_range, win_size, sigma, k1, k2):
    window = gaussian_window(win_size, sigma)
    s, _ = _ssim_parts(x.astype(jnp.float32), y.astype(jnp.float32), data_range, window, k1, k2)
    return s.mean(axis=-1)


def ssim(
    x: jnp.ndarray,
    y: jnp.ndarray,
    *,
    data_range: float = 255.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> jnp.ndarray:
    """SSIM per image [B] of two [B, H, W, C] batches (as `pytorch_msssim.ssim(...,
    size_average=False)`)."""
    _check_pair(x, y, "ssim")
    if win_size % 2 != 1:
        raise ValueError(f"ssim: win_size must be odd, got {win_size}")
    kw = dict(data_range=float(data_range), win_size=win_size, sigma=float(sigma))
    return _ssim(x, y, **kw, k1=float(k1), k2=float(k2))


def _avg_pool2(x: jnp.ndarray) -> jnp.ndarray:
    """torch `avg_pool2d(kernel 2, padding = side % 2, count_include_pad)` on [B, H, W, C]."""
    _, h, w, _ = x.shape
    ph, pw = h % 2, w % 2
    x = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    oh, ow = (h + 2 * ph - 2) // 2 + 1, (w + 2 * pw - 2) // 2 + 1
    x = x[:, : 2 * oh, : 2 * ow]
    b, _, _, c = x.shape
    return x.reshape(b, oh, 2, ow, 2, c).sum(axis=(2, 4)) / 4.0


@functools.partial(
    jax.jit, static_argnames=("data_range", "win_size", "sigma", "weights", "k1", "k2")
)
def _ms_ssim(x, y, *, data_range, win_size, sigma, weights, k1, k2):
    window = gaussian_window(win_size, sigma)
    x, y = x.astype(jnp.float32), y.astype(jnp.float32)
    mcs = []
    for level in range(len(weights)):
        s, cs = _ssim_parts(x, y, data_range, window, k1, k2)
        if level < len(weights) - 1:
            mcs.append(jax.nn.relu(cs))
            x, y = _avg_pool2(x), _avg_pool2(y)
    stack = jnp.stack([*mcs, jax.nn.relu(s)])  # [levels, B, C]
    w = jnp.asarray(weights, jnp.float32)[:, None, None]
    return jnp.prod(stack**w, axis=0).mean(axis=-1)


def ms_ssim(
    x: jnp.ndarray,
    y: jnp.ndarray,
    *,
    data_range: float = 255.0,
    win_size: int = 11,
    sigma: float = 1.5,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
    k1: float = 0.01,
    k2: float = 0.03,
) -> jnp.ndarray:
    """MS-SSIM per image [B] (`pytorch_msssim.ms_ssim(size_average=False)`); both image sides
    must exceed (win_size - 1) * 2^(levels - 1)."""
    _check_pair(x, y, "ms_ssim")
    least = (win_size - 1) * 2 ** (len(weights) - 1)
    if min(x.shape[1:3]) <= least:
        raise ValueError(
            f"ms_ssim: images of {x.shape[1]}x{x.shape[2]} are too small for {len(weights)} "
            f"scales with an {win_size}-tap window (both sides must exceed {least})"
        )
    kw = dict(data_range=float(data_range), win_size=win_size, sigma=float(sigma))
    return _ms_ssim(
        x, y, **kw, weights=tuple(float(v) for v in weights), k1=float(k1), k2=float(k2)
    )


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], covariance [D, D]) in float64 of features [N, D] (N >= 2)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"feature_statistics: need features [N >= 2, D], got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrtm(S1 S2)) (pytorch_fid's algorithm)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise ValueError(
            f"frechet_distance: shapes mu {mu1.shape}/{mu2.shape}, sigma {s1.shape}/{s2.shape}"
        )
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(mu1)) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(np.diagonal(covmean).imag))
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"frechet_distance: sqrtm has an imaginary component {imag}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets [N_a, D], [N_b, D] (e.g. CLIP image features)."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def lpips_unavailable() -> str:
    """The line to log when LPIPS is skipped because no weights were given."""
    return LPIPS_SKIP
