"""LPIPS with the VGG16 trunk (Zhang et al. 2018, the `lpips` package v0.1, `net="vgg"`) in NNX.

Forward, as `lpips.LPIPS(net="vgg", version="0.1")` (images channels-last [B, H, W, 3] in
[-1, 1]; the package takes [B, 3, H, W]):
  1. scaling layer: x' = (x - shift) / scale, shift (-0.030, -0.088, -0.188), scale
     (0.458, 0.448, 0.450) per RGB channel;
  2. VGG16 `features` (torchvision layout): blocks of 3x3 convs (padding 1) + ReLU with
     (2, 2, 3, 3, 3) convs and widths (64, 128, 256, 512, 512), a 2x2 / stride-2 max pool
     (floor) before blocks 2..5; the taps are the block outputs relu1_2, relu2_2, relu3_3,
     relu4_3, relu5_3;
  3. per tap k: unit-normalise each pixel's channel vector, f / (||f||_2 + 1e-10), for both
     images, d_k = (f0 - f1)^2 [B, h_k, w_k, C_k];
  4. the learned "lin" layer (a bias-free 1x1 conv to one channel, weights w_k [C_k]),
     sum_c w_kc d_kc, averaged over the h_k x w_k positions;
  5. distance = sum over the 5 taps -> [B].

`LPIPSConfig.widths` may be reduced (the committed test fixture uses (4, 8, 8, 16, 16)); the layer
structure stays VGG16's. Parameters: `trunk.blocks[b][i].kernel` [3, 3, C_in, C_out] (HWIO),
`.bias` [C_out], `lins[k]` [C_k]; `jaxmethods.hf.lpips_loading` fills them from torchvision's
`features.<n>.{weight,bias}` and lpips' `lin<k>.model.1.weight`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

VGG16_WIDTHS = (64, 128, 256, 512, 512)
VGG16_CONVS = (2, 2, 3, 3, 3)
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


@dataclasses.dataclass(frozen=True)
class LPIPSConfig:
    """VGG16-LPIPS sizes and constants.

    Attributes:
      widths: output channels of the 5 VGG blocks (VGG16: 64, 128, 256, 512, 512).
      convs_per_block: 3x3 convs per block (VGG16: 2, 2, 3, 3, 3).
      in_channels: image channels (3).
      shift, scale: the scaling layer's per-channel constants (lpips v0.1).
      eps: added to the channel norm in the unit normalisation (lpips: 1e-10).
      dtype, param_dtype: compute / storage dtypes (float32 for a metric).
      precision: `jax.lax.Precision` name for the convs ("highest" avoids TF32 / bf16 passes on
        accelerators; on CPU float32 is exact either way).
    """

    widths: tuple[int, ...] = VGG16_WIDTHS
    convs_per_block: tuple[int, ...] = VGG16_CONVS
    in_channels: int = 3
    shift: tuple[float, ...] = LPIPS_SHIFT
    scale: tuple[float, ...] = LPIPS_SCALE
    eps: float = 1e-10
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    precision: str | None = "highest"

    def __post_init__(self):
        if len(self.widths) != len(self.convs_per_block) or not self.widths:
            raise ValueError(
                f"LPIPSConfig: widths {self.widths} and convs_per_block {self.convs_per_block} "
                "must be non-empty and of one length"
            )
        if len(self.shift) != self.in_channels or len(self.scale) != self.in_channels:
            raise ValueError(
                f"LPIPSConfig: shift/scale need {self.in_channels} values, got {self.shift} / "
                f"{self.scale}"
            )

    def torchvision_indices(self) -> list[list[int]]:
        """Per block, the `features.<n>` indices of its convs in torchvision's VGG `features`
        (each conv is followed by a ReLU, each block but the last by a max pool):
        VGG16 -> [[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]]."""
        out, n = [], 0
        for convs in self.convs_per_block:
            out.append([n + 2 * i for i in range(convs)])
            n += 2 * convs + 1
        return out


def _max_pool2(x: jnp.ndarray) -> jnp.ndarray:
    """torch `MaxPool2d(2, 2)` (floor mode) on [B, H, W, C]."""
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


class Conv3x3(nnx.Module):
    """3x3 conv, stride 1, zero padding 1, with bias: [B, H, W, C_in] -> [B, H, W, C_out].
    Initialised on the host (He-normal kernel from `rng`, zeros when `rng` is None)."""

    def __init__(self, c_in: int, c_out: int, config: LPIPSConfig, rng: np.random.Generator | None):
        self.config = config
        shape = (3, 3, c_in, c_out)
        kernel = np.zeros(shape, np.float32)
        if rng is not None:
            kernel = (2.0 / (9 * c_in)) ** 0.5 * rng.standard_normal(shape, np.float32)
        self.kernel = nnx.Param(jnp.asarray(kernel, config.param_dtype))
        self.bias = nnx.Param(jnp.zeros((c_out,), config.param_dtype))

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        dt = self.config.dtype
        y = jax.lax.conv_general_dilated(
            x.astype(dt),
            self.kernel[...].astype(dt),
            window_strides=(1, 1),
            padding=((1, 1), (1, 1)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=self.config.precision,
        )
        return y + self.bias[...].astype(dt)


class VGGTrunk(nnx.Module):
    """VGG `features` up to the last block's ReLU: [B, H, W, 3] -> the 5 taps
    [B, H / 2^k, W / 2^k, widths[k]] (floor division at each pool)."""

    def __init__(self, config: LPIPSConfig, rng: np.random.Generator | None):
        blocks, c_in = [], config.in_channels
        for width, convs in zip(config.widths, config.convs_per_block):
            layers = []
            for _ in range(convs):
                layers.append(Conv3x3(c_in, width, config, rng))
                c_in = width
            blocks.append(nnx.List(layers))
        self.blocks = nnx.List(blocks)

    def __call__(self, x: jnp.ndarray) -> list[jnp.ndarray]:
        taps = []
        for b, block in enumerate(self.blocks):
            if b > 0:
                x = _max_pool2(x)
            for conv in block:
                x = jax.nn.relu(conv(x))
            taps.append(x)
        return taps


def unit_normalize(f: jnp.ndarray, eps: float = 1e-10) -> jnp.ndarray:
    """lpips' `normalize_tensor` over the channel (last) axis: f / (||f||_2 + eps)."""
    return f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + eps)


class LPIPS(nnx.Module):
    """VGG-LPIPS distance. Call: (x0, x1) images [B, H, W, 3] in [-1, 1] -> [B] float32.

    `per_layer(x0, x1)` returns the 5 spatially averaged terms [B, 5] (lpips' `retPerLayer`);
    their sum is the distance. Identical images give 0 (up to float rounding, ~1e-16).
    """

    def __init__(self, config: LPIPSConfig | None = None, *, seed: int | None = 0):
        """Random weights from `seed` (NumPy, no device compile); zeros with seed=None (the
        loader then fills them)."""
        config = LPIPSConfig() if config is None else config
        rng = None if seed is None else np.random.default_rng(seed)
        self.config = config
        self.trunk = VGGTrunk(config, rng)
        # lpips' pretrained lin weights are non-negative; random ones are drawn as such too
        lins = [
            np.zeros(w, np.float32) if rng is None else rng.uniform(0, 1 / w, w).astype(np.float32)
            for w in config.widths
        ]
        self.lins = nnx.List([nnx.Param(jnp.asarray(v, config.param_dtype)) for v in lins])

    def scale_input(self, x: jnp.ndarray) -> jnp.ndarray:
        """The scaling layer: (x - shift) / scale per channel."""
        shift = jnp.asarray(self.config.shift, jnp.float32)
        scale = jnp.asarray(self.config.scale, jnp.float32)
        return (x.astype(jnp.float32) - shift) / scale

    def per_layer(self, x0: jnp.ndarray, x1: jnp.ndarray) -> jnp.ndarray:
        """[B, L] per-tap terms: mean over positions of sum_c w_kc (n(f0) - n(f1))_c^2."""
        c = self.config.in_channels
        if x0.shape != x1.shape or x0.ndim != 4 or x0.shape[-1] != c:
            raise ValueError(
                f"LPIPS: expected two [B, H, W, {c}] batches of one shape, got {x0.shape} and "
                f"{x1.shape}"
            )
        least = 2 ** (len(self.config.widths) - 1)
        if min(x0.shape[1:3]) < least:
            raise ValueError(
                f"LPIPS: images of {x0.shape[1]}x{x0.shape[2]} are too small: both sides must be "
                f">= {least} (one pixel left after the {len(self.config.widths) - 1} max pools)"
            )
        b = x0.shape[0]
        # one trunk pass over both images
        taps = self.trunk(self.scale_input(jnp.concatenate([x0, x1], axis=0)))
        terms = []
        for k, f in enumerate(taps):
            f = unit_normalize(f.astype(jnp.float32), self.config.eps)
            d = (f[:b] - f[b:]) ** 2
            lin = self.lins[k][...].astype(jnp.float32)
            terms.append(jnp.mean(jnp.sum(d * lin, axis=-1), axis=(1, 2)))
        return jnp.stack(terms, axis=-1)

    def __call__(self, x0: jnp.ndarray, x1: jnp.ndarray) -> jnp.ndarray:
        return self.per_layer(x0, x1).sum(axis=-1)
