"""Self-Selection end to end on the `tiny` config: the summary layout and the four-row table,
the RGP file and its stats, exact resume after a preemption during DPO, the config variants,
and bad configuration values named by field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from configs.selfselect import VARIANTS, get_config
from jaxmethods.methods.selfselect import run
from jaxmethods.methods.selfselect.config import dpo_reference, from_config_dict
from jaxmethods.train.config import ConfigError
from jaxmethods.train.loop import Preempted
from jaxmethods.train.metrics import read_jsonl

ROWS = ("llm_only", "standard_rag", "selfselect", "selfselect_rgp")


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    return workdir, run(get_config("tiny"), str(workdir))


def test_tiny_run_writes_the_table_rgp_file_and_dpo_metrics(straight):
    workdir, s = straight
    assert set(s["tables"]) == {"selfselect", "rgp"}
    for row in ROWS:
        assert 0.0 <= s[f"{row}/acc"] <= 1.0 and s[f"{row}/acc_se"] >= 0.0
    assert "Self-Selection-RGP" in s["tables"]["selfselect"]
    assert s["test/questions"] == 16 and s["rgp/questions"] == 24
    with open(workdir / "rgp.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert sum(r["type"] == "question" for r in rows) == 24
    assert s["rgp/training_pairs"] == s["dpo/pairs"] > 0
    # Step 1 runs at policy = reference: margin 0, loss log 2 (no NLL term in `tiny`).
    assert s["dpo/start_margin"] == pytest.approx(0.0, abs=1e-5)
    assert s["dpo/start_loss"] == pytest.approx(np.log(2.0), abs=1e-5)
    dpo = [r for r in read_jsonl(str(workdir / "dpo" / "metrics.jsonl")) if "rewards/margins" in r]
    assert len(dpo) == s["dpo/steps"] and all(np.isfinite(r["loss"]) for r in dpo)
    preds = json.loads((workdir / "predictions.json").read_text())["test"]
    assert len(preds) == 16 and set(preds[0]["rgp"]) >= {"internal", "external", "final"}


@pytest.mark.slow  # a second and third tiny run, > 40 s on 2 cores
def test_preempted_during_dpo_resumes_to_the_same_result(tmp_path, monkeypatch, straight):
    _, want = straight
    import jaxmethods.train.loop as loop_module

    real, entered = loop_module._SigtermFlag.__enter__, []

    def sigterm_in_the_second_phase(self):
        flag = real(self)
        entered.append(1)
        flag.raised = len(entered) == 2  # pre-training finishes; SIGTERM at DPO's first step
        return flag

    monkeypatch.setattr(loop_module._SigtermFlag, "__enter__", sigterm_in_the_second_phase)
    with pytest.raises(Preempted) as info:
        run(get_config("tiny"), str(tmp_path))
    assert info.value.code == 0 and info.value.step == 1
    monkeypatch.undo()
    got = run(get_config("tiny"), str(tmp_path))
    for key in [f"{r}/acc" for r in ROWS] + ["dpo/end_margin", "rgp/training_pairs"]:
        assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), key


def test_every_variant_builds_and_bad_values_name_the_field():
    for v in VARIANTS:
        cfg = from_config_dict(get_config(v))
        assert cfg.name == f"selfselect_{v}"
    paper = from_config_dict(get_config("nq_mistral_7b,shots=2,retriever=bm25"))
    assert paper.prompts.num_shots == 2 and paper.retrieval.kind == "bm25"
    assert dpo_reference(paper) == "lora_base" and paper.prompts.user_start == "[INST] "
    assert dpo_reference(from_config_dict(get_config("demo,dpo.cache_reference=true"))) == "cached"
    bad = {
        "tiny,retriever=sparse": "config.retrieval.kind",
        "tiny,retriever=dense": "config.retrieval.kind: the synthetic world",
        "tiny,dpo.reference=lora_base": "config.dpo.reference",
        "tiny,rgp.temperature=0": "config.rgp.temperature",
        "nq_llama2_13b,retriever=cached": "config.retrieval.cached_train",
        "nq_llama2_13b,retriever=dense,encoder=": "config.retrieval.encoder",
        "tiny,rgp.paraphrase=true": "config.paraphrase_llm.model",
        "tiny,backend=client": "config.generation.llm.model",
    }
    for arg, field in bad.items():
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            from_config_dict(get_config(arg))


def test_malformed_passage_file_names_file_and_line(tmp_path):
    from jaxmethods.methods.selfselect.config import RetrievalConfig
    from jaxmethods.methods.selfselect.data import build_retriever

    tsv = tmp_path / "psgs.tsv"
    tsv.write_text("id\ttext\ttitle\n1\tParis is in France.\tParis\n2\tno title field\n")
    with pytest.raises(ValueError, match=r"psgs\.tsv:3"):
        build_retriever(RetrievalConfig(kind="bm25", corpus=str(tsv)), "train")
