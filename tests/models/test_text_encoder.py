"""`TextEncoder.embed` on the tiny BERT fixture (with its tiny WordPiece tokenizer).

Reference: every text in one right-padded batch through the loaded model, pooled with NumPy, so
bucketing, sorting, batch padding, sharding and reordering are what the comparison tests."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest
from flax import nnx

from jaxmethods.hf import load_pretrained
from jaxmethods.models.text_encoder import TextEncoder, batch_rows, length_buckets
from jaxmethods.train.mesh import make_mesh

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "data", "hf", "bert")
# Token lengths (with [CLS]/[SEP]) from 3 to 32 (truncated): buckets 16 and 32.
TEXTS = [
    "hello world",
    "a",
    "the quick brown fox jumps over the lazy dog again and again",
    "retrieval",
    "jax encoders",
    "xyz",
    "one more sentence here",
]


@pytest.fixture(scope="module")
def cls_encoder():
    return TextEncoder.from_pretrained(FIXTURE, dtype="float32", pooling="cls")


@pytest.fixture(scope="module")
def reference(cls_encoder):
    """(token ids per text, last hidden states of all texts as one right-padded batch, mask),
    from one jitted forward of the loaded model."""
    ids = cls_encoder.tokenize(TEXTS)
    width = max(map(len, ids))
    batch = np.zeros((len(ids), width), np.int32)
    mask = np.zeros_like(batch)
    for i, row in enumerate(ids):
        batch[i, : len(row)], mask[i, : len(row)] = row, 1
    graphdef, state = nnx.split(load_pretrained(FIXTURE, dtype="float32"))
    hidden = jax.jit(lambda s, b, m: nnx.merge(graphdef, s)(b, m))(state, batch, mask)
    return ids, np.asarray(hidden, np.float64), mask


def _np_pool(hidden, mask, kind, normalize):
    out = (
        hidden[:, 0] if kind == "cls" else (hidden * mask[..., None]).sum(1) / mask.sum(1)[:, None]
    )
    if normalize:
        out = out / np.linalg.norm(out, axis=-1, keepdims=True)
    return out


def test_buckets_and_batch_rows():
    assert length_buckets(8192) == (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
    assert length_buckets(40) == (16, 32, 40)
    assert [batch_rows(n, 64) for n in (1, 3, 5, 64, 100)] == [1, 4, 8, 64, 64]
    assert batch_rows(3, 64, multiple=4) == 4 and batch_rows(5, 6, multiple=4) == 8


def test_cls_embed_matches_reference_in_input_order_without_retrace(cls_encoder, reference):
    ids, hidden, mask = reference
    enc = cls_encoder
    assert max(map(len, ids)) == 32 and min(map(len, ids)) == 3  # truncated at max_length
    assert enc.dim == 16 and enc.max_length == 32  # the tokenizer's model_max_length
    out = enc.embed(TEXTS, batch_size=4)  # 2 batches: buckets 32 and 16
    assert out.shape == (len(TEXTS), 16) and out.dtype == np.float32
    expected = _np_pool(hidden, mask, "cls", False)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    assert enc.trace_count == 2
    short = [0, 1, 3, 5]  # all in the 16 bucket: the same (4, 16) program, no retrace
    again = enc.embed([TEXTS[i] for i in short], batch_size=4)
    np.testing.assert_allclose(again, expected[short], atol=1e-5, rtol=1e-5)
    assert enc.trace_count == 2


def test_mean_normalized_embed_matches_reference(reference):
    _, hidden, mask = reference
    enc = TextEncoder.from_pretrained(FIXTURE, dtype="float32", pooling="mean", normalize=True)
    rows = [0, 1, 3, 4, 5]  # one bucket (16), batches of 4 and 1 rows (padded to 4)
    out = enc.embed([TEXTS[i] for i in rows], batch_size=4)
    expected = _np_pool(hidden, mask, "mean", True)[rows]
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    assert enc.trace_count == 1


@pytest.mark.slow  # one more compilation (~4 s on 2 busy cores)
def test_embed_sharded_over_the_data_axis(reference):
    if jax.device_count() < 4:
        pytest.skip("needs 4 devices")
    _, hidden, mask = reference
    mesh = make_mesh({"data": 4}, devices=jax.devices()[:4])
    enc = TextEncoder.from_pretrained(FIXTURE, dtype="float32", mesh=mesh, pooling="cls")
    rows = [0, 1, 3, 4, 5]
    out = enc.embed([TEXTS[i] for i in rows], batch_size=3)  # rounded up to 4 rows per batch
    np.testing.assert_allclose(
        out, _np_pool(hidden, mask, "cls", False)[rows], atol=1e-5, rtol=1e-5
    )
    assert enc.trace_count == 1


def test_errors(cls_encoder):
    with pytest.raises(TypeError, match="not a single string"):
        cls_encoder.embed("one text")
    assert cls_encoder.embed([]).shape == (0, 16)
    with pytest.raises(ValueError, match="max_length=64 exceeds the model's 40 positions"):
        TextEncoder(cls_encoder.model, cls_encoder.tokenizer, max_length=64)
