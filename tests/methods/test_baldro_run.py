"""BalDRO end to end: the `tiny` config through launch/run.py, resume after SIGTERM, and the
config's variants, overrides and errors."""

import importlib.util
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from jaxmethods.eval.unlearning import MODEL_UTILITY_KEYS, write_truth_ratio_log
from jaxmethods.methods.baldro.config import from_config_dict
from jaxmethods.train.config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _module():
    spec = importlib.util.spec_from_file_location("baldro_cfg", f"{ROOT}/configs/baldro.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _config(arg="tiny"):
    return _module().get_config(arg)


@pytest.mark.slow
def test_tiny_runs_through_launch(tmp_path):
    retain_tr = np.array([0.3, 0.9, 1.4, 0.6])
    retain_log = tmp_path / "TOFU_EVAL.json"
    write_truth_ratio_log(retain_log, retain_tr)
    workdir = tmp_path / "run"
    cmd = [
        sys.executable, f"{ROOT}/launch/run.py", "--config", f"{ROOT}/configs/baldro.py:tiny",
        "--workdir", str(workdir), f"--config.eval.retain_logs_path={retain_log}",
    ]  # fmt: skip
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert "NPO + BalDRO-G" in summary["tables"]["baldro"]
    assert os.path.exists(summary["artifacts"]["curves"])
    for name in ("target", "npo_plain", "npo_group", "npo_dv"):
        key = "target/truth_ratios" if name == "target" else f"{name}/truth_ratios"
        with open(summary["artifacts"][key]) as f:
            tr = json.load(f)
        # forget quality against scipy's two-sample KS test on the saved truth ratios
        want = stats.ks_2samp(tr, retain_tr).pvalue
        assert summary[f"forget10/{name}/forget_quality"] == pytest.approx(want, rel=1e-12)
        parts = [summary[f"forget10/{name}/{k}"] for k in MODEL_UTILITY_KEYS]
        mu = 0.0 if min(parts) == 0 else stats.hmean(parts)
        assert summary[f"forget10/{name}/model_utility"] == pytest.approx(mu)
    for name in ("npo_plain", "npo_group", "npo_dv"):
        rows = [json.loads(x) for x in (workdir / name / "metrics.jsonl").read_text().splitlines()]
        evals = [r for r in rows if "eval/forget_quality" in r]
        # 4 forget items in batches of 4: one step per epoch, evaluated at 0 and each epoch end
        assert [(r["step"], r["eval/epoch"]) for r in evals] == [(0, 0.0), (1, 1.0), (2, 2.0)]
        assert evals[0]["eval/forget_quality"] == summary["forget10/target/forget_quality"]
        assert evals[-1]["eval/forget_quality"] == summary[f"forget10/{name}/forget_quality"]
        assert summary[f"forget10/{name}/train/steps"] == 2
        assert (
            summary[f"forget10/{name}/forget_nll_mean"]
            != summary["forget10/target/forget_nll_mean"]
        )
    assert summary["forget10/npo_group/train/selected_fraction"] == pytest.approx(0.5)
    # the DrNPO retain loss is the per-sequence sum: far above the token mean of plain NPO
    assert (
        summary["forget10/npo_dv/train/retain_loss"]
        > 3 * summary["forget10/npo_plain/train/retain_loss"]
    )
    assert (workdir / "npo_dv" / "checkpoints").is_dir()  # checkpoints are on by default


def _resume_config(tmp_path):
    c = _config("tiny,variant=plain+dv,epochs=4")
    c.eval.update(with_rouge=False, every_epoch=False, plot=False)
    c.loop.log_every = 1
    retain_log = tmp_path / "TOFU_EVAL.json"
    write_truth_ratio_log(retain_log, np.array([0.3, 0.9, 1.4, 0.6]))
    c.eval.retain_logs_path = str(retain_log)
    return c


def _comparable(summary):
    return {k: v for k, v in summary.items()
            if k not in ("tables", "artifacts") and "per_s" not in k}  # fmt: skip


@pytest.mark.slow
def test_sigterm_mid_unlearning_then_rerun_matches_uninterrupted(tmp_path, monkeypatch):
    from jaxmethods.methods.baldro import phases
    from jaxmethods.methods.baldro.run import run
    from jaxmethods.train.loop import Preempted

    config = _resume_config(tmp_path)
    want = run(config, str(tmp_path / "whole"))

    real_stream, calls = phases.forget_retain_stream, []

    class SigtermAfter:
        """The dv phase's stream; SIGTERM arrives while step 2 runs."""

        def __init__(self, stream, n):
            self.stream, self.n, self.seen = stream, n, 0

        def __next__(self):
            self.seen += 1
            if self.seen == self.n:
                os.kill(os.getpid(), signal.SIGTERM)
            return next(self.stream)

        def get_state(self):
            return self.stream.get_state()

        def set_state(self, state):
            self.stream.set_state(state)

    def patched(*args, **kwargs):
        calls.append(1)
        stream = real_stream(*args, **kwargs)
        return SigtermAfter(stream, 2) if len(calls) == 2 else stream

    monkeypatch.setattr(phases, "forget_retain_stream", patched)
    workdir = tmp_path / "preempted"
    with pytest.raises(Preempted) as stop:
        run(config, str(workdir))
    assert stop.value.step == 2 and stop.value.code == 0
    assert (workdir / "npo_plain" / "phase_done.json").exists()
    assert not (workdir / "npo_dv" / "phase_done.json").exists()
    monkeypatch.setattr(phases, "forget_retain_stream", real_stream)
    got = run(config, str(workdir))
    assert len(calls) == 2  # the finished plain phase was skipped, not rerun
    rows = [json.loads(x) for x in (workdir / "npo_dv" / "metrics.jsonl").read_text().splitlines()]
    # one training row per step: the rerun logged steps 3 and 4 after the saved step 2
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert _comparable(got) == pytest.approx(_comparable(want), rel=1e-6)


def test_config_variants_overrides_and_errors():
    for arg in ("tiny", "demo", "tofu", "muse", "bench",
                "tofu,loss=simnpo,variant=dv,split=forget05,lr=2e-5"):  # fmt: skip
        assert from_config_dict(_config(arg)).method == "baldro"
    tofu = from_config_dict(
        _config("tofu,loss=satimp,variant=plain+group,split=forget10,beta_dv=5")
    )
    assert tofu.data.retain_split == "retain90" and tofu.variants == ("plain", "group")
    assert tofu.objective("group").gamma == 0.1 and tofu.objective("plain").beta_dv == 5.0
    assert tofu.eval.retain_logs_path.endswith("retain90/TOFU_EVAL.json")
    assert tofu.loop.checkpoint_every > 0  # every phase checkpoints by default
    dv_plus = tofu.objective("dv_softmax")
    assert dv_plus.variant == "dv" and dv_plus.dv_sign == 1
    # `loss=` is a preset: it never discards a method argument given before or after it
    a = from_config_dict(_config("tofu,loss=npo,beta_dv=2,lr=3e-5"))
    b = from_config_dict(_config("tofu,beta_dv=2,lr=3e-5,loss=npo"))
    assert a == b and a.unlearn.beta_dv == 2.0 and a.optim.lr == 3e-5
    muse = from_config_dict(_config("muse,corpus=Books"))
    assert muse.model.source == "muse-bench/MUSE-books_target" and muse.eval.retrain_auc == 0.4592
    assert muse.data.split_name == "books" and muse.phase_name("group") == "npo_group"
    bad = _config("tiny")
    bad.unlearn.loss = "dpo"
    with pytest.raises(ConfigError, match=r"unlearn\.loss"):
        from_config_dict(bad)
    bad = _config("tiny")
    bad.variants = ("plain", "grp")
    with pytest.raises(ConfigError, match=r"config\.variants"):
        from_config_dict(bad)
    bad = _config("tiny").to_dict()
    bad["train"]["epochs"] = "ten"
    with pytest.raises(ConfigError, match=r"config\.train\.epochs"):
        from_config_dict(bad)
    with pytest.raises(ValueError, match=r"unknown key 'learn_rate'.*known keys: .*lr"):
        _config("tofu,learn_rate=1")
    with pytest.raises(ValueError, match=r"loss=dpo.*unknown loss 'dpo'"):
        _config("tofu,loss=dpo")


def test_grids_follow_the_authors_scripts():
    mod = _module()
    g = mod.GRIDS
    # MUSE NPO and GroupNPO sweep alpha; TOFU SatImp runs at batch 4 with GA 8
    assert g["muse"]["npo_plain"]["alpha"] == g["muse"]["npo_group"]["alpha"] == (1, 2, 5, 10)
    assert g["tofu"]["satimp_group"]["bs_ga"] == g["tofu"]["satimp_dv"]["bs_ga"] == ((4, 8),)
    # grid sizes = the products of each script's loops
    sizes = {("tofu", "npo_plain"): 3 * 5 * 2 * 2, ("tofu", "npo_dv"): 5 * 2 * 2 * 5,
             ("tofu", "simnpo_plain"): 3 * 3 * 2 * 2 * 2 * 2, ("tofu", "satimp_group"): 3 * 3 * 3 * 2,
             ("muse", "npo_plain"): 2 * 5 * 4, ("muse", "simnpo_dv"): 2 * 3 * 2 * 2 * 2 * 5,
             ("muse", "satimp_dv"): 2 * 5 * 2 * 5}  # fmt: skip
    for (bench, name), n in sizes.items():
        assert len(mod.grid_args(bench, name)) == n, (bench, name)
    # every grid point is a valid run config with the point's values
    for bench, scripts in g.items():
        for name in scripts:
            arg = mod.grid_args(bench, name)[-1]
            cfg = from_config_dict(mod.get_config(arg))
            loss, _, variant = name.rpartition("_")
            assert cfg.unlearn.loss == loss and cfg.variants == (variant,)
            bs, ga = scripts[name]["bs_ga"][-1]
            assert (cfg.train.micro_batch_size, cfg.optim.grad_accum) == (bs, ga)
            if loss == "satimp":
                assert cfg.unlearn.gamma == (1.0 if bench == "muse" else 0.1)


def test_tofu_glue_on_local_files(tmp_path):
    from jaxmethods.data.synthetic_authors import synthetic_tofu, write_tofu_folder
    from jaxmethods.methods.baldro.assets import (
        build_tokenizer,
        corpus_texts,
        load_raw,
        load_run_data,
    )

    folder = write_tofu_folder(
        synthetic_tofu(num_authors=20, questions_per_author=2, forget_percent=5), tmp_path / "tofu"
    )
    c = _config("tiny,split=forget05").to_dict()
    c["data"] |= {"benchmark": "tofu", "source": str(folder)}
    cfg = from_config_dict(c)
    raw = load_raw(cfg, str(tmp_path))
    assert set(raw) == {"forget05", "retain95", "forget05_perturbed", "retain_perturbed",
                        "real_authors_perturbed", "world_facts_perturbed"}  # fmt: skip
    tok = build_tokenizer(cfg, corpus_texts(raw))
    data = load_run_data(cfg, tok, raw)
    assert len(data.forget) == 2 and len(data.retain) == 38 and not data.finetune
    assert all(ex["labels"][-1] == tok.eos_token_id for ex in data.forget)
    assert cfg.data.sequence_length == cfg.data.max_length  # TOFU rows include their BOS
