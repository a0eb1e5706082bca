"""DEP's run: every config variant converts, the authors' settings are what §7 says, arms see
the right soft rows, the table, and (slow) the tiny end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest

from configs.dep import VARIANTS, get_config
from jaxmethods.methods.dep.config import from_config_dict
from jaxmethods.methods.dep.report import results_table
from jaxmethods.methods.dep.run import arm_inputs
from jaxmethods.train.config import ConfigError


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_converts(variant):
    cfg = from_config_dict(get_config(variant))
    assert cfg.method == "dep" and cfg.name == f"dep_{variant}"
    assert cfg.adapter.embed_size == cfg.embed.dim


@pytest.mark.parametrize("variant,category", [("books", "Books"), ("movies", "Movies_and_TV"),
                                              ("cds", "CDs_and_Vinyl")])  # fmt: skip
def test_authors_settings(variant, category):
    cfg = from_config_dict(get_config(variant))
    o = cfg.optim
    assert (o.optimizer, o.lr, o.weight_decay, o.warmup_ratio, o.schedule) == (
        "adamw",
        1e-5,
        0.025,
        0.01,
        "linear",
    )
    assert (o.max_grad_norm, cfg.batch_size * o.grad_accum, cfg.epochs) == (1.0, 16, 5)
    assert cfg.checkpoint_per_epoch and cfg.eval.select == "meteor"
    assert cfg.data.num_val == 512 and cfg.data.categories == (category,)
    assert (cfg.data.max_length, cfg.data.total_length) == (3072, 3072 + 2048 + 1)
    g = cfg.generate
    assert (g.temperature, g.top_p, g.max_new_tokens) == (0.8, 0.95, 2048)
    assert cfg.model.dtype == "bfloat16" and cfg.model.source == "Qwen/Qwen2.5-7B-Instruct"
    assert (cfg.adapter.embed_size, cfg.adapter.code_size, cfg.sae_weight) == (1024, 512, 100.0)
    assert cfg.eval.meteor_wordnet and cfg.eval.meteor_tokenizer == "punkt"
    assert cfg.embed.encoder == "BAAI/bge-m3" and cfg.arms == ("none", "history", "dep")


def test_bad_configs_name_the_field():
    with pytest.raises(ConfigError, match=r"config\.arms"):
        c = get_config("tiny")
        c.arms = ("dep", "rag")
        from_config_dict(c)
    with pytest.raises(ConfigError, match=r"config\.adapter\.embed_size"):
        from_config_dict(get_config("tiny,adapter.embed_size=8"))
    with pytest.raises(ConfigError, match=r"config\.embed\.folder"):
        from_config_dict(get_config("books,embed.source=files,emb="))


def test_arm_inputs():
    x = np.arange(2 * 16 * 3, dtype=np.float32).reshape(2, 16, 3) + 1
    np.testing.assert_array_equal(arm_inputs("dep", x), x)
    np.testing.assert_array_equal(arm_inputs("none", x), 0 * x)
    h = arm_inputs("history", x)
    np.testing.assert_array_equal(h[:, :8], x[:, :8])
    np.testing.assert_array_equal(h[:, 8:], 0 * x[:, 8:])
    assert x[0, 0, 0] == 1  # the input is not modified


def test_results_table():
    r = {"rouge1": 0.5, "rouge1_se": 0.01, "rougeL": 0.25, "rougeL_se": 0.02, "meteor": 0.125,
         "meteor_se": 0.03, "sacrebleu": 12.345}  # fmt: skip
    t = results_table({"dep": r}, "METEOR").splitlines()
    assert t[0] == "| model | ROUGE-1 | ROUGE-L | METEOR | sacreBLEU |"
    assert t[2] == (
        "| DEP (history + difference) | 0.5000 ± 0.0100 | 0.2500 ± 0.0200 | 0.1250 ± 0.0300 | 12.35 |"
    )


@pytest.mark.slow
def test_tiny_end_to_end(tmp_path):
    from jaxmethods.methods.dep.run import run

    out = run(get_config("tiny"), str(tmp_path))
    assert out["data/train"] == 8 and out["data/test"] == 4
    for arm in ("none", "history", "dep"):
        assert 0.0 <= out[f"test/{arm}/meteor"] <= 1.0
        assert np.isfinite(out[f"{arm}/train_loss"])
    assert "dep" in out["tables"]


def test_without_review_text_keeps_items_and_targets():
    from jaxmethods.methods.dep.data import Sample, Selection
    from jaxmethods.methods.dep.run import without_review_text

    rev = {"rating": 4.0, "title": "Jolly", "text": "Wow, jolly.", "asin": "B1", "timestamp": 1}
    sel = Selection([Sample("u1", "Books", (rev,), dict(rev, asin="B2"))])
    out = without_review_text(sel).samples[0]
    assert out.profile == ({**rev, "title": "", "text": ""},)
    assert out.target == sel.samples[0].target and rev["text"] == "Wow, jolly."
