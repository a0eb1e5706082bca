"""The image-token LM plumbing: LaVIT's id layout, codes outside the codebook, text-token
suppression, placeholder injection, and loading a tiny Llama-shaped LaVIT folder
(`language_model/` with HF safetensors written here) with Pigeon's LoRA on q_proj / v_proj."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from jaxmethods.generate.processors import DecodeState
from jaxmethods.methods.drc.image_lm import (
    LAVIT_LORA,
    VisualTokenProcessor,
    VisualVocab,
    inject_placeholders,
    lavit_decoder_config,
    load_lavit_llm,
)
from jaxmethods.models.lora import lora_modules

TINY = VisualVocab.tiny(codebook_size=12, text_vocab_size=8)  # vocab 8 + 2 + 12 = 22


def test_lavit_layout():
    v = VisualVocab()
    assert (v.img_id, v.emb_id, v.end_id, v.visual_offset) == (32000, 32001, 32001, 32002)
    assert v.vocab_size == 32002 + 16384
    np.testing.assert_array_equal(v.to_lm_ids([[0, 16383]]), [[32002, 48385]])
    np.testing.assert_array_equal(
        v.to_codes([5, 32000, 32001, 32002, 48385]), [-1, -1, -1, 0, 16383]
    )
    np.testing.assert_array_equal(TINY.image_ids(np.array([[0, 11]])), [[8, 10, 21, 9]])
    cfg = lavit_decoder_config()
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_layers) == (48386, 4096, 32)


def test_code_outside_codebook_names_field_and_sample():
    codes = np.zeros((3, 4), np.int64)
    codes[2, 1] = 12
    with pytest.raises(ValueError, match=r"history \(sample 2 is 'user7/t3'\).*sample 2.*\[12\]"):
        TINY.to_lm_ids(codes, field="history", sample_ids=["a", "b", "user7/t3"])
    with pytest.raises(ValueError, match=r"reference.*outside the codebook"):
        TINY.to_lm_ids(-np.ones((1, 2), np.int64), field="reference")
    with pytest.raises(ValueError, match="integers"):
        TINY.to_lm_ids(np.zeros((1, 2)), field="target")


def test_suppression_leaves_only_visual_ids_and_end():
    procs = [
        (VisualTokenProcessor(TINY), 0),
        (VisualTokenProcessor(TINY, allow_end=False), 0),
        (VisualTokenProcessor(TINY, min_tokens=3), 2),
        (VisualTokenProcessor(TINY, min_tokens=3), 3),
        (VisualTokenProcessor(TINY, suppress="text"), 0),
    ]

    @jax.jit
    def run(scores, tokens):
        return [p(scores, DecodeState(step=jnp.int32(t), tokens=tokens)) for p, t in procs]

    outs = [
        np.asarray(o) for o in run(jnp.zeros((2, TINY.vocab_size)), jnp.zeros((2, 4), jnp.int32))
    ]
    alive = [set(np.flatnonzero(np.isfinite(o[1])).tolist()) for o in outs]
    assert all((np.isfinite(o[0]) == np.isfinite(o[1])).all() for o in outs)
    visual = set(range(10, 22))
    assert alive[0] == visual | {TINY.end_id}
    assert alive[1] == visual
    assert alive[2] == visual and alive[3] == visual | {9}  # end only after min_tokens
    # Pigeon: suppress_tokens = range(3, T): ids 0-2, <img>, <end> and visual ids survive
    assert alive[4] == {0, 1, 2, 8, 9} | visual


def test_inject_placeholders_fills_occurrences_in_order():
    rng = np.random.default_rng(0)
    ids = np.array([[9, 3, 9, 9, 4], [1, 9, 9, 9, 2]])
    emb = rng.normal(size=(2, 5, 6)).astype(np.float32)
    soft = rng.normal(size=(2, 3, 6)).astype(np.float32)
    out = np.asarray(jax.jit(inject_placeholders, static_argnums=3)(emb, ids, soft, 9))
    want = emb.copy()
    for b in range(2):
        k = 0
        for t in range(5):
            if ids[b, t] == 9:
                want[b, t] = soft[b, k]
                k += 1
    np.testing.assert_array_equal(out, want)


def write_tiny_lavit(root, vocab_size):
    """A LaVIT-shaped folder: <root>/language_model/{config.json, model.safetensors} holding a
    2-layer Llama with HF key names (torch [out, in] weights), random values."""
    h, inter, heads, layers = 16, 32, 2, 2
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab_size,
        "hidden_size": h, "intermediate_size": inter, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": heads, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 64, "rope_theta": 10000.0, "torch_dtype": "float32",
        "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
    }  # fmt: skip
    rng = np.random.default_rng(0)
    r = lambda *s: rng.normal(scale=0.02, size=s).astype(np.float32)
    t = {"model.embed_tokens.weight": r(vocab_size, h), "lm_head.weight": r(vocab_size, h)}
    t["model.norm.weight"] = 1 + r(h)
    for i in range(layers):
        p = f"model.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            t[p + f"self_attn.{n}.weight"] = r(h, h)
        t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"] = r(inter, h), r(inter, h)
        t[p + "mlp.down_proj.weight"] = r(h, inter)
        t[p + "input_layernorm.weight"] = 1 + r(h)
        t[p + "post_attention_layernorm.weight"] = 1 + r(h)
    folder = root / "language_model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    save_file(t, str(folder / "model.safetensors"), {"format": "pt"})
    (root / "visual_tokenizer").mkdir()  # other LaVIT parts stay untouched
    return cfg, t


def test_load_tiny_lavit_with_pigeon_lora(tmp_path):
    _, t = write_tiny_lavit(tmp_path, TINY.vocab_size)
    lm = load_lavit_llm(tmp_path, vocab=TINY, dtype="float32")
    c = lm.config
    assert (c.vocab_size, c.hidden_size, c.intermediate_size, c.num_layers) == (22, 16, 32, 2)
    assert (c.num_heads, c.rms_norm_eps, c.max_position_embeddings) == (2, 1e-5, 64)
    layer = lm.model.layers[1]
    np.testing.assert_array_equal(
        lm.model.embed_tokens.embedding[...], t["model.embed_tokens.weight"]
    )
    np.testing.assert_array_equal(lm.lm_head.kernel[...], t["lm_head.weight"].T)
    np.testing.assert_array_equal(
        layer.self_attn.v_proj.kernel[...], t["model.layers.1.self_attn.v_proj.weight"].T
    )
    np.testing.assert_array_equal(
        layer.mlp.down_proj.kernel[...], t["model.layers.1.mlp.down_proj.weight"].T
    )
    np.testing.assert_array_equal(
        layer.post_attention_layernorm.scale[...],
        t["model.layers.1.post_attention_layernorm.weight"],
    )
    adapted = sorted(p for p, _ in lora_modules(lm))
    assert adapted == [
        f"model/layers/{i}/self_attn/{n}" for i in (0, 1) for n in ("q_proj", "v_proj")
    ]
    q = lm.model.layers[0].self_attn.q_proj
    assert q.lora_a.shape == (16, 8) and q.lora_b.shape == (8, 16)
    assert (q.lora_scale, q.lora_dropout) == (2.0, 0.05)  # alpha 16 / r 8, dropout 0.05
    assert LAVIT_LORA.rank == 8
    # the LLM folder itself works too, without adapters
    bare = load_lavit_llm(tmp_path / "language_model", vocab=TINY, lora=None, dtype="float32")
    assert not lora_modules(bare)
    with pytest.raises(ValueError, match="cannot hold the visual vocabulary"):
        load_lavit_llm(tmp_path, vocab=VisualVocab.tiny(codebook_size=13), lora=None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_lavit_llm(tmp_path / "nope")
