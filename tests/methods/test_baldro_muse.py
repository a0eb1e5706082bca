"""BalDRO on MUSE: the SatImp family's gamma, and BOS + max_length tokens for the training
chunks and the privleak texts (issue #11.3, #11.4)."""

import importlib.util
import json
import os

import numpy as np
import pytest

from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.eval import muse_eval
from jaxmethods.methods.baldro.config import from_config_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(arg):
    spec = importlib.util.spec_from_file_location("baldro_cfg", f"{ROOT}/configs/baldro.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg)


@pytest.mark.parametrize("variant", ["plain", "group", "dv"])
def test_satimp_gamma_is_1_on_muse_and_0_1_on_tofu(variant):
    muse = from_config_dict(_config(f"muse,loss=satimp,variant={variant},corpus=Books"))
    tofu = from_config_dict(_config(f"tofu,loss=satimp,variant={variant}"))
    assert muse.objective(variant).gamma == 1.0 and tofu.objective(variant).gamma == 0.1
    assert (muse.train.micro_batch_size, muse.optim.grad_accum) == (4, 8)
    assert (tofu.train.micro_batch_size, tofu.optim.grad_accum) == (4, 8)
    # TOFU's gibberish metric as in the authors' configs/eval/tofu.yaml; MUSE has none
    assert tofu.eval.gibberish_classifier.startswith("madhurjindal/autonlp-Gibberish-Detector")
    assert muse.eval.gibberish_classifier == ""
    # an explicit gamma still wins, in either order
    for arg in ("muse,loss=satimp,gamma=0.5", "muse,gamma=0.5,loss=satimp"):
        assert from_config_dict(_config(arg)).unlearn.gamma == 0.5


TEXTS = ["the story of the day in the town " * 4, "a tale of two towns and a day " * 4]
TOK = build_tiny_tokenizer(TEXTS, vocab_size=120)


def test_privleak_scores_bos_plus_length_tokens(monkeypatch):
    seen = []

    def fake_stats(model, examples, *, batch_size, length, pad_id, min_k=None, **kw):
        seen.append((examples, length))
        return {"min_k": np.arange(len(examples), dtype=float)}

    monkeypatch.setattr(muse_eval, "sequence_statistics", fake_stats)
    s = muse_eval.MuseEvalSettings(batch_size=2, length=6)
    muse_eval.min_k_auc(None, TOK, [{"text": TEXTS[0]}], [{"text": TEXTS[1]}], s)
    for (examples, length), text in zip(seen, TEXTS):
        want = TOK(text, add_special_tokens=True)["input_ids"][: 1 + 6]  # BOS + 6, as the authors
        assert examples[0]["input_ids"] == want and len(want) == 7
        assert examples[0]["labels"] == [-100, *want[1:]]
        assert length == 7


def test_muse_training_rows_hold_bos_plus_max_length(tmp_path):
    from jaxmethods.methods.baldro.assets import (
        build_tokenizer,
        corpus_texts,
        load_raw,
        load_run_data,
    )

    root = tmp_path / "muse"
    rows = {
        ("raw", "forget"): [{"text": TEXTS[0]}],
        ("raw", "retain1"): [{"text": TEXTS[1]}],
        ("verbmem", "forget"): [{"prompt": "the story", "gt": "of the day"}],
        ("knowmem", "forget_qa"): [{"question": "Which day?", "answer": "the day"}],
        ("knowmem", "forget_qa_icl"): [{"question": "Which tale?", "answer": "two towns"}],
        ("knowmem", "retain_qa"): [{"question": "Which tale?", "answer": "two towns"}],
        ("knowmem", "retain_qa_icl"): [{"question": "Which day?", "answer": "the day"}],
        ("privleak", "forget"): [{"text": TEXTS[0]}],
        ("privleak", "holdout"): [{"text": TEXTS[1]}],
    }
    for (config, split), rs in rows.items():
        (root / config).mkdir(parents=True, exist_ok=True)
        (root / config / f"{split}.json").write_text("\n".join(json.dumps(r) for r in rs))
    c = _config("tiny").to_dict()
    c["data"] |= {"benchmark": "muse", "source": str(root), "max_length": 8}
    cfg = from_config_dict(c)
    assert cfg.data.sequence_length == 9
    raw = load_raw(cfg, str(tmp_path))
    tok = build_tokenizer(cfg, corpus_texts(raw))
    data = load_run_data(cfg, tok, raw)
    lengths = [len(ex["input_ids"]) for ex in data.forget + data.retain]
    assert max(lengths) == 9 and all(ex["input_ids"][0] == tok.bos_token_id for ex in data.forget)
    assert "raw/forget" not in data.eval_rows and "privleak/holdout" in data.eval_rows
