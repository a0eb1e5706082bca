"""Self-Selection pieces without a model: prompts, the three-prompt pipeline over a scripted
generator, retrieval glue (an empty result still builds the RAG prompt), the RGP invariants,
augmentations and their stats, balancing, paraphrase through the LLM client, and an RGP build
that fails mid-way, keeps every finished row and resumes."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from jaxmethods.llm import FunctionClient
from jaxmethods.methods.selfselect.pipeline import ClientGenerator, QAItem, retrieve, self_select
from jaxmethods.methods.selfselect.prompts import PromptConfig, Shot, render
from jaxmethods.methods.selfselect.rgp import (
    RGPConfig,
    build_question_rows,
    build_rgp,
    read_rgp,
    training_pairs,
)
from jaxmethods.retrieval.docstore import DocStore, Passage

P = PromptConfig()
ITEM = QAItem("q1", "Where is the Louvre?", ["Paris"], [("Louvre", "The Louvre is in Paris."),
                                                        ("Rome", "Rome is in Italy.")])  # fmt: skip


def responses(prompt: str) -> list[str]:
    """The candidate answers shown in a selection prompt, in display order."""
    return re.findall(r"Response \d+: (.*)", prompt)


def test_prompts_render_fields_shots_and_empty_passages():
    cb = render("closed_book", P, "Who?")
    assert cb.endswith("Question: Who?\nAnswer:")
    rag = render("rag", P, "Who?", [("T", "text one"), ("", "text two")])
    assert "Passage 1: T text one\nPassage 2: text two\nQuestion: Who?" in rag
    empty = render("rag", P, "Who?", [])
    assert "Passage" not in empty and "Question: Who?" in empty
    sel = render("select", P, "Who?", [("", "x")], ["A", "B"])
    assert responses(sel) == ["A", "B"] and sel.endswith("Final answer:")
    shot = Shot("Q0?", "A0", (("", "p0"),), ("A0", "W"))
    two = render("select", P, "Who?", [("", "x")], ["A", "B"], shots=[shot])
    assert two.startswith(P.select.split("{")[0]) and "Question: Q0?" in two
    assert two.index("Final answer: A0\n\n") < two.index("Question: Who?")
    chat = PromptConfig(user_start="[INST] ", user_end=" [/INST]")
    assert render("closed_book", chat, "Who?").startswith("[INST] Answer")
    with pytest.raises(ValueError, match="two candidate answers"):
        render("select", P, "Who?", [], ["A"])


def test_pipeline_three_prompts_and_empty_retrieval():
    calls = []

    def gen(prompts, temperature=0.0, seed=0):
        calls.append(list(prompts))
        out = []
        for p in prompts:
            if "Final answer:" in p:
                out.append(responses(p)[1] + "\nbecause")  # picks the RAG answer
            elif "Passage" in p or "using the passages" in p:
                out.append(" Paris")
            else:
                out.append("Lyon ")
        return out

    class EmptyRetriever:
        docs = DocStore([Passage("d0", "The Louvre is in Paris.")])

        def search(self, queries, k):
            return np.full((len(queries), k), -np.inf), np.array([[0, -1], [-1, -1]])

    passages = retrieve(EmptyRetriever(), ["a", "b"], 2)
    assert passages == [[("", "The Louvre is in Paris.")], []]
    items = [QAItem("a", "Where is the Louvre?", ["Paris"], passages[0]),
             QAItem("b", "Where is the Louvre?", ["Paris"], passages[1])]  # fmt: skip
    out = self_select(gen, items, P)
    assert len(calls) == 3 and [len(c) for c in calls] == [2, 2, 2]
    assert "Passage" not in calls[1][1] and "Question: Where is the Louvre?" in calls[1][1]
    assert out[0] == {"id": "a", "internal": "Lyon", "external": "Paris", "final": "Paris",
                      "num_passages": 1}  # fmt: skip
    assert out[1]["num_passages"] == 0


def test_rgp_invariants():
    cfg = RGPConfig(max_pairs=10, order_swap=True)
    internal = ["Paris", "Lyon", "paris.", "Nice"]
    external = ["Rome", "Paris", "the Paris", "Nice"]
    rows = build_question_rows(ITEM, internal, external, cfg, P, rng=np.random.default_rng(0))
    pairs = [r for r in rows if r["type"] == "pair"]
    norm = lambda s: re.sub(r"\W|\bthe\b", "", s.lower())
    for r in pairs:  # chosen correct, rejected wrong
        assert "paris" in norm(r["chosen"]) and "paris" not in norm(r["rejected"])
    sel = [r for r in pairs if r["kind"] == "selection"]
    # Samples 0 (internal right) and 1 (external right) have exactly one right answer;
    # sample 2 has both right, sample 3 neither: no selection pair from them.
    originals = [r for r in sel if r["augment"] == "none"]
    assert sorted((r["winner"], r["chosen"]) for r in originals) == [
        ("external", " Paris"), ("internal", " Paris")]  # fmt: skip
    shown = {r["winner"]: responses(r["prompt"]) for r in originals}
    assert shown == {"internal": ["Paris", "Rome"], "external": ["Lyon", "Paris"]}  # int., ext.
    swaps = [r for r in sel if r["augment"] == "swap"]
    assert len(swaps) == len(originals)
    for o, s in zip(originals, swaps):  # the order flips, the content stays
        assert responses(s["prompt"]) == responses(o["prompt"])[::-1]
        assert (s["chosen"], s["rejected"]) == (o["chosen"], o["rejected"])
    gen = [r for r in pairs if r["kind"].startswith("gen_")]
    assert {r["kind"] for r in gen} == {"gen_closed_book", "gen_rag"}
    assert rows[-1] == {"type": "question", "qid": "q1", "num_passages": 2,
                        "internal_correct": 2, "external_correct": 2, "samples": 4,
                        "paraphrased": False}  # fmt: skip


def test_passage_variants_keep_the_evidence_and_switches_turn_kinds_off():
    item = QAItem(
        "q",
        "Where is the Louvre?",
        ["Paris"],
        [("", f"noise {i}") for i in range(4)] + [("", "The Louvre is in Paris.")],
    )
    cfg = RGPConfig(passage_variants=3, order_swap=False, generation_pairs=False)
    rows = build_question_rows(item, ["Lyon"], ["Paris"], cfg, P, rng=np.random.default_rng(1))
    var = [r for r in rows if r.get("augment") == "passages"]
    assert len(var) == 3 and all(r["kind"] == "selection" for r in rows[:-1])
    for r in var:
        assert "The Louvre is in Paris." in r["prompt"]
        n = len(re.findall(r"Passage \d+:", r["prompt"]))
        assert 1 <= n <= 5
    off = RGPConfig(selection_pairs=False, generation_pairs=False)
    assert [
        r["type"]
        for r in build_question_rows(
            item, ["Lyon"], ["Paris"], off, P, rng=np.random.default_rng(0)
        )
    ] == ["question"]


def _script(fail_on_call=None):
    """A deterministic stand-in LLM: the sample index decides right or wrong answers."""
    state = {"calls": 0}

    def gen(prompts, temperature=0.0, seed=0):
        state["calls"] += 1
        if state["calls"] == fail_on_call:
            raise ConnectionError("server went away")
        out = []
        for i, p in enumerate(prompts):
            rag = "Passage" in p
            qnum = int(re.search(r"Question: q(\d+)", p).group(1))
            right = (i + qnum + (1 if rag else 0)) % 2 == 0
            out.append("Paris" if right else ("Rome" if rag else "Lyon"))
        return out

    return gen


def _items(n):
    return [QAItem(f"id{i}", f"q{i}", ["Paris"], [] if i == 3 else [("", f"passage {i}")])
            for i in range(n)]  # fmt: skip


def test_rgp_build_failure_keeps_finished_rows_and_resumes(tmp_path):
    cfg = RGPConfig(num_samples=2, chunk_size=2, temperature=1.0)
    straight = build_rgp(
        str(tmp_path / "a.jsonl"), _items(6), _script(), P, cfg, log=lambda s: None
    )
    path = str(tmp_path / "b.jsonl")
    with pytest.raises(RuntimeError, match=r"chunk 1 .*2 finished questions are kept.*rerun"):
        build_rgp(path, _items(6), _script(fail_on_call=3), P, cfg, log=lambda s: None)
    kept, repaired = read_rgp(path)
    assert not repaired and {r["qid"] for r in kept} == {"id0", "id1"}
    # A torn last line (a kill mid-write) is dropped on resume.
    with open(path, "a") as f:
        f.write('{"type": "pair", "qid": "id2", "kin')
    resumed = build_rgp(path, _items(6), _script(), P, cfg, log=lambda s: None)
    assert resumed == straight
    with open(path) as f:
        assert [json.loads(line) for line in f] == straight
    _, stats = training_pairs(resumed, RGPConfig(balance=False))
    assert stats["questions"] == 6 and stats["empty_retrieval"] == 1
    assert stats["pairs/selection"] == sum(r.get("kind") == "selection" for r in straight)


def test_balancing_equalises_internal_and_external_wins():
    rows = []
    for i in range(6):
        winner = "internal" if i < 4 else "external"
        for augment in ("none", "swap"):
            rows.append(
                {
                    "type": "pair",
                    "qid": f"q{i}",
                    "kind": "selection",
                    "augment": augment,
                    "prompt": "",
                    "chosen": " a",
                    "rejected": " b",
                    "winner": winner,
                }
            )
        rows.append({"type": "question", "qid": f"q{i}", "num_passages": 1})
    rows.append({"type": "pair", "qid": "q0", "kind": "gen_rag", "augment": "none",
                 "prompt": "", "chosen": " a", "rejected": " b", "winner": ""})  # fmt: skip
    kept, stats = training_pairs(rows, RGPConfig(balance=True))
    wins = [r["winner"] for r in kept if r["kind"] == "selection"]
    assert wins.count("internal") == wins.count("external") == 4
    assert stats["balance_dropped"] == 4 and stats["selection/internal_wins"] == 8
    assert stats["training_pairs"] == 9 and any(r["kind"] == "gen_rag" for r in kept)
    _, unbalanced = training_pairs(rows, RGPConfig(balance=False))
    assert unbalanced["training_pairs"] == 13


def test_paraphrase_and_sampling_through_the_llm_client(tmp_path):
    seen = []

    def answer(req):
        text = req.messages[-1]["content"]
        seen.append(req)
        if text.startswith("Rewrite the question"):
            return "Which city has the Louvre?\n"
        return "Paris" if req.seed % 2 else "Lyon"

    client = FunctionClient(answer, model="scripted")
    gen = ClientGenerator(client, max_new_tokens=8)
    para = lambda qs: gen([RGPConfig().paraphrase_prompt.format(question=q) for q in qs])
    cfg = RGPConfig(num_samples=2, paraphrase=True, order_swap=False, generation_pairs=False)
    rows = build_rgp(str(tmp_path / "p.jsonl"), [ITEM], gen, P, cfg, paraphrase_fn=para,
                     log=lambda s: None)  # fmt: skip
    sampled = [r for r in seen if r.temperature > 0]
    assert len({(r.messages[-1]["content"], r.seed) for r in sampled}) == 4  # distinct seeds
    para_rows = [r for r in rows if r.get("augment") == "paraphrase"]
    assert para_rows and all(
        "Question: Which city has the Louvre?" in r["prompt"] for r in para_rows
    )
    _, stats = training_pairs(rows, cfg)
    assert stats["augment/paraphrase"] == len(para_rows) and stats["paraphrased_questions"] == 1
    with pytest.raises(ValueError, match="paraphrase needs an LLM client"):
        build_rgp(str(tmp_path / "x.jsonl"), [ITEM], gen, P, cfg)
