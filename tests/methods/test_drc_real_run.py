"""DRC / Pigeon on Pigeon's data (`real_run.run_real`): codes-file validation naming the item,
the windows and triplets against the fixture's construction, generations + index (with the
training rows stubbed: fast), resume, token metrics against NumPy loops, the token-level
augmentation against brute-force neighbours, pixel metrics on decoded PNGs, and (slow) the
tiny LM end to end with a `fit`-level resume and the CLI's error for a missing path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_drc_data import _movie_folder, _sticker_folder

from configs.drc import get_config
from jaxmethods.methods.drc import real_eval, real_run
from jaxmethods.methods.drc.config import from_config_dict
from jaxmethods.methods.drc.image_lm import VisualVocab
from jaxmethods.methods.drc.real_eval import token_metrics
from jaxmethods.train.config import ConfigError

C, N = 32, 4  # codebook size, visual ids per image
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(folder: str, codes_file: str, scenario: str = "sticker"):
    c = get_config("tiny")
    c.data.source, c.data.path, c.data.codes_file = "pigeon", folder, codes_file
    c.data.scenario, c.drc.triplet_rule, c.vq.codebook_size = scenario, scenario, C
    c.data.image_size, c.loop.checkpoint_every = 16, 100
    return c


def _sticker(tmp_path, codes=None):
    """The 40-item sticker folder (4 users x 10 stickers: 16 / 2 / 2 windows) + a codes file."""
    (tmp_path / "data").mkdir()
    folder, _ = _sticker_folder(tmp_path / "data", splits=False)
    codes = np.random.default_rng(0).integers(0, C, (40, N)) if codes is None else codes
    path = str(tmp_path / "codes.npy")
    np.save(path, codes)
    return folder, path, codes


def test_windows_and_triplets(tmp_path):
    folder, path, codes = _sticker(tmp_path)
    inp = real_run.real_inputs(from_config_dict(_config(folder, path)))
    for split, n in (("train", 16), ("test", 2)):
        w = inp[split]
        assert w["history"].shape == (n, 5, N) and w["target"].shape == (n, N)
        for i, s in enumerate(inp["data"].splits[split]):  # brute force per window
            np.testing.assert_array_equal(w["history"][i], codes[list(s.history)])
            np.testing.assert_array_equal(w["target"][i], codes[s.target])
    trip = inp["triplets"]
    train_items = {i for s in inp["data"].splits["train"] for i in (*s.history, s.target)}
    assert len(trip) > 0 and set(trip.ravel()) <= train_items
    a, s, m = trip.T  # fixture: user u owns items 10u..10u+9 (theme 100 + u), emotion = iid % 3
    assert np.all(a // 10 == s // 10) and np.all(a % 3 != s % 3)
    assert np.all(a % 3 == m % 3) and np.all(a // 10 != m // 10)


def test_movie_windows(tmp_path):
    folder = _movie_folder(tmp_path, num_users=3, per_user=12)  # 3 x 7 windows: 17 / 2 / 2
    path = str(tmp_path / "codes.npy")
    np.save(path, np.random.default_rng(1).integers(0, C, (36, N)))
    inp = real_run.real_inputs(from_config_dict(_config(folder, path, "movie")))
    assert inp["test"]["history"].shape == (2, 5, N) and len(inp["train"]["target"]) == 17
    a, s, m = inp["triplets"].T  # style = the user (12 items each), semantics = first genre
    assert len(a) and np.all(a // 12 == s // 12) and np.all(a // 12 != m // 12)


def test_bad_codes_name_the_item(tmp_path):
    folder, path, codes = _sticker(tmp_path)
    cfg = from_config_dict(_config(folder, path))
    bad = codes.copy()
    bad[13, 2] = C  # one id outside the codebook
    np.save(path, bad)
    msg = (
        rf"codes\.npy: item 13 \(in \w+ window \d+ \(user 1, genre 101\)\): visual ids \[{C}\] "
        rf"are outside the codebook \[0, {C}\)"
    )
    with pytest.raises(ValueError, match=msg):
        real_run.real_inputs(cfg)
    np.save(path, codes[:35])  # items 35..39 have no row
    msg = r"item 35 \(in .*\) has no row of visual ids: the file has 35 rows"
    with pytest.raises(ValueError, match=msg):
        real_run.real_inputs(cfg)
    np.save(path, np.full((40, N), -1))
    with pytest.raises(ValueError, match=r"item 0 .* has no codes: all 4 ids are outside"):
        real_run.real_inputs(cfg)
    np.savez(str(tmp_path / "c.npz"), codes=codes, aug_codes=codes[:, None, :2])
    cfg_npz = from_config_dict(_config(folder, str(tmp_path / "c.npz")))
    with pytest.raises(ValueError, match=r"'aug_codes' \(40, 1, 2\) must be \[40, A, 4\]"):
        real_run.real_inputs(cfg_npz)
    with pytest.raises(FileNotFoundError, match=r"config\.data\.path: '/nope'"):
        real_run.real_inputs(from_config_dict(_config("/nope", path)))
    with pytest.raises(ConfigError, match=r"config\.drc\.triplet_rule"):
        c = _config(folder, path)
        c.drc.triplet_rule = "labels"
        real_run.real_inputs(from_config_dict(c))


def test_config_and_image_length():
    with pytest.raises(ConfigError, match=r"config\.data\.path"):
        from_config_dict(get_config("sticker"))  # what launch/run.py's validate_config calls
    with pytest.raises(ConfigError, match=r"config\.data\.decoded_dir: only for source pigeon"):
        from_config_dict(get_config("tiny,data.decoded_dir=/x"))
    cfg = from_config_dict(_config("/d", "/c.npy"))
    lm = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=5 * 12 + 2 + 11))
    real_run.check_image_length(10, lm, cfg, "codes.npy")  # exactly fits Pigeon's prompt
    with pytest.raises(ValueError, match=r"codes\.npy: 11 visual ids .* 79 tokens .* 73 positions"):
        real_run.check_image_length(11, lm, cfg, "codes.npy")
    with pytest.raises(ValueError, match=r"257 visual ids per image; .* takes 1\.\.256"):
        real_run.check_image_length(257, lm, cfg, "codes.npy")


def test_token_metrics_against_loops():
    rng = np.random.default_rng(2)
    gen, tgt, ref = (rng.integers(0, C, (3, N)) for _ in range(3))
    hist, feats = rng.integers(0, C, (3, 5, N)), rng.normal(size=(C, 6))
    out = token_metrics(gen, tgt, hist, ref, feats)

    def cos(a, b):
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    for i in range(3):
        f = feats[gen[i]].mean(0)
        same = sum(gen[i, j] == tgt[i, j] for j in range(N))
        assert out["token_acc"][i] == pytest.approx(same / N)
        want = np.mean([cos(f, feats[hist[i, j]].mean(0)) for j in range(5)])
        assert out["hist_cos"][i] == pytest.approx(want, rel=1e-5)
        assert out["ref_cos"][i] == pytest.approx(cos(f, feats[ref[i]].mean(0)), rel=1e-5)


def test_jitter_codes_moves_to_nearest_neighbours():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(C, 5))
    codes = rng.integers(0, C, (50, N))
    f = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    same = real_run.jitter_codes(codes, feats, np.random.default_rng(0), rate=0.0)
    np.testing.assert_array_equal(same, codes)
    moved = real_run.jitter_codes(codes, feats, np.random.default_rng(0), rate=1.0, neighbours=3)
    for c, m in zip(codes.ravel(), moved.ravel()):
        sims = f[c] @ f.T
        sims[c] = -np.inf
        assert m in set(np.argsort(-sims)[:3].tolist())  # brute-force 3 nearest others


def _stub_rows(monkeypatch, calls):
    def row(name):
        def fn(cfg, ctx, inp, workdir):
            calls.append(name)
            rng = np.random.default_rng(len(calls))
            return rng.integers(0, C, inp["test"]["target"].shape).astype(np.int32), {"loss": 1.0}

        return fn

    feats = np.random.default_rng(4).normal(size=(C, 8)).astype(np.float32)
    monkeypatch.setattr(real_run, "ROW_FNS", {"pigeon": row("pigeon"), "drc": row("drc")})
    monkeypatch.setattr(
        real_run.Context, "build",
        classmethod(lambda cls, cfg, codes: cls(None, None, VisualVocab.tiny(C), feats)),
    )  # fmt: skip
    return feats


def test_generations_index_and_resume(tmp_path, monkeypatch):
    calls: list[str] = []
    feats = _stub_rows(monkeypatch, calls)
    folder, path, codes = _sticker(tmp_path)
    work = str(tmp_path / "run")
    s = real_run.run_real(_config(folder, path), work)
    assert calls == ["pigeon", "drc"]
    with open(os.path.join(work, "generations", "index.jsonl")) as f:
        lines = [json.loads(x) for x in f]
    assert len(lines) == 2 == s["test/windows"]
    for i, r in enumerate(lines):  # fixture: user u's stickers 10u..10u+9 in order, theme 100+u
        assert r["i"] == i and r["history"] == list(range(r["target"] - 5, r["target"]))
        assert r["uid"] == r["target"] // 10 and r["gid"] == 100 + r["uid"]
    tgt = codes[[r["target"] for r in lines]]
    for row in ("pigeon", "drc"):
        gen = np.load(os.path.join(work, "generations", f"{row}.npy"))
        assert gen.shape == (2, N) and gen.min() >= 0 and gen.max() < C
        assert s[f"{row}/token_acc"] == pytest.approx(np.mean(gen == tgt))
        f_gen, f_t = feats[gen].mean(1), feats[tgt].mean(1)
        cos = np.sum(f_gen * f_t, 1) / np.linalg.norm(f_gen, axis=1) / np.linalg.norm(f_t, axis=1)
        assert s[f"{row}/ref_cos"] == pytest.approx(cos.mean(), rel=1e-5)
        assert s[f"{row}/loss"] == 1.0
    assert s["target/token_acc"] == 1.0 and "await decoding" in s["pixel_metrics/status"]
    again = real_run.run_real(_config(folder, path), work)  # resumes: nothing is redone
    assert calls == ["pigeon", "drc"] and again["drc/token_acc"] == s["drc/token_acc"]
    c = _config(folder, path)
    c.seed = 1
    real_run.run_real(c, work)  # another config: redone
    assert calls == ["pigeon", "drc", "pigeon", "drc"]


def _decoded_world(tmp_path, monkeypatch):
    """Stickers that are all one 16 px image; the pigeon row decoded as copies of it."""
    from PIL import Image

    _stub_rows(monkeypatch, [])
    folder, path, _ = _sticker(tmp_path)
    os.makedirs(os.path.join(folder, "t"))
    img = np.random.default_rng(5).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    for i in range(40):  # all_image_paths.npy: t/<i>.png under the data folder
        Image.fromarray(img).save(os.path.join(folder, "t", f"{i}.png"))
    work = str(tmp_path / "run")
    os.makedirs(os.path.join(work, "decoded", "pigeon"))
    for i in range(2):
        Image.fromarray(img).save(os.path.join(work, "decoded", "pigeon", f"{i}.png"))
    return folder, path, work


def test_pixel_metrics_wiring(tmp_path, monkeypatch):
    folder, path, work = _decoded_world(tmp_path, monkeypatch)
    seen = []

    def fake_metrics(gen, hist, tgt, **kw):
        seen.append((gen, hist, tgt, kw))
        return {"hist_ssim": 0.5}, ["CLIP skipped"]

    monkeypatch.setattr(real_eval, "pixel_metrics", fake_metrics)
    monkeypatch.setattr(real_eval, "metric_models", lambda: "models")
    s = real_run.run_real(_config(folder, path), work)
    assert s["pigeon/pixel/hist_ssim"] == 0.5 and "drc/pixel/hist_ssim" not in s
    assert "| CLIP skipped" in s["pixel_metrics/status"]
    ((gen, hist, tgt, kw),) = seen  # only the decoded row is scored
    with open(os.path.join(work, "generations", "index.jsonl")) as f:
        lines = [json.loads(x) for x in f]
    t = os.path.join(folder, "t")
    assert gen == [os.path.join(work, "decoded", "pigeon", f"{i}.png") for i in range(2)]
    assert hist == [[os.path.join(t, f"{h}.png") for h in r["history"]] for r in lines]
    assert tgt == [os.path.join(t, f"{r['target']}.png") for r in lines]
    assert kw["target_texts"] == [f"cap {r['target']}" for r in lines]
    assert kw["history_texts"][1] == [f"cap {h}" for h in lines[1]["history"]]
    assert kw["size"] == 16 and kw["models"] == "models"


@pytest.mark.slow
def test_pixel_metrics_on_decoded_pngs(tmp_path, monkeypatch):
    folder, path, work = _decoded_world(tmp_path, monkeypatch)
    s = real_run.run_real(_config(folder, path), work)
    assert s["pigeon/pixel/hist_ssim"] == pytest.approx(1.0, abs=1e-5)  # identical images
    assert "drc/pixel/hist_ssim" not in s
    status = s["pixel_metrics/status"]
    assert "drc: pixel metrics await decoding (2 of 2" in status
    assert "CLIP score, CLIP image score" in status and "MS-SSIM skipped" in status


@pytest.mark.slow
def test_tiny_lm_end_to_end_and_fit_resume(tmp_path):
    folder, path, _ = _sticker(tmp_path)
    work = str(tmp_path / "run")
    s = real_run.run_real(_config(folder, path), work)
    gens = {r: np.load(os.path.join(work, "generations", f"{r}.npy")) for r in ("pigeon", "drc")}
    for gen in gens.values():
        assert gen.shape == (2, N) and gen.min() >= 0 and gen.max() < C  # visual ids only
    assert np.isfinite(s["pigeon/dpo_loss"]) and np.isfinite(s["drc/stage2_loss"])

    def log(phase):
        with open(os.path.join(work, phase, "metrics.jsonl")) as f:
            return f.read()

    logs = {p: log(p) for p in ("pigeon_sft", "pigeon_dpo", "drc_stage1", "drc_stage2")}
    for row in ("pigeon", "drc"):  # forget the generations: the rerun goes through `fit` again
        os.remove(os.path.join(work, "generations", f"{row}.json"))
    real_run.run_real(_config(folder, path), work)
    for p, text in logs.items():  # every phase restored its final checkpoint: no new steps
        assert log(p) == text, p
    for r, gen in gens.items():  # greedy decoding from the restored weights
        np.testing.assert_array_equal(np.load(os.path.join(work, "generations", f"{r}.npy")), gen)


@pytest.mark.slow
def test_cli_missing_path_is_a_config_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "launch/run.py"), "--config",
         os.path.join(ROOT, "configs/drc.py:sticker"), "--workdir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "ConfigError: config.data.path / config.data.codes_file: required" in proc.stderr
