"""A small VQ image tokenizer (VQ-VAE, van den Oord et al. 2017): images <-> visual-token ids.

  encoder: conv3x3 -> [conv4x4 stride 2, ReLU] x num_downsamples -> conv1x1 -> z [B, h, w, D]
  quantise: id = argmin_k ||z - e_k||^2 over the codebook E [K, D]; z_q = E[id]
  decoder: conv1x1 -> [ReLU, transposed conv4x4 stride 2] x num_downsamples -> ReLU -> conv3x3

Training signal (`vq_losses`, pure): MSE(x, decode(z + sg(z_q - z))) (straight-through),
plus beta * ||z - sg(z_q)||^2 (commitment) and, without EMA, ||sg(z) - z_q||^2 (codebook). With
`ema=True` the codebook is not a gradient parameter: `ema_codebook_update` moves it to the running
mean of the encoder outputs assigned to each code (decay gamma, Laplace-smoothed counts; the
paper's appendix A.1). The codebook starts from encoder outputs of training images (random
picks, or k-means centres: `kmeans`); dead codes are restarted on encoder outputs during
training (`restart_dead_codes`). Images are channels-last [B, H, W, C] in [-1, 1];
`encode(images) -> ids [B, h, w]`, `decode(ids) -> images` (h = H / 2^num_downsamples).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxmethods.hf.layout import path_string


class CodebookEMA(nnx.Variable):
    """EMA codebook state (not trained by gradients): the codebook and its running statistics."""


@dataclasses.dataclass(frozen=True)
class VQConfig:
    """image_size / channels: input side and channels; hidden: conv width; num_downsamples:
    stride-2 stages (token grid side = image_size / 2^num_downsamples); codebook_size K and
    code_dim D; beta: commitment weight; ema / ema_decay / ema_eps: EMA codebook updates;
    restart_dead_codes: in training, a code whose running share of assignments (decay
    usage_decay) falls below dead_threshold / K is moved onto a random encoder output of the
    batch (the codebook reset of Dhariwal et al. 2020, against codebook collapse)."""

    image_size: int = 32
    channels: int = 3
    hidden: int = 64
    num_downsamples: int = 2
    codebook_size: int = 64
    code_dim: int = 32
    beta: float = 0.25
    ema: bool = False
    ema_decay: float = 0.99
    ema_eps: float = 1e-5
    restart_dead_codes: bool = True
    usage_decay: float = 0.9
    dead_threshold: float = 0.03

    def __post_init__(self):
        for name in ("image_size", "channels", "hidden", "codebook_size", "code_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"VQConfig.{name}: must be positive, got {getattr(self, name)}")
        if self.image_size % (2**self.num_downsamples):
            raise ValueError(
                f"VQConfig.image_size: {self.image_size} is not divisible by "
                f"2^num_downsamples = {2**self.num_downsamples}"
            )
        for name in ("ema_decay", "usage_decay"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"VQConfig.{name}: must be in (0, 1), got {getattr(self, name)}")

    @property
    def grid(self) -> int:
        """Tokens per side."""
        return self.image_size // 2**self.num_downsamples


class VQTokenizer(nnx.Module):
    """Conv encoder, codebook, conv decoder (module docstring)."""

    def __init__(self, config: VQConfig, *, rngs: nnx.Rngs | None = None):
        rngs = nnx.Rngs(0) if rngs is None else rngs
        self.config = c = config
        self.enc_in = nnx.Conv(c.channels, c.hidden, (3, 3), rngs=rngs)
        self.enc_down = nnx.List(
            [
                nnx.Conv(c.hidden, c.hidden, (4, 4), (2, 2), rngs=rngs)
                for _ in range(c.num_downsamples)
            ]
        )
        self.enc_out = nnx.Conv(c.hidden, c.code_dim, (1, 1), rngs=rngs)
        self.dec_in = nnx.Conv(c.code_dim, c.hidden, (1, 1), rngs=rngs)
        self.dec_up = nnx.List(
            [
                nnx.ConvTranspose(c.hidden, c.hidden, (4, 4), (2, 2), rngs=rngs)
                for _ in range(c.num_downsamples)
            ]
        )
        self.dec_out = nnx.Conv(c.hidden, c.channels, (3, 3), rngs=rngs)
        k = c.codebook_size
        init = jax.random.uniform(rngs.params(), (k, c.code_dim), minval=-1.0 / k, maxval=1.0 / k)
        if c.ema:
            self.codebook = CodebookEMA(init)
            self.ema_count = CodebookEMA(jnp.zeros((k,)))
            self.ema_sum = CodebookEMA(init)
        else:
            self.codebook = nnx.Param(init)
        self.code_usage = CodebookEMA(jnp.full((k,), 1.0 / k))

    def check_images(self, images: jnp.ndarray) -> None:
        c = self.config
        want = (c.image_size, c.image_size, c.channels)
        if images.ndim != 4 or tuple(images.shape[1:]) != want:
            raise ValueError(
                f"VQTokenizer: images must be [B, {c.image_size}, {c.image_size}, {c.channels}] "
                f"(channels-last, in [-1, 1]), got {tuple(images.shape)}"
            )

    def encode_latents(self, images: jnp.ndarray) -> jnp.ndarray:
        """images [B, H, W, C] -> z [B, h, w, D]."""
        self.check_images(images)
        h = self.enc_in(images)
        for conv in self.enc_down:
            h = jax.nn.relu(conv(h))
        return self.enc_out(h)

    def quantize(self, z: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """z [..., D] -> (z_q [..., D], ids [...] int32), nearest code in squared distance."""
        e = self.codebook[...]
        d = (
            jnp.sum(z * z, -1, keepdims=True)
            - 2 * jnp.einsum("...d,kd->...k", z, e)
            + jnp.sum(e * e, -1)
        )
        ids = jnp.argmin(d, axis=-1).astype(jnp.int32)
        return jnp.take(e, ids, axis=0), ids

    def decode_latents(self, zq: jnp.ndarray) -> jnp.ndarray:
        h = self.dec_in(zq)
        for conv in self.dec_up:
            h = conv(jax.nn.relu(h))
        return self.dec_out(jax.nn.relu(h))

    def encode(self, images: jnp.ndarray) -> jnp.ndarray:
        """images [B, H, W, C] in [-1, 1] -> visual-token ids [B, h, w] int32."""
        return self.quantize(self.encode_latents(images))[1]

    def decode(self, ids: jnp.ndarray) -> jnp.ndarray:
        """ids [B, h, w] -> images [B, H, W, C]. Concrete ids are checked against the codebook
        (an error names the first bad sample)."""
        if not isinstance(ids, jax.core.Tracer):
            check_token_ids(np.asarray(ids), self.config.codebook_size)
        return self.decode_latents(jnp.take(self.codebook[...], ids, axis=0))

    def __call__(self, images: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """Forward with the straight-through estimator: {recon, z, zq, ids}."""
        z = self.encode_latents(images)
        zq, ids = self.quantize(z)
        recon = self.decode_latents(z + jax.lax.stop_gradient(zq - z))
        return dict(recon=recon, z=z, zq=zq, ids=ids)


def build_vq_tokenizer(config: VQConfig, seed: int = 0) -> VQTokenizer:
    """A `VQTokenizer(config)` initialised on the host with NumPy (no JAX compilation, which
    dominates an eager or jitted init of a small conv net on CPU): conv kernels
    N(0, 1 / fan_in) (LeCun normal, untruncated), biases 0, codebook U(-1/K, 1/K)."""
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: VQTokenizer(config)))
    rng = np.random.default_rng(seed)
    k = config.codebook_size
    book = rng.uniform(-1.0 / k, 1.0 / k, (k, config.code_dim)).astype(np.float32)

    def init(path, leaf):
        name = path_string(path).rsplit("/", 1)[-1]
        if name in ("codebook", "ema_sum"):
            value = book
        elif name == "code_usage":
            value = np.full(leaf.shape, 1.0 / k)
        elif name == "kernel":
            value = rng.normal(0.0, np.prod(leaf.shape[:-1]) ** -0.5, leaf.shape)
        else:  # biases, ema_count
            value = np.zeros(leaf.shape)
        return jnp.asarray(value, leaf.dtype)

    return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(init, abstract))


def check_token_ids(ids: np.ndarray, codebook_size: int) -> None:
    """Raises ValueError naming the first sample with an id outside [0, codebook_size)."""
    bad = (ids < 0) | (ids >= codebook_size)
    if bad.any():
        flat = bad.reshape(bad.shape[0], -1) if bad.ndim > 1 else bad[None]
        sample = int(np.argmax(flat.any(axis=1)))
        values = np.asarray(ids).reshape(flat.shape)[sample][flat[sample]]
        raise ValueError(
            f"visual-token ids of sample {sample} are outside the codebook [0, {codebook_size}): "
            f"{values[:5].tolist()}"
        )


def vq_losses(
    images: jnp.ndarray, out: dict[str, jnp.ndarray], *, beta: float, ema: bool
) -> dict[str, jnp.ndarray]:
    """{recon, commitment, codebook, total} scalars: MSE(images, recon), mean ||z - sg(zq)||^2,
    mean ||sg(z) - zq||^2 (0 with EMA), total = recon + beta * commitment + codebook."""
    z, zq = out["z"], out["zq"]
    recon = jnp.mean((out["recon"] - images) ** 2)
    commitment = jnp.mean(jnp.sum((z - jax.lax.stop_gradient(zq)) ** 2, -1))
    codebook = 0.0 if ema else jnp.mean(jnp.sum((jax.lax.stop_gradient(z) - zq) ** 2, -1))
    codebook = jnp.asarray(codebook, jnp.float32)
    return dict(
        recon=recon, commitment=commitment, codebook=codebook,
        total=recon + beta * commitment + codebook,
    )  # fmt: skip


@functools.partial(jax.jit, static_argnames=("decay", "eps"))
def ema_codebook_update(
    count: jnp.ndarray,
    sums: jnp.ndarray,
    z: jnp.ndarray,
    ids: jnp.ndarray,
    *,
    decay: float,
    eps: float,
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """One EMA step: count [K], sums [K, D], z [N, D], ids [N] -> (count, sums, codebook).

    N_k <- g N_k + (1 - g) n_k;  m_k <- g m_k + (1 - g) sum_{i: id_i = k} z_i;
    e_k = m_k / N~_k with Laplace smoothing N~_k = (N_k + eps) / (sum N + K eps) * sum N."""
    k = count.shape[0]
    onehot = jax.nn.one_hot(ids, k, dtype=z.dtype)
    count = decay * count + (1 - decay) * onehot.sum(0)
    sums = decay * sums + (1 - decay) * onehot.T @ z
    total = count.sum()
    smoothed = (count + eps) / (total + k * eps) * total
    return count, sums, sums / smoothed[:, None]


@functools.partial(jax.jit, static_argnames=("decay", "threshold"))
def restart_dead_codes(
    codebook: jnp.ndarray,
    usage: jnp.ndarray,
    z: jnp.ndarray,
    ids: jnp.ndarray,
    key: jax.Array,
    *,
    decay: float,
    threshold: float,
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """codebook [K, D], usage [K] (running share of assignments), z [N, D], ids [N] ->
    (codebook, usage, dead [K] bool): codes with usage < threshold / K take a random row of z
    and restart at the uniform share 1 / K."""
    k = codebook.shape[0]
    share = jnp.bincount(ids, length=k) / ids.shape[0]
    usage = decay * usage + (1 - decay) * share
    dead = usage < threshold / k
    picks = z[jax.random.randint(key, (k,), 0, z.shape[0])]
    codebook = jnp.where(dead[:, None], picks.astype(codebook.dtype), codebook)
    return codebook, jnp.where(dead, 1.0 / k, usage), dead


def codebook_usage(ids: np.ndarray, codebook_size: int) -> dict[str, float]:
    """{used_fraction, perplexity} of the id histogram (perplexity = exp(entropy), at most K)."""
    hist = np.bincount(np.asarray(ids).ravel(), minlength=codebook_size).astype(np.float64)
    p = hist / max(hist.sum(), 1.0)
    nz = p[p > 0]
    return dict(
        used_fraction=float((hist > 0).mean()), perplexity=float(np.exp(-(nz * np.log(nz)).sum()))
    )


@dataclasses.dataclass
class VQTrainResult:
    """history: per logged step {step, recon, commitment, codebook, total, used_fraction,
    perplexity}."""

    history: list[dict[str, float]]


@functools.partial(jax.jit, static_argnums=0)
def encoder_latents(
    graphdef: nnx.GraphDef, params: nnx.State, rest: nnx.State, images: jnp.ndarray
) -> jnp.ndarray:
    """The encoder outputs z [B, h, w, D] of images [B, H, W, C] for a split model
    (`nnx.split(model, nnx.Param, ...)`), one compiled program per graph and shape."""
    return nnx.merge(graphdef, params, rest).encode_latents(images)


def kmeans(
    points: np.ndarray, k: int, *, iters: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """k-means of points [N, D] with `scipy.cluster.vq.kmeans2`: k-means++ seeding (Arthur and
    Vassilvitskii 2007), then `iters` Lloyd iterations (float64 inside). Returns (centres
    [k, D] float32, ids [N]: each point's nearest centre). With N < k the points are repeated
    (some centres coincide)."""
    from scipy.cluster.vq import kmeans2, vq

    x = np.asarray(points, np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"kmeans: points must be [N, D] with N > 0, got {x.shape}")
    if len(x) < k:
        x = x[np.arange(k) % len(x)]
    with warnings.catch_warnings():  # an emptied cluster keeps its centre; no warning needed
        warnings.simplefilter("ignore", UserWarning)
        centres, _ = kmeans2(x, k, iter=iters, minit="++", seed=rng)
    return centres.astype(np.float32), vq(x, centres, check_finite=False)[0]


def train_vq(
    model: VQTokenizer,
    images: np.ndarray,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    log_every: int = 50,
    data_init: bool = True,
    kmeans_iters: int = 0,
    fit_images: int = 256,
) -> VQTrainResult:
    """Trains `model` in place on `images` [N, H, W, C] in [-1, 1] with Adam (one jitted step).

    `data_init` starts the codebook from the encoder outputs of `fit_images` random images
    (fewer dead codes than the uniform init): randomly chosen ones when `kmeans_iters` is 0,
    else the centres of a k-means (`kmeans`: k-means++ seeding, then `kmeans_iters` Lloyd
    iterations: the codes spread over the clusters of the latents, where random picks follow
    their density and leave rare clusters to share codes). Returns the logged losses and
    codebook usage.
    """
    cfg = model.config
    model.check_images(jnp.asarray(images[:1]))
    if kmeans_iters < 0 or fit_images < 1:
        raise ValueError(
            f"train_vq: kmeans_iters must be >= 0 and fit_images >= 1, got {kmeans_iters} and "
            f"{fit_images}"
        )
    rng = np.random.default_rng(seed)
    if data_init:
        n = min(len(images), fit_images)
        batch = jnp.asarray(images[rng.choice(len(images), n, replace=False)])
        z = encoder_latents(*nnx.split(model, nnx.Param, ...), batch)
        z = np.asarray(z).reshape(-1, cfg.code_dim)
        if kmeans_iters > 0:
            book = kmeans(z, cfg.codebook_size, iters=kmeans_iters, rng=rng)[0]
        else:
            book = z[rng.choice(len(z), cfg.codebook_size, replace=len(z) < cfg.codebook_size)]
        model.codebook[...] = jnp.asarray(book)
        if cfg.ema:
            model.ema_sum[...] = jnp.asarray(book)
            model.ema_count[...] = jnp.ones((cfg.codebook_size,))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt = optax.adam(lr)
    opt_state = opt.init(params)

    def step(params, rest, opt_state, x, key):
        def loss_fn(p):
            out = nnx.merge(graphdef, p, rest)(x)
            losses = vq_losses(x, out, beta=cfg.beta, ema=cfg.ema)
            return losses["total"], (losses, out)

        (_, (losses, out)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        m = nnx.merge(graphdef, params, rest)
        z = jax.lax.stop_gradient(out["z"]).reshape(-1, cfg.code_dim)
        ids = out["ids"].reshape(-1)
        if cfg.ema:
            count, sums, book = ema_codebook_update(
                m.ema_count[...], m.ema_sum[...], z, ids, decay=cfg.ema_decay, eps=cfg.ema_eps
            )
            m.ema_count[...], m.ema_sum[...], m.codebook[...] = count, sums, book
        if cfg.restart_dead_codes:
            book, usage, dead = restart_dead_codes(
                m.codebook[...], m.code_usage[...], z, ids, key,
                decay=cfg.usage_decay, threshold=cfg.dead_threshold,
            )  # fmt: skip
            m.codebook[...], m.code_usage[...] = book, usage
            if cfg.ema:  # the restarted codes start their statistics afresh
                m.ema_count[...] = jnp.where(dead, 1.0, m.ema_count[...])
                m.ema_sum[...] = jnp.where(dead[:, None], book, m.ema_sum[...])
        _, params, rest = nnx.split(m, nnx.Param, ...)
        return params, rest, opt_state, losses, out["ids"]

    step = jax.jit(step, donate_argnums=(0, 1, 2))
    base_key = jax.random.key(seed)
    history = []
    for i in range(steps):
        idx = rng.choice(len(images), batch_size, replace=len(images) < batch_size)
        key = jax.random.fold_in(base_key, i)
        params, rest, opt_state, losses, ids = step(
            params, rest, opt_state, jnp.asarray(images[idx]), key
        )
        if i % log_every == 0 or i == steps - 1:
            row: dict[str, Any] = {"step": i, **{k: float(v) for k, v in losses.items()}}
            row.update(codebook_usage(np.asarray(ids), cfg.codebook_size))
            history.append(row)
    nnx.update(model, params, rest)
    return VQTrainResult(history=history)
