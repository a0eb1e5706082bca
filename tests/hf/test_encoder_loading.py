"""Strict key accounting and sharded placement of encoder checkpoints (no torch needed).

Each case rewrites a committed fixture's tensors (renamed, dropped, reshaped, extra) with
safetensors' NumPy API and checks the loader's answer against the fixture's reference outputs.
"""

from __future__ import annotations

import json
import logging
import os
import re

import jax
import numpy as np
import pytest
from flax import nnx
from hf_testing import TOL, fixture_path, reference
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from safetensors.numpy import load_file, save_file

from jaxmethods.hf import load_pretrained
from jaxmethods.train.mesh import make_mesh


def _rewrite(tmp_path, name, rename=lambda k: k, extra=None, drop=(), config=None):
    """A copy of fixture `name` with keys renamed / dropped / added and config fields changed."""
    tensors = load_file(os.path.join(fixture_path(name), "model.safetensors"))
    out = {rename(k): v for k, v in tensors.items() if not any(re.search(d, k) for d in drop)}
    out.update(extra or {})
    save_file(out, str(tmp_path / "model.safetensors"), {"format": "pt"})
    with open(os.path.join(fixture_path(name), "config.json")) as f:
        cfg = json.load(f)
    cfg.update(config or {})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return str(tmp_path)


def _hidden(model, ref):
    types = ref.get("token_type_ids")
    return np.asarray(model(ref["input_ids"].astype(np.int32), ref["attention_mask"], types))


def test_prefixed_checkpoint_with_mlm_head_and_buffers_loads(tmp_path, caplog):
    """`bert.`-prefixed keys + BertForPreTraining heads + a position_ids buffer: the heads and
    buffer are skipped (and logged), the encoder matches the unprefixed fixture."""
    ref = reference("bert")
    extra = {
        "cls.predictions.bias": np.zeros(64, np.float32),
        "cls.seq_relationship.weight": np.zeros((2, 16), np.float32),
        "bert.embeddings.position_ids": np.arange(40, dtype=np.int64)[None],
    }
    folder = _rewrite(tmp_path, "bert", rename=lambda k: "bert." + k, extra=extra)
    with caplog.at_level(logging.INFO, logger="jaxmethods.hf.encoder_loading"):
        model = load_pretrained(folder, dtype="float32")
    assert "skipped 3 known unused tensor(s)" in caplog.text
    np.testing.assert_allclose(_hidden(model, ref), ref["last_hidden_state"], **TOL)


def test_gamma_beta_layer_norm_names_load(tmp_path):
    ref = reference("distilbert")
    rename = lambda k: k.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
        "LayerNorm.bias", "LayerNorm.beta"
    )
    model = load_pretrained(_rewrite(tmp_path, "distilbert", rename=rename), dtype="float32")
    np.testing.assert_allclose(_hidden(model, ref), ref["last_hidden_state"], **TOL)


def test_dpr_question_encoder_loads_as_bert(tmp_path):
    """DPR: `question_encoder.bert_model.` prefix, model_type dpr, no pooler (CLS pooling)."""
    ref = reference("bert")
    folder = _rewrite(
        tmp_path, "bert", rename=lambda k: "question_encoder.bert_model." + k, drop=["^pooler"],
        config=dict(model_type="dpr", projection_dim=0, architectures=["DPRQuestionEncoder"]),
    )  # fmt: skip
    model = load_pretrained(folder, dtype="float32")
    assert model.pooler is None
    np.testing.assert_allclose(_hidden(model, ref), ref["last_hidden_state"], **TOL)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(extra={"encoder.layer.0.attention.self.rotary.weight": np.zeros(2, np.float32)}),
         r"unexpected tensor.*'encoder\.layer\.0\.attention\.self\.rotary\.weight' in "
         r"model\.safetensors"),
        (dict(drop=[r"encoder\.layer\.1\.output\.dense\.bias"]),
         r"missing tensor.*'encoder\.layer\.1\.output\.dense\.bias'.*model\.safetensors"),
        (dict(extra={"encoder.layer.0.intermediate.dense.weight": np.zeros((16, 16), np.float32)}),
         r"'encoder\.layer\.0\.intermediate\.dense\.weight' in model\.safetensors: shape "
         r"\(16, 16\), model expects \(16, 32\)"),
        (dict(extra={"embeddings.LayerNorm.gamma": np.ones(16, np.float32)}),
         r"'embeddings\.LayerNorm\.(gamma|weight)' and 'embeddings\.LayerNorm\.(gamma|weight)' "
         r"both map"),
    ],
    ids=["unknown", "missing", "shape", "duplicate"],
)  # fmt: skip
def test_checkpoint_errors_name_key_and_file(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        load_pretrained(_rewrite(tmp_path, "bert", **change), dtype="float32")


def test_classifier_head_missing_from_base_checkpoint(tmp_path):
    with pytest.raises(ValueError, match=r"missing tensor.*'classifier\.weight'"):
        load_pretrained(fixture_path("bert"), dtype="float32", head="sequence_classification")
    # ... unless marked fresh: the head is initialised, the encoder weights are the checkpoint's.
    model = load_pretrained(
        fixture_path("bert"), dtype="float32", head="sequence_classification", num_labels=5,
        fresh_params=("classifier/",),
    )  # fmt: skip
    assert model.classifier.kernel.shape == (16, 5)
    np.testing.assert_array_equal(model.classifier.bias[...], np.zeros(5, np.float32))
    assert float(np.std(np.asarray(model.classifier.kernel[...]))) > 0
    tensors = load_file(os.path.join(fixture_path("bert"), "model.safetensors"))
    np.testing.assert_array_equal(
        model.model.layers[1].attention.query.kernel[...],
        tensors["encoder.layer.1.attention.self.query.weight"].T,
    )
    np.testing.assert_array_equal(model.pooler.kernel[...], tensors["pooler.dense.weight"].T)


def test_unsupported_encoder_config_is_named(tmp_path):
    folder = _rewrite(tmp_path, "bert", config=dict(position_embedding_type="relative_key"))
    with pytest.raises(ValueError, match=r"config\.json: position_embedding_type 'relative_key'"):
        load_pretrained(folder, dtype="float32")


def test_sharded_load_places_named_shardings():
    """On a 1 x 2 x 2 (data, fsdp, tensor) mesh of fake CPU devices each leaf gets the rule's
    NamedSharding and holds the same values as an unsharded load."""
    if jax.device_count() < 4:
        pytest.skip("needs 4 devices")
    mesh = make_mesh({"data": 1, "fsdp": 2, "tensor": 2}, devices=jax.devices()[:4])
    model = load_pretrained(fixture_path("bert_cls"), dtype="float32", mesh=mesh)
    layer = model.model.layers[0]
    expect = [
        (layer.attention.query.kernel, P("fsdp", "tensor")),
        (layer.output.kernel, P("tensor", "fsdp")),
        (model.model.embeddings.word_embeddings.embedding, P("tensor", "fsdp")),
        (layer.attention_norm.scale, P(None)),
    ]
    for param, spec in expect:
        sharding = param[...].sharding
        assert isinstance(sharding, NamedSharding) and sharding.mesh == mesh
        assert sharding.spec == spec
    plain = load_pretrained(fixture_path("bert_cls"), dtype="float32")
    for (path, ours), (_, theirs) in zip(
        nnx.to_flat_state(nnx.state(model, nnx.Param)),
        nnx.to_flat_state(nnx.state(plain, nnx.Param)),
    ):
        np.testing.assert_array_equal(np.asarray(ours[...]), np.asarray(theirs[...]), str(path))
