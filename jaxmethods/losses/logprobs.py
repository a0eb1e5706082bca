"""Token and sequence log-probabilities from logits or from hidden states. Pure jax.

Convention: `labels[b, t]` is the token predicted by position `t` (callers shift once, outside).

The chunked variants take the final hidden states and the LM-head kernel instead of logits, so
the fp32 `[B, T, V]` logits never exist at once: positions are processed `chunk_size` at a time
under `lax.scan`, and the chunk body is rematerialised in the backward pass (`jax.checkpoint`),
so the peak extra memory is one `[B, chunk_size, V]` fp32 block in both passes.

Under a mesh (`jax.set_mesh`, or `jax.sharding.use_abstract_mesh` while the step is traced),
the chunked path pins the batch axis of the hidden states and of every logits chunk to the
mesh's data/fsdp axes (`batch_sharding_constraint`). Under FSDP the hidden states otherwise
arrive split on H with the batch replicated (the embedding gather from a table split on H),
and every device computes the layers and the logits of the whole global batch; the pin
propagates back through the network. Without a mesh nothing is added (the same program).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from jaxmethods.losses.common import masked_sum

BATCH_MESH_AXES = ("data", "fsdp")


def batch_sharding_constraint(x: jnp.ndarray, batch_dim: int = 0) -> jnp.ndarray:
    """`x` with dimension `batch_dim` constrained to the current mesh's data/fsdp axes.

    The other dimensions stay unconstrained (XLA may still split them, e.g. the vocabulary over
    `tensor`). A no-op (the same program) without a current mesh (`jax.sharding.
    get_abstract_mesh()` empty), when the mesh's data/fsdp axes have size 1 or are not Auto, or
    when they do not divide `x.shape[batch_dim]`.
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    axes = tuple(a for a in BATCH_MESH_AXES if a in mesh.axis_names and mesh.shape[a] > 1)
    types = dict(zip(mesh.axis_names, mesh.axis_types))
    if not axes or any(types[a] != AxisType.Auto for a in axes):
        return x
    if x.shape[batch_dim] % math.prod(mesh.shape[a] for a in axes):
        return x
    spec = [P.UNCONSTRAINED] * x.ndim
    spec[batch_dim] = axes
    return jax.lax.with_sharding_constraint(x, P(*spec))


def token_logprobs(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """log p(labels | logits) per position, computed in float32.

    Args:
      logits: [..., V] any float dtype.
      labels: [...] int token ids.
    Returns:
      [...] float32, log softmax(logits)[labels].
    """
    logits = logits.astype(jnp.float32)
    lse = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return picked - lse


def sequence_logprobs(
    logits: jnp.ndarray, labels: jnp.ndarray, mask: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Sum of token log-probs over valid positions: [B, T, V], [B, T], [B, T] -> [B]."""
    return masked_sum(token_logprobs(logits, labels), mask, axis=-1)


def _chunk_logprobs(
    hidden: jnp.ndarray,
    kernel: jnp.ndarray,
    labels: jnp.ndarray,
    logit_soft_cap: float | None,
) -> jnp.ndarray:
    """log softmax(hidden @ kernel)[labels] for one chunk: [B, C, H], [H, V], [B, C] -> [B, C]."""
    hidden = batch_sharding_constraint(hidden)
    logits = jnp.einsum("bch,hv->bcv", hidden, kernel, preferred_element_type=jnp.float32)
    logits = batch_sharding_constraint(logits)
    if logit_soft_cap is not None:
        # Gemma-2 style final-logit soft capping: cap * tanh(logits / cap).
        logits = logit_soft_cap * jnp.tanh(logits / logit_soft_cap)
    lse = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return picked - lse


def chunked_token_logprobs(
    hidden: jnp.ndarray,
    lm_head_kernel: jnp.ndarray,
    labels: jnp.ndarray,
    *,
    chunk_size: int,
    logit_soft_cap: float | None = None,
) -> jnp.ndarray:
    """log p(labels | hidden) per position without materialising fp32 [B, T, V] logits.

    log p(y_t) = z_t[y_t] - logsumexp_v z_t[v],  z_t = cap * tanh((h_t W) / cap) (cap optional).

    The sequence axis is cut into `ceil(T / chunk_size)` chunks (the last one zero-padded) and a
    `lax.scan` computes each chunk's logits in float32 (`preferred_element_type`, so bf16 hidden
    states and kernels are accumulated in fp32), their logsumexp and the picked logit. The batch
    axis is kept whole inside every chunk, so a batch sharded over data/fsdp stays sharded.
    Under `jax.grad` the chunk body is recomputed (`jax.checkpoint`) and the kernel gradient is
    accumulated across chunks by the scan, so memory stays at one chunk of logits.

    Args:
      hidden: [B, T, H] final hidden states (after the final norm), any float dtype.
      lm_head_kernel: [H, V] output projection (the transposed embedding when tied).
      labels: [B, T] int token ids; positions to ignore may hold any valid id (mask them later).
      chunk_size: positions per chunk; each chunk holds a [B, chunk_size, V] fp32 block.
      logit_soft_cap: optional final-logit soft cap (Gemma 2); None disables it.
    Returns:
      [B, T] float32 token log-probabilities, equal to
      `token_logprobs(hidden @ lm_head_kernel, labels)` up to float rounding.
    """
    if hidden.ndim != 3 or labels.shape != hidden.shape[:2]:
        raise ValueError(
            f"chunked_token_logprobs: hidden must be [B, T, H] and labels [B, T]; got hidden "
            f"{hidden.shape} and labels {labels.shape}"
        )
    if lm_head_kernel.ndim != 2 or lm_head_kernel.shape[0] != hidden.shape[-1]:
        raise ValueError(
            f"chunked_token_logprobs: lm_head_kernel must be [H, V] with H={hidden.shape[-1]}; "
            f"got {lm_head_kernel.shape}"
        )
    if chunk_size < 1:
        raise ValueError(f"chunked_token_logprobs: chunk_size must be >= 1, got {chunk_size}")
    hidden = batch_sharding_constraint(hidden)
    batch, seq_len, width = hidden.shape
    chunk_size = min(chunk_size, seq_len)
    num_chunks = -(-seq_len // chunk_size)
    pad = num_chunks * chunk_size - seq_len
    labels = labels.astype(jnp.int32)
    if pad:
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
        labels = jnp.pad(labels, ((0, 0), (0, pad)))
    # [B, nC*C, H] -> [nC, B, C, H]: the scan runs over the leading chunk axis.
    hidden_chunks = hidden.reshape(batch, num_chunks, chunk_size, width).swapaxes(0, 1)
    label_chunks = labels.reshape(batch, num_chunks, chunk_size).swapaxes(0, 1)

    body = jax.checkpoint(_chunk_logprobs, static_argnums=(3,))

    def step(carry: None, xs: tuple[jnp.ndarray, jnp.ndarray]) -> tuple[None, jnp.ndarray]:
        return carry, body(xs[0], lm_head_kernel, xs[1], logit_soft_cap)

    _, out = jax.lax.scan(step, None, (hidden_chunks, label_chunks))
    return out.swapaxes(0, 1).reshape(batch, num_chunks * chunk_size)[:, :seq_len]


def chunked_sequence_logprobs(
    hidden: jnp.ndarray,
    lm_head_kernel: jnp.ndarray,
    labels: jnp.ndarray,
    mask: jnp.ndarray | None = None,
    *,
    chunk_size: int,
    logit_soft_cap: float | None = None,
) -> jnp.ndarray:
    """Sum of chunked token log-probs over valid positions: [B, T, H], [H, V], [B, T] -> [B].

    log p(y | x) = sum_t mask_t * log p(y_t | h_t); see `chunked_token_logprobs`.
    """
    token_lp = chunked_token_logprobs(
        hidden, lm_head_kernel, labels, chunk_size=chunk_size, logit_soft_cap=logit_soft_cap
    )
    return masked_sum(token_lp, mask, axis=-1)
