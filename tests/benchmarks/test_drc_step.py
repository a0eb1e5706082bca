"""benchmarks/drc_step.py: the plain LM's batch holds the triplets' images, the sampler overhead
is measured on real sampler calls; the smoke preset end to end is tests/benchmarks/test_suite.py."""

from __future__ import annotations

import importlib.util
import os

import jax.numpy as jnp
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def bench():
    path = os.path.join(ROOT, "benchmarks", "drc_step.py")
    spec = importlib.util.spec_from_file_location("benchmarks.drc_step", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lm_batch_is_the_triplet_images(bench):
    from jaxmethods.methods.drc.image_lm import VisualVocab

    p = bench.PRESETS["smoke"]
    vocab = VisualVocab.tiny(p["codebook"])
    trip = bench.make_triplets(p, np.random.default_rng(0))
    batch = bench.lm_batch(vocab, trip)
    b, n = p["batch"], p["tokens"]
    assert batch["input_ids"].shape == (3 * b, n + 2)
    np.testing.assert_array_equal(batch["input_ids"][b:2 * b, 1:-1] - vocab.visual_offset,
                                  trip["pos_style"])  # fmt: skip
    assert np.all(batch["input_ids"][:, 0] == vocab.img_id)
    assert np.all(batch["input_ids"][:, -1] == vocab.end_id)


def test_sampler_overhead_runs(bench):
    p = {**bench.PRESETS["smoke"], "sampler_steps": 5}
    codes = np.zeros((32, p["tokens"]), np.int32)
    host = bench.sampler_overhead(p, codes, jnp.float32(1.0))
    assert 0 < host["median_s"] < 1.0 and host["p90_s"] >= host["median_s"]
