"""BalDRO end to end: the `tiny` config through launch/run.py, and config errors."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from jaxmethods.eval.unlearning import MODEL_UTILITY_KEYS, write_truth_ratio_log
from jaxmethods.methods.baldro.config import from_config_dict
from jaxmethods.train.config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(arg="tiny"):
    spec = importlib.util.spec_from_file_location(
        "baldro_cfg", os.path.join(ROOT, "configs/baldro.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg)


def test_tiny_runs_through_launch(tmp_path):
    retain_log = tmp_path / "TOFU_EVAL.json"
    write_truth_ratio_log(retain_log, np.array([0.3, 0.9, 1.4, 0.6]))
    workdir = tmp_path / "run"
    cmd = [
        sys.executable, os.path.join(ROOT, "launch/run.py"),
        "--config", os.path.join(ROOT, "configs/baldro.py:tiny"),
        "--workdir", str(workdir),
        f"--config.eval.retain_logs_path={retain_log}",
    ]  # fmt: skip
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "NPO+BalDRO-G" in out.stdout and "NPO+BalDRO-DV" in out.stdout
    summary = json.loads((workdir / "summary.json").read_text())
    for variant in ("target", "plain", "group", "dv"):
        assert 0.0 <= summary[f"{variant}/forget_quality"] <= 1.0
        parts = [summary[f"{variant}/{k}"] for k in MODEL_UTILITY_KEYS]
        want = 0.0 if min(parts) == 0 else stats.hmean(parts)
        assert summary[f"{variant}/model_utility"] == pytest.approx(want)
    for variant in ("plain", "group", "dv"):
        rows = [
            json.loads(x) for x in (workdir / variant / "metrics.jsonl").read_text().splitlines()
        ]
        assert rows and all(np.isfinite(r["loss"]) for r in rows)
        # unlearning moved the forget set's likelihood
        assert summary[f"{variant}/forget_nll_mean"] != summary["target/forget_nll_mean"]
    assert summary["group/train/selected_fraction"] == pytest.approx(0.5)
    # the DrNPO retain loss is the per-sequence sum: far above the token mean of plain NPO
    assert summary["dv/train/retain_loss"] > 3 * summary["plain/train/retain_loss"]


def test_config_variants_and_errors():
    for arg in (
        "tiny",
        "demo",
        "tofu",
        "muse",
        "bench",
        "tofu,loss=simnpo,variant=dv,split=forget05,lr=2e-5",
    ):
        cfg = from_config_dict(_config(arg))
        assert cfg.method == "baldro"
    tofu = from_config_dict(
        _config("tofu,loss=satimp,variants=plain+group,split=forget10,beta_dv=5")
    )
    assert tofu.data.retain_split == "retain90" and tofu.variants == ("plain", "group")
    assert tofu.objective("group").gamma == 0.1 and tofu.objective("plain").beta1 == 5.0
    assert tofu.eval.retain_logs_path.endswith("retain90/TOFU_EVAL.json")
    dv_plus = tofu.objective("dv_softmax")
    assert dv_plus.variant == "dv" and dv_plus.dv_sign == 1
    muse = from_config_dict(_config("muse,corpus=Books"))
    assert muse.model.source == "muse-bench/MUSE-books_target" and muse.eval.retrain_auc == 0.4592
    bad = _config("tiny")
    bad.unlearn.loss = "dpo"
    with pytest.raises(ConfigError, match=r"unlearn\.loss"):
        from_config_dict(bad)
    bad = _config("tiny")
    bad.variants = ("plain", "grp")
    with pytest.raises(ConfigError, match=r"config\.variants"):
        from_config_dict(bad)
    bad = _config("tiny").to_dict()
    bad["optim"]["epochs"] = "ten"
    with pytest.raises(ConfigError, match=r"config\.optim\.epochs"):
        from_config_dict(bad)
    with pytest.raises(ValueError, match="unknown override"):
        _config("tofu,learning_rate=1")


def test_tofu_and_muse_glue_on_local_files(tmp_path):
    from jaxmethods.data.synthetic_authors import synthetic_tofu, write_tofu_folder
    from jaxmethods.methods.baldro.setup import (
        build_tokenizer,
        corpus_texts,
        load_raw,
        load_run_data,
    )

    folder = write_tofu_folder(
        synthetic_tofu(num_authors=20, questions_per_author=2, forget_percent=5), tmp_path / "tofu"
    )
    cfg = from_config_dict(
        _config("tiny,split=forget05").to_dict()
        | {"data": dict(_config("tiny").data.to_dict(), benchmark="tofu", source=str(folder),
                        forget_split="forget05", retain_split="retain95")}
    )  # fmt: skip
    raw = load_raw(cfg, str(tmp_path))
    assert set(raw) == {"forget05", "retain95", "forget05_perturbed", "retain_perturbed",
                        "real_authors_perturbed", "world_facts_perturbed"}  # fmt: skip
    tok = build_tokenizer(cfg, corpus_texts(raw))
    data = load_run_data(cfg, tok, raw)
    assert len(data.forget) == 2 and len(data.retain) == 38 and not data.finetune
    assert all(ex["labels"][-1] == tok.eos_token_id for ex in data.forget)

    root = tmp_path / "muse"
    texts = ["the story of the day " * 6, "a tale of two towns " * 5]
    for config, split, rows in [
        ("raw", "forget", [{"text": texts[0]}]),
        ("raw", "retain1", [{"text": texts[1]}]),
        ("verbmem", "forget", [{"prompt": "the story", "gt": "of the day"}]),
        ("knowmem", "forget_qa", [{"question": "Which day?", "answer": "the day"}]),
        ("knowmem", "forget_qa_icl", [{"question": "Which tale?", "answer": "two towns"}]),
        ("knowmem", "retain_qa", [{"question": "Which tale?", "answer": "two towns"}]),
        ("knowmem", "retain_qa_icl", [{"question": "Which day?", "answer": "the day"}]),
        ("privleak", "forget", [{"text": texts[0]}]),
        ("privleak", "holdout", [{"text": texts[1]}]),
    ]:
        (root / config).mkdir(parents=True, exist_ok=True)
        (root / config / f"{split}.json").write_text("\n".join(json.dumps(r) for r in rows))
    mcfg = _config("tiny").to_dict()
    mcfg["data"] |= {"benchmark": "muse", "source": str(root), "max_length": 16}
    cfg = from_config_dict(mcfg)
    raw = load_raw(cfg, str(tmp_path))
    tok = build_tokenizer(cfg, corpus_texts(raw))
    data = load_run_data(cfg, tok, raw)
    assert len(data.forget) >= 2 and all(len(ex["input_ids"]) <= 16 for ex in data.forget)
    assert "raw/forget" not in data.eval_rows and "privleak/holdout" in data.eval_rows
