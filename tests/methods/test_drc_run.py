"""DRC's run: every variant converts, bad configs name the field, the report's table and paired
difference against NumPy, the PNG grid, and (slow) the tiny end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest

from configs.drc import VARIANTS, get_config
from jaxmethods.methods.drc.config import from_config_dict
from jaxmethods.methods.drc.grid import grid_array, write_grid
from jaxmethods.methods.drc.report import summarize
from jaxmethods.train.config import ConfigError


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_converts(variant):
    c = get_config(variant)
    if variant in ("sticker", "movie"):
        c.data.path, c.data.codes_file = "/data/x", "/data/x/codes.npy"
    cfg = from_config_dict(c)
    assert cfg.method == "drc" and cfg.name == f"drc_{variant}"
    if variant in ("sticker", "movie"):
        p = cfg.pigeon
        assert (p.lora_rank, p.lora_alpha, p.lora_dropout) == (8, 16.0, 0.05)
        assert (p.sft_lr, p.dpo_lr, p.dpo_beta) == (1e-5, 5e-6, 0.1)
        assert (p.batch_size, p.dpo_batch_size) == (16, 8)
        assert cfg.lm.source == "rain1011/LaVIT-7B-v2" and cfg.vq.codebook_size == 16384


def test_bad_configs_name_the_field():
    with pytest.raises(ConfigError, match=r"config\.rows"):
        c = get_config("tiny")
        c.rows = ("drc", "dreambooth")
        from_config_dict(c)
    with pytest.raises(ConfigError, match=r"config\.data\.path"):
        from_config_dict(get_config("sticker"))
    with pytest.raises(ConfigError, match=r"config\.data\.on_mismatch"):
        from_config_dict(get_config("tiny,data.on_mismatch=crop"))
    with pytest.raises(ConfigError, match=r"config\.pigeon\.mask_ratio"):
        from_config_dict(get_config("tiny,pigeon.mask_ratio=1.5"))


def test_summarize_against_numpy():
    rng = np.random.default_rng(0)
    keys = ("style_ok", "semantic_ok", "collapse", "style_collapse", "semantic_collapse")
    scores = {r: {k: rng.integers(0, 2, 40).astype(float) for k in keys}
              for r in ("target", "none", "pigeon", "drc")}  # fmt: skip
    metrics, tables = summarize(scores, ("none", "pigeon", "drc"))
    x = scores["pigeon"]["collapse"]
    assert metrics["pigeon/collapse"] == pytest.approx(x.mean())
    assert metrics["pigeon/collapse_se"] == pytest.approx(x.std(ddof=1) / np.sqrt(40))
    diff = scores["drc"]["collapse"] - x
    assert metrics["collapse/drc_minus_pigeon"] == pytest.approx(diff.mean())
    assert metrics["collapse/drc_minus_pigeon_se"] == pytest.approx(diff.std(ddof=1) / np.sqrt(40))
    table = tables["drc"]
    assert table.count("\n| ") == 4 and "(40 test episodes" in table


def test_grid(tmp_path):
    from PIL import Image

    hist = np.zeros((3, 5, 32, 32, 3), np.float32)
    one = np.ones((3, 32, 32, 3), np.float32)
    canvas = grid_array([hist, one], gap=2, scale=2)
    assert canvas.shape == (3 * (64 + 2), 5 * 64 + 2 + 64 + 2, 3)
    assert canvas[0, 0, 0] == 128 and canvas[0, -3, 0] == 255  # 0 -> mid grey, 1 -> white
    path = write_grid(str(tmp_path / "g.png"), [hist, one], ["history", "gen"])
    assert Image.open(path).size == (canvas.shape[1], canvas.shape[0] + 14)
    with pytest.raises(ValueError, match="grid column 1: 2 rows, column 0 has 3"):
        grid_array([hist, one[:2]])


@pytest.mark.slow
def test_tiny_end_to_end(tmp_path):
    from jaxmethods.methods.drc.run import run

    s = run(get_config("tiny"), str(tmp_path))
    for row in ("target", "none", "pigeon", "drc"):
        assert 0.0 <= s[f"{row}/collapse"] <= 1.0
    assert np.isfinite(s["drc/stage2_loss"]) and np.isfinite(s["pigeon/dpo_loss"])
    assert "collapse/drc_minus_pigeon" in s and (tmp_path / "grid.png").exists()
    assert (tmp_path / "vq.npz").exists()
