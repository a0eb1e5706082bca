"""FinTMMBench end to end (`configs/fintmm.py:tiny` on the synthetic corpus), the config checks,
the report with an LLM judge, and the template generator on gold retrieval."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from configs.fintmm import VARIANTS, get_config
from jaxmethods.llm import FunctionClient
from jaxmethods.methods import get_method
from jaxmethods.methods.fintmm.config import from_config_dict
from jaxmethods.methods.fintmm.records import QAItem, TimeSpan
from jaxmethods.methods.fintmm.report import SystemRun, build_report, granularity
from jaxmethods.train.config import ConfigError

SYSTEMS = "bm25+tmmhybridrag+-raw+-temporal"


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """A workdir holding the tiny synthetic corpus (`<workdir>/data`; half a year, no charts:
    faster than the variant's own), which the runs below read instead of writing theirs."""
    from jaxmethods.methods.fintmm.synthetic import make_synthetic_corpus

    workdir = tmp_path_factory.mktemp("fintmm_tiny")
    c = get_config("tiny")
    make_synthetic_corpus(workdir / "data", seed=c.data.seed, tickers=c.data.tickers,
                          qa_per_kind=c.data.qa_per_kind, charts="none",
                          end="2022-06-30")  # fmt: skip
    return str(workdir)


def _rows(workdir):
    with open(os.path.join(workdir, "predictions.json")) as f:
        return json.load(f)["questions"]


def test_tiny_end_to_end(corpus_dir, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(corpus_dir, workdir)
    config = get_config(f"tiny,systems={SYSTEMS},plot=False")  # the chart: test_fintmm_metrics
    s = get_method("fintmm")(config, workdir)
    rows = _rows(workdir)
    n = int(s["data/questions"])
    assert n == len(rows) >= 15
    for system in SYSTEMS.split("+"):
        for m in ("em", "f1", "acc", "source_recall"):
            assert 0.0 <= s[f"{system}/{m}"] <= 100.0 and s[f"{system}/{m}_se"] >= 0.0
        # EM recomputed from the predictions: the template answers are exact strings.
        em = 100.0 * np.mean([r[system]["prediction"] == r["answer"] for r in rows])
        assert s[f"{system}/em"] == pytest.approx(em)
        recall = [len(r[system]["gold_sources_retrieved"]) / len(r["sources"]) for r in rows]
        assert s[f"{system}/source_recall"] == pytest.approx(100.0 * np.mean(recall))
    assert s["-raw/source_recall"] == 0.0
    # The demo's claim in miniature: the temporal hybrid beats the lexical baseline.
    assert s["tmmhybridrag/acc"] > s["bm25/acc"]
    assert s["tmmhybridrag/source_recall"] > s["-temporal/source_recall"]
    assert "TMMHybridRAG" in s["tables"]["fintmm"] and "± " in s["tables"]["fintmm"]
    assert set(s["tables"]) == {"fintmm", "by_window", "by_task", "by_modality",
                                "by_granularity"}  # fmt: skip
    assert "acc_by_modality" not in s["artifacts"]  # plot=False
    assert s["kg/entities"] > 0 and s["kg/relations/next_trading_day"] > 0
    # a rerun in the same workdir reads the corpus back and gives the same numbers
    again = get_method("fintmm")(get_config("tiny,systems=bm25,plot=False"), workdir)
    assert again["bm25/acc"] == s["bm25/acc"] and again["data/questions"] == n


def test_template_generator_on_gold_retrieval(corpus_dir):
    """With exactly the gold source records retrieved, the template reader answers every
    non-chart question as the benchmark's gold (computed independently by the QA generator)."""
    from jaxmethods.methods.fintmm.loaders import load_corpus
    from jaxmethods.methods.fintmm.retrieve import Retrieved
    from jaxmethods.methods.fintmm.template_reader import TemplateGenerator

    corpus = load_corpus(os.path.join(corpus_dir, "data"))
    by_uuid = corpus.by_uuid()
    gen = TemplateGenerator(corpus.companies, sorted({d.indicator for d in corpus.data}))
    qa = [q for q in corpus.qa if q.modality != "Chart"]
    gold = gen([Retrieved(q.question, raw=[by_uuid[u] for u in q.sources]) for q in qa])
    wrong = [(q.question, q.answer, g.answer) for q, g in zip(qa, gold) if g.answer != q.answer]
    assert not wrong
    empty = gen([Retrieved(q.question) for q in qa])
    assert sum(g.answer == q.answer for q, g in zip(qa, empty)) <= len(qa) // 4


def test_report_with_judge_and_granularity():
    day, q1 = TimeSpan.quarter(2022, 1), None
    qs = [
        QAItem("a", "q a?", "10", "IE", "Price", ("u1",), TimeSpan(day.start, day.start)),
        QAItem("b", "q b?", "Yes", "LR", "Table", ("u2", "u3"), day),
        QAItem("c", "q c?", "AAPL", "CP", "Price", (), q1),
    ]
    runs = {"x": SystemRun("x", ["10", "no", "AAPL stock"], [{"u1"}, {"u2"}, set()], 1.0)}
    judge = FunctionClient(lambda req: "true" if "Predicted answer: 10" in req.messages[-1]["content"]
                           else "false")  # fmt: skip
    rep = build_report(qs, runs, judge=judge)
    m = rep.metrics
    assert m["x/em"] == pytest.approx(100 / 3) and m["x/acc"] == pytest.approx(200 / 3)
    assert m["x/judge_acc"] == pytest.approx(100 / 3)
    se = np.std([1, 0, 0], ddof=1) / np.sqrt(3) * 100
    assert m["x/em_se"] == pytest.approx(se)
    assert m["x/source_recall"] == pytest.approx(75.0)  # (1 + 1/2) / 2 questions with sources
    assert "LLM-judge %" in rep.tables["fintmm"]
    assert m["x/granularity/quarter/acc"] == 0.0 and m["x/granularity/none/acc"] == 100.0
    assert m["x/window/day/acc"] == 100.0 and m["x/window/quarter_year/acc"] == 0.0
    assert "| quarter/year (n=1) |" in rep.tables["by_window"]
    assert [granularity(t) for t in (TimeSpan.year(2022), TimeSpan.iso_week(2022, 3),
            TimeSpan.month(2022, 2), None)] == ["year", "week", "month", "none"]  # fmt: skip


def test_config_variants_and_errors():
    assert VARIANTS == ("tiny", "demo", "paper", "bench")
    for v in ("tiny", "demo", "bench"):
        from_config_dict(get_config(v))
    with pytest.raises(ConfigError, match=r"config\.data\.root"):
        from_config_dict(get_config("paper"))
    paper = from_config_dict(get_config("paper,root=/data/FinTMMBench"))
    assert paper.index.encoder == "openai:text-embedding-3-small"
    assert paper.generation.llm.model == paper.judge.model == "gpt-4o-mini"
    assert paper.kg.graph_store == "kuzu" and paper.retrieval.keywords == "llm"
    with pytest.raises(ConfigError, match=r"config\.systems"):
        from_config_dict(get_config("tiny,systems=bm25+graphrag"))
    with pytest.raises(ConfigError, match=r"config\.generation\.llm\.model"):
        from_config_dict(get_config("tiny,generator=llm"))
    with pytest.raises(ConfigError, match=r"config\.kg\.graph_store"):
        from_config_dict(get_config("tiny,graph=milvus"))
    # the context budget: LightRAG's defaults, 0 = none, negative refused
    demo = from_config_dict(get_config("demo"))
    assert (demo.retrieval.entity_tokens, demo.retrieval.relation_tokens,
            demo.retrieval.raw_tokens) == (4000, 4000, 4000)  # fmt: skip
    assert (
        demo.data.full_statements and not from_config_dict(get_config("tiny")).data.full_statements
    )
    off = from_config_dict(get_config("tiny,raw_tokens=0,entity_tokens=0,relation_tokens=0"))
    assert off.retrieval.budget() is None and demo.retrieval.budget().raw_tokens == 4000
    with pytest.raises(ConfigError, match=r"config\.retrieval\.raw_tokens"):
        from_config_dict(get_config("tiny,raw_tokens=-1"))


def test_subword_hashing_encoder():
    """`index.tokens=subword`: dates and decimals are split into their pieces (the word
    default keeps "2022-03-15" whole), so nearby dates share most features."""
    import zlib

    from jaxmethods.methods.fintmm.run import make_encoder

    enc = make_encoder(from_config_dict(get_config("demo,index.dim=64")), None)
    text = "AAPL 2022-03-15 close 150.25"
    pieces = ["aapl", "2022", "03", "15", "close", "150", "25"]
    bigrams = ["aapl 2022", "2022 03", "03 15", "15 close", "close 150", "150 25"]
    assert enc.features(text) == pieces + bigrams
    row = np.zeros(64)
    for f in enc.features(text):
        row[zlib.crc32(f.encode()) % 64] += 1.0
    row = np.where(row > 0, 1 + np.log(np.maximum(row, 1)), 0)
    np.testing.assert_allclose(enc.embed([text])[0], row / np.linalg.norm(row), rtol=1e-5)
    word = make_encoder(from_config_dict(get_config("tiny,index.dim=4096")), None)
    sub = make_encoder(from_config_dict(get_config("demo,index.dim=4096")), None)
    a, b = "AAPL 2022-03-15", "AAPL 2022-03-16"
    cos = {name: float(e.embed([a])[0] @ e.embed([b])[0]) for name, e in (("w", word), ("s", sub))}
    assert cos["s"] > 0.5 > cos["w"]


def test_llm_backends_wiring(corpus_dir, tmp_path, monkeypatch):
    """keywords, generation and judge through `jaxmethods.llm.make_client` (a FunctionClient
    here): the prompts reach the client, the answers are parsed, the judge is scored."""
    import re

    import jaxmethods.llm as llm

    seen = {"keywords": 0, "generate": 0, "judge": 0}

    def answer(req):
        text = req.messages[-1]["content"]
        if "---Real data---" in text:
            seen["keywords"] += 1
            q = text.split("---Real data---")[1]
            low = re.findall(r"[A-Z]{2,5}\b|\d{4}-\d{2}-\d{2}", q)
            return json.dumps({"high_level_keywords": ["price"], "low_level_keywords": low})
        if "---Raw records---" in text:
            seen["generate"] += 1
            return "Step 1: read the rows.\nFinal answer: **42**."
        seen["judge"] += 1
        return "true" if "Predicted answer: 42" in text else "false"

    made = []

    def fake_make_client(cfg):
        made.append(cfg)
        return FunctionClient(answer, model=cfg.model, cache_dir=cfg.cache_dir)

    monkeypatch.setattr(llm, "make_client", fake_make_client)
    workdir = str(tmp_path / "run")
    shutil.copytree(corpus_dir, workdir)
    config = get_config("tiny,systems=tmmhybridrag,plot=False,questions=4,keywords=llm,"
                        "generator=llm,llm_model=gen-model,judge_model=judge-model")  # fmt: skip
    config.retrieval.keywords_llm.model = "kw-model"
    s = get_method("fintmm")(config, workdir)
    assert seen == {"keywords": 4, "generate": 4, "judge": 4}
    assert {c.model for c in made} == {"kw-model", "gen-model", "judge-model"}
    assert all(c.cache_dir == os.path.join(workdir, "llm_cache") for c in made)
    assert s["tmmhybridrag/judge_acc"] == 100.0 and s["tmmhybridrag/em"] == 0.0
    assert all(r["tmmhybridrag"]["prediction"] == "42" for r in _rows(workdir))
    assert "LLM-judge %" in s["tables"]["fintmm"]


def test_openai_embedder_and_cache(tmp_path, monkeypatch):
    """`index.encoder=openai:<model>`: batched requests, rows put back in input order; the
    passage cache answers a repeated corpus from disk."""
    import types

    import openai

    from jaxmethods.methods.fintmm.run import CachedEncoder, OpenAIEmbedder

    calls = []

    class FakeOpenAI:
        def __init__(self, api_key, base_url):
            assert api_key == "sk-test" and base_url == "http://x/v1"
            self.embeddings = types.SimpleNamespace(create=self.create)

        def create(self, model, input):
            calls.append((model, list(input)))
            rows = [types.SimpleNamespace(index=i, embedding=[float(len(t)), 1.0])
                    for i, t in enumerate(input)]  # fmt: skip
            return types.SimpleNamespace(data=rows[::-1])  # out of order on purpose

    monkeypatch.setattr(openai, "OpenAI", FakeOpenAI)
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    enc = OpenAIEmbedder("text-embedding-3-small", base_url="http://x/v1", api_key_env="FAKE_KEY")
    out = enc.embed(["a", "bbb", "cc"], batch_size=2)
    np.testing.assert_array_equal(out, [[1, 1], [3, 1], [2, 1]])
    assert [len(x) for _, x in calls] == [2, 1] and calls[0][0] == "text-embedding-3-small"
    cached = CachedEncoder(enc, str(tmp_path / "emb"))
    first = cached.embed_passages(["a", "bbb"])
    n = len(calls)
    np.testing.assert_array_equal(cached.embed_passages(["a", "bbb"]), first)
    assert len(calls) == n  # from disk
    monkeypatch.delenv("FAKE_KEY")
    with pytest.raises(ValueError, match="FAKE_KEY"):
        OpenAIEmbedder("m", api_key_env="FAKE_KEY")
