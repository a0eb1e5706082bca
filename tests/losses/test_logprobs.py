"""Log-prob utilities against a float64 NumPy reference; chunked == unchunked (values, grads)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmethods.losses import (
    chunked_sequence_logprobs,
    chunked_token_logprobs,
    sequence_logprobs,
    token_logprobs,
)


def _np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_token_logprobs(hidden, kernel, labels, cap=None):
    logits = hidden.astype(np.float64) @ kernel.astype(np.float64)
    if cap is not None:
        logits = cap * np.tanh(logits / cap)
    logp = _np_log_softmax(logits)
    return np.take_along_axis(logp, labels[..., None], -1)[..., 0]


def _np_grads(hidden, kernel, labels, weights):
    """d/dh and d/dW of sum_t w_t log softmax(h_t W)[y_t], by hand (no soft cap)."""
    h = hidden.astype(np.float64)
    w = kernel.astype(np.float64)
    probs = np.exp(_np_log_softmax(h @ w))
    onehot = np.eye(w.shape[1])[labels]
    delta = weights[..., None] * (onehot - probs)  # [B, T, V]
    return delta @ w.T, np.einsum("bth,btv->hv", h, delta)


def _inputs(seed=0, b=3, t=7, h=5, v=11):
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(b, t, h)).astype(np.float32)
    kernel = rng.normal(size=(h, v)).astype(np.float32)
    labels = rng.integers(0, v, size=(b, t)).astype(np.int32)
    mask = rng.random((b, t)) < 0.7
    return hidden, kernel, labels, mask


def test_token_and_sequence_logprobs_match_numpy():
    hidden, kernel, labels, mask = _inputs()
    logits = hidden @ kernel
    ref = _np_token_logprobs(hidden, kernel, labels)
    np.testing.assert_allclose(token_logprobs(logits, labels), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        sequence_logprobs(logits, labels, mask), (ref * mask).sum(-1), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64])  # 3 does not divide T=7; 64 > T
def test_chunked_matches_numpy_and_unchunked(chunk_size):
    hidden, kernel, labels, mask = _inputs(seed=chunk_size)
    ref = _np_token_logprobs(hidden, kernel, labels)
    out = chunked_token_logprobs(hidden, kernel, labels, chunk_size=chunk_size)
    assert out.shape == labels.shape and out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, token_logprobs(hidden @ kernel, labels), rtol=1e-5, atol=1e-6)
    seq = chunked_sequence_logprobs(hidden, kernel, labels, mask, chunk_size=chunk_size)
    np.testing.assert_allclose(seq, (ref * mask).sum(-1), rtol=1e-5, atol=1e-5)


def test_chunked_soft_cap_matches_numpy():
    hidden, kernel, labels, _ = _inputs(seed=4)
    out = chunked_token_logprobs(hidden * 3, kernel, labels, chunk_size=2, logit_soft_cap=5.0)
    ref = _np_token_logprobs(hidden * 3, kernel, labels, cap=5.0)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_chunked_gradients_match_numpy_and_unchunked():
    hidden, kernel, labels, mask = _inputs(seed=5)
    weights = mask.astype(np.float32) * np.linspace(0.5, 1.5, labels.size).reshape(labels.shape)

    def chunked_loss(h, w):
        return jnp.sum(weights * chunked_token_logprobs(h, w, labels, chunk_size=3))

    def full_loss(h, w):
        return jnp.sum(weights * token_logprobs(h @ w, labels))

    g_chunk = jax.grad(chunked_loss, argnums=(0, 1))(hidden, kernel)
    g_full = jax.grad(full_loss, argnums=(0, 1))(hidden, kernel)
    g_ref = _np_grads(hidden, kernel, labels, weights)
    for got, full, ref in zip(g_chunk, g_full, g_ref):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got, full, rtol=1e-5, atol=1e-6)


def test_chunked_never_materialises_full_logits_under_grad():
    b, t, h, v = 2, 12, 4, 97
    hidden, kernel, labels, _ = _inputs(seed=6, b=b, t=t, h=h, v=v)

    def loss(hh, w):
        return chunked_token_logprobs(hh, w, labels, chunk_size=4).sum()

    hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(hidden, kernel).compile().as_text()
    assert f"f32[{b},{t},{v}]" not in hlo
    assert f"f32[{b},4,{v}]" in hlo  # one chunk of logits is what exists


def test_chunked_bf16_inputs_accumulate_in_fp32():
    hidden, kernel, labels, _ = _inputs(seed=7)
    h16, w16 = jnp.asarray(hidden, jnp.bfloat16), jnp.asarray(kernel, jnp.bfloat16)
    out = chunked_token_logprobs(h16, w16, labels, chunk_size=4)
    assert out.dtype == jnp.float32
    ref = _np_token_logprobs(np.asarray(h16, np.float32), np.asarray(w16, np.float32), labels)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_chunked_rejects_bad_shapes():
    hidden, kernel, labels, _ = _inputs()
    with pytest.raises(ValueError, match="lm_head_kernel must be"):
        chunked_token_logprobs(hidden, kernel.T, labels, chunk_size=2)
    with pytest.raises(ValueError, match="labels"):
        chunked_token_logprobs(hidden, kernel, labels[:, :3], chunk_size=2)
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_token_logprobs(hidden, kernel, labels, chunk_size=0)
