"""TMMHybridRAG pipeline: question windows, keywords, retrieval (dense window inside the search,
graph expansion, source mapping, ablations), the baselines, the generator prompt and parsing,
and the template generator on gold retrieval."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pytest

from jaxmethods.llm import FunctionClient
from jaxmethods.methods.fintmm.context_budget import ContextBudget, count_tokens
from jaxmethods.methods.fintmm.generate import (
    Generation,
    LLMGenerator,
    build_prompt,
    parse_answer,
)
from jaxmethods.methods.fintmm.graph_store import InMemoryGraphStore
from jaxmethods.methods.fintmm.keywords import (
    Keywords,
    LLMKeywords,
    RuleKeywords,
    parse_keywords,
    question_window,
)
from jaxmethods.methods.fintmm.kg import Entity, Relation, TemporalKG
from jaxmethods.methods.fintmm.records import Corpus, Datum, NewsItem, TimeSpan
from jaxmethods.methods.fintmm.retrieve import (
    BM25Baseline,
    HybridOptions,
    NaiveRAG,
    Retrieved,
    TMMHybridRetriever,
    record_chunks,
    render_record,
)
from jaxmethods.methods.fintmm.synthetic_phrasing import (
    DAY_FORMS,
    Q_TOKEN_FORMS,
    QUARTER_FORMS,
    rephrase,
)
from jaxmethods.methods.fintmm.vector_store import EntityIndex
from jaxmethods.retrieval.hashing_encoder import HashingEncoder

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "fintmm", "repo")

D = dt.date

# ------------------------------------------------------------------ question windows

WINDOWS = [  # (question, expected (start, end) written out by hand, or None)
    ("What was AAPL's Close on 2022-03-15?", (D(2022, 3, 15), D(2022, 3, 15))),
    ("What was the close of Apple on March 15, 2022?", (D(2022, 3, 15), D(2022, 3, 15))),
    ("Close of Apple on Mar 15, 2022, the day it fell?", (D(2022, 3, 15), D(2022, 3, 15))),
    ("MSFT totalRevenue in 2022 Q2?", (D(2022, 4, 1), D(2022, 6, 30))),
    ("Revenue in the second quarter of 2023, Apple or AMD?", (D(2023, 4, 1), D(2023, 6, 30))),
    ("trend from Dec 22, 2023 to January 5, 2024", (D(2023, 12, 22), D(2024, 1, 5))),
    ("Close of AAPL on 4 July 2022?", (D(2022, 7, 4), D(2022, 7, 4))),
    ("MSFT totalRevenue in Q2 2022?", (D(2022, 4, 1), D(2022, 6, 30))),
    ("MSFT totalRevenue in 2022Q3?", (D(2022, 7, 1), D(2022, 9, 30))),
    ("netIncome in the fourth quarter of 2022", (D(2022, 10, 1), D(2022, 12, 31))),
    # 2022-03-14 is a Monday: ISO week 11 of 2022 runs Mon 14 .. Sun 20 March.
    ("AAPL trend in week 11 of 2022", (D(2022, 3, 14), D(2022, 3, 20))),
    ("AAPL chart 2022-W11", (D(2022, 3, 14), D(2022, 3, 20))),
    # ISO week 1 of 2021 starts on Monday 2021-01-04.
    ("TSLA in W1 2021", (D(2021, 1, 4), D(2021, 1, 10))),
    ("average close in March 2022", (D(2022, 3, 1), D(2022, 3, 31))),
    ("average close in February 2024", (D(2024, 2, 1), D(2024, 2, 29))),
    ("monthly chart 2022-M2", (D(2022, 2, 1), D(2022, 2, 28))),
    ("the 2022 Year Report of NVDA", (D(2022, 1, 1), D(2022, 12, 31))),
    ("from Q1 2022 to Q3 2022, did it grow?", (D(2022, 1, 1), D(2022, 9, 30))),
    ("between 2022-01-03 and 2022-01-07", (D(2022, 1, 3), D(2022, 1, 7))),
    ("range 2022-05-02..2022-05-06", (D(2022, 5, 2), D(2022, 5, 6))),
    ("Did AAPL close above 2050.5 USD on 2022-01-03?", (D(2022, 1, 3), D(2022, 1, 3))),
    ("Which company had the highest Close?", None),
    ("Given 2000 shares outstanding, what is the EPS?", None),
]


@pytest.mark.parametrize("question,expected", WINDOWS)
def test_question_window(question, expected):
    w = question_window(question)
    if expected is None:
        assert w is None
    else:
        assert (w.start, w.end) == expected


# ------------------------------------------------------------------ keywords

COMPANIES = {"AAPL": "Apple Inc", "MSFT": "Microsoft Corporation", "AMD": "Advanced Micro Devices"}


def test_rule_keywords():
    kw = RuleKeywords(COMPANIES, ["Close", "totalRevenue", "Open"])
    a, b, c = kw(
        [
            "What was the closing price of apple inc on 2022-03-15?",
            "Which of MSFT and Microsoft's rival AMD had the higher totalRevenue in Q2 2022?",
            "Did the CAMDEN fund hold AMDX shares?",  # no whole-word ticker or name
        ]
    )
    assert a.low == ("AAPL", "Apple Inc", "Close", "2022-03-15")
    assert "stock price" in a.high
    assert b.low == ("MSFT", "Microsoft Corporation", "AMD", "Advanced Micro Devices",
                     "totalRevenue", "2022-Q2")  # fmt: skip
    assert "comparison" in b.high
    assert c.low == ()
    assert a.queries() == ["AAPL, Apple Inc, Close, 2022-03-15", ", ".join(a.high)]
    # Without the temporal parser (-temporal): the times as the question writes them.
    assert a.without_time_parsing().low == a.low  # written as the normalised key
    (d,) = kw(["Did AAPL close higher than it opened on Mar 15, 2022 or in 2022 Q2?"])
    assert d.low == ("AAPL", "Apple Inc", "Close", "2022-03-15..2022-06-30")
    assert d.without_time_parsing().low == ("AAPL", "Apple Inc", "Close", "Mar 15, 2022",
                                            "2022 Q2")  # fmt: skip
    assert d.without_time_parsing().high == d.high
    assert Keywords(low=("x", "y"), high=("y",)).queries("each") == ["x", "y"]


def test_parse_keywords():
    text = 'Sure!\n```json\n{"high_level_keywords": ["trend"], "low_level_keywords": "AAPL"}\n```'
    assert parse_keywords(text) == Keywords(low=("AAPL",), high=("trend",))
    assert parse_keywords("no json here") is None
    assert parse_keywords('{"other": 1}') is None


def test_llm_keywords_retry_fallback_and_cache(tmp_path):
    calls = []

    def fn(req):
        calls.append(req.messages[-1]["content"])
        text = req.messages[-1]["content"].split("---Real data---")[1]
        if "not valid JSON" in text and "MSFT" in text:  # the retry
            return '{"high_level_keywords": [], "low_level_keywords": ["MSFT"]}'
        if "AAPL" in text:
            return '{"high_level_keywords": ["price"], "low_level_keywords": ["AAPL"]}'
        return "I cannot answer in JSON" if "MSFT" in text else "still no json"

    client = FunctionClient(fn, cache_dir=str(tmp_path))
    fallback = RuleKeywords(COMPANIES)
    ext = LLMKeywords(client, fallback=lambda q: Keywords(low=("fallback",)))
    out = ext(["AAPL close?", "MSFT close?"])
    assert out == [Keywords(low=("AAPL",), high=("price",)), Keywords(low=("MSFT",))]
    assert ext.failures == 0 and len(calls) == 3
    assert 'Question: "AAPL close?"' in calls[0] and "high_level_keywords" in calls[0]
    out = ext(["AAPL close?", "MSFT close?"])  # cached: no new call
    assert len(calls) == 3 and out[1] == Keywords(low=("MSFT",))
    out = ext(["nothing?"])  # invalid twice -> fallback, counted
    assert out == [Keywords(low=("fallback",))] and ext.failures == 1
    assert out[0].without_time_parsing() == out[0]  # LLM keywords: times already as written
    assert fallback(["apple"])[0].low[:1] == ("AAPL",)


# ------------------------------------------------------------------ generation


@pytest.mark.parametrize(
    "text,answer",
    [
        ("Step 1: close was 1.\nStep 2: ...\nFinal answer: 123.45", "123.45"),
        ("Final Answer: **AAPL**.", "AAPL"),
        ("final answer is: Yes.\n", "Yes"),
        ("Final answer: 1\nFinal answer: 2", "2"),
        ("Step 1: x\nThe close was 12.5", "The close was 12.5"),
        ("Final answer: 3.", "3."),  # a number's trailing period is ambiguous: kept
        ("", ""),
    ],
)
def test_parse_answer(text, answer):
    assert parse_answer(text) == answer


def _datum(sym, date, ind, value, uuid, interval="Date"):
    src = "StockPrice" if interval == "Date" else "FinancialTable"
    return Datum(f"{sym} Co", sym, date, interval, ind, value, "USD", uuid, src,
                 None if interval == "Date" else "income_statement")  # fmt: skip


def test_build_prompt_and_llm_generator():
    day = question_window("2022-03-15")
    ent = Entity("AAPL 2022-03-15", "price", day, "AAPL closed at 10.5 USD", ("u1",))
    news = NewsItem("Apple launched X", "2022-03-15", "Body.", "n1", ("Apple Inc",), ("AAPL",))
    r = Retrieved("What was AAPL's Close on 2022-03-15?", items=[ent],
                  raw=[_datum("AAPL", "2022-03-15", "Close", 10.5, "u1"), news])  # fmt: skip
    prompt = build_prompt(r)
    assert "What was AAPL's Close on 2022-03-15?" in prompt
    assert "- AAPL 2022-03-15 | 2022-03-15 | AAPL closed at 10.5 USD" in prompt
    assert "[u1]" in prompt and "Close = 10.50 USD" in prompt
    assert "[n1] News 2022-03-15 about Apple Inc (AAPL): Apple launched X" in prompt
    assert prompt.rstrip().endswith("Final answer: <the short answer only>")
    seen = []
    client = FunctionClient(lambda req: seen.append(req) or "Step 1: read.\nFinal answer: 10.5")
    [g] = LLMGenerator(client)([r])
    assert g == Generation("10.5", "Step 1: read.\nFinal answer: 10.5")
    assert seen[0].messages[-1]["content"] == prompt and seen[0].temperature == 0
    assert "(none)" in build_prompt(Retrieved("q?"))


def test_llm_generator_attaches_retrieved_chart_pngs_as_image_parts(tmp_path):
    import base64

    from jaxmethods.methods.fintmm.records import Chart

    png = os.path.join(DATA, "data", "Chart", "AAPL_2022-W1_Kline.png")
    chart = Chart("AAPL", "W1", 2022, png, Chart.make_uuid("AAPL", 2022, "W1"))
    missing = Chart("AAPL", "W2", 2022, str(tmp_path / "gone.png"), "AAPL_2022-W2_Kline")
    r = Retrieved("What was the trend in week 1?", raw=[missing, chart, chart])
    seen = []
    client = FunctionClient(lambda req: seen.append(req) or "Final answer: up")
    [g] = LLMGenerator(client, max_images=1)([r])
    assert g.answer == "up"
    text, image = seen[0].messages[-1]["content"]
    assert text == {"type": "text", "text": build_prompt(r)}
    url = image["image_url"]["url"]
    with open(png, "rb") as f:
        assert base64.b64decode(url.split(",", 1)[1]) == f.read()
    LLMGenerator(client)([r])  # max_images=0: the plain text prompt
    assert seen[1].messages[-1]["content"] == build_prompt(r)


# ------------------------------------------------------------------ retrieval on a toy KG


DAYS = [D(2022, 1, 3) + dt.timedelta(days=i) for i in range(12) if (3 + i) % 7 not in (1, 2)]


@pytest.fixture(scope="module")
def toy():
    """Two companies x ~10 trading days of Close prices; price-day entities linked to their
    company; AAPL also has many 'decoy' days whose text repeats the query words."""
    data, ents, rels = [], {}, []
    for sym, name in (("AAPL", "Apple Inc"), ("MSFT", "Microsoft Corporation")):
        ents[name] = Entity(name, "company", None, f"{name} ({sym})", ())
        for i, day in enumerate(DAYS):
            uid = f"{sym}-{day}"
            data.append(_datum(sym, day.isoformat(), "Close", 100.0 + i, uid))
            data.append(_datum(sym, day.isoformat(), "Open", 99.0 + i, uid + "-open"))
            en = f"{sym} {day}"
            decoy = " AAPL, Apple Inc, Close. AAPL Apple Inc Close. Apple Inc Close AAPL"
            desc = f"{sym} Close {100 + i}" + (decoy if i % 2 else "")
            ents[en] = Entity(en, "price", TimeSpan.day(day), desc, (uid,))
            rels.append(Relation(name, en, "has_price", TimeSpan.day(day), "price day", (uid,)))
    kg = TemporalKG(ents, rels)
    corpus = Corpus(data=data, news=[], charts=[], qa=[],
                    companies={"AAPL": "Apple Inc", "MSFT": "Microsoft Corporation"})  # fmt: skip
    enc = HashingEncoder(256)
    index = EntityIndex.build(kg, enc)
    return kg, corpus, corpus.by_uuid(), enc, index, InMemoryGraphStore(kg)


def _key(it):
    return it.name if isinstance(it, Entity) else it.key


def _retriever(toy, **opts):
    kg, corpus, by_uuid, _, index, graph = toy
    kw = RuleKeywords(corpus.companies, ["Close", "Open"])
    return TMMHybridRetriever(kg, index, graph, by_uuid, kw, HybridOptions(**opts))


def _brute_dense(toy, query, window, k):
    """NumPy cosine over the items whose time overlaps `window` (None = all), top-k keys."""
    kg, _, _, enc, _, _ = toy
    items = [*kg.entities.values(), *kg.relations]
    keys = [it.name if isinstance(it, Entity) else it.key for it in items]
    x = enc.embed([it.text() for it in items])
    s = x @ enc.embed([query])[0]
    ok = np.array([window is None or it.time is None or it.time.overlaps(window) for it in items])
    s = np.where(ok, s, -np.inf)
    order = np.argsort(-s, kind="stable")[:k]
    return [keys[i] for i in order if np.isfinite(s[i])]


def test_dense_window_is_inside_the_search(toy):
    q = "What was AAPL's Close on 2022-01-05?"
    day = TimeSpan.day(D(2022, 1, 5))
    r = _retriever(toy, k=2, use_graph=False).retrieve([q])[0]
    assert r.window == day
    queries = r.keywords.queries()
    expected = set().union(*(_brute_dense(toy, qq, day, 2) for qq in queries))
    assert {it.name if isinstance(it, Entity) else it.key for it in r.items} == expected
    assert all(it.time is None or it.time.overlaps(day) for it in r.items)
    assert "AAPL-2022-01-05" in r.sources()
    # Post-filtering the unwindowed top-2 would have lost the right day: the decoys outrank it.
    unwindowed = _brute_dense(toy, queries[0], None, 2)
    assert "AAPL 2022-01-05" not in unwindowed
    assert set(r.origin.values()) == {"dense"}


def test_graph_expansion_and_ablations(toy):
    q = "What was AAPL's Close on 2022-01-05?"
    full = _retriever(toy, k=2).retrieve([q])[0]
    assert "graph" in full.origin.values()
    # order: the neighbourhood of the entity the keywords name first, then the dense hits
    assert full.items[0].name == "Apple Inc" and full.origin["Apple Inc"] == "graph"
    first_dense = next(i for i, it in enumerate(full.items) if full.origin[_key(it)] == "dense")
    assert all(full.origin[_key(it)] == "graph" for it in full.items[:first_dense])
    # graph from "Apple Inc" in the window reaches exactly that day's relation and entity
    graph_keys = {k for k, o in full.origin.items() if o == "graph"}
    assert "Apple Inc -[has_price]-> AAPL 2022-01-05" in graph_keys | set(full.origin)
    assert all(it.time is None or it.time.overlaps(full.window) for it in full.items)
    assert {d.date for d in full.raw} == {"2022-01-05"}
    no_vec = _retriever(toy, k=2, use_vec=False).retrieve([q])[0]
    assert set(no_vec.origin.values()) == {"graph"} and "AAPL-2022-01-05" in no_vec.sources()
    no_raw = _retriever(toy, k=2, use_raw=False).retrieve([q])[0]
    assert no_raw.raw == [] and no_raw.items == full.items
    no_time = _retriever(toy, k=2, graph_limit=6, use_temporal=False).retrieve([q])[0]
    assert no_time.window is None
    worded = _retriever(toy, k=2, use_temporal=False).retrieve(["AAPL Close on Jan 5, 2022?"])
    assert worded[0].keywords.low == ("AAPL", "Apple Inc", "Close", "Jan 5, 2022")
    assert {d.date for d in no_time.raw} - {"2022-01-05"}  # other dates come in
    with pytest.raises(ValueError, match="use_vec needs an entity index"):
        TMMHybridRetriever(toy[0], None, toy[5], toy[2], RuleKeywords({}), HybridOptions())


def test_record_chunks_and_bm25_baseline(toy):
    import bm25s

    _, corpus, by_uuid, _, _, _ = toy
    docs, sources = record_chunks(corpus)
    assert len(docs) == 2 * len(DAYS)  # one chunk per (symbol, day): Open and Close together
    assert all(len(s) == 2 for s in sources)
    assert "AAPL Co (AAPL) StockPrice Date 2022-01-05: Close 102 USD; Open 101 USD" in docs.texts()
    q = ["MSFT Close 2022-01-07 price"]
    base = BM25Baseline(corpus, by_uuid, k=3)
    got = base.retrieve(q)[0]
    model = bm25s.BM25()
    model.index(bm25s.tokenize(docs.texts(), stopwords="en", show_progress=False),
                show_progress=False)  # fmt: skip
    res = model.retrieve(bm25s.tokenize(q, stopwords="en", show_progress=False), k=3,
                         show_progress=False)  # fmt: skip
    want = [u for i in res.documents[0] for u in sources[int(i)]]
    assert [d.uuid for d in got.raw] == want
    # under a raw-token budget: the longest prefix that fits (the first record that does not
    # fit ends it)
    cost = [count_tokens("- " + render_record(d, corpus.companies)) for d in got.raw]
    budget = ContextBudget(0, 0, cost[0] + cost[1] + cost[2] - 1)
    cut = BM25Baseline(corpus, by_uuid, k=3, budget=budget).retrieve(q)[0]
    assert len(got.raw) == 6 and cut.raw == got.raw[:2]
    assert got.items == [] and got.window is None
    two = record_chunks(corpus, rows_per_chunk=2)[0]
    assert len(two) == len(DAYS)


def test_naive_rag_matches_numpy_cosine(toy):
    _, corpus, by_uuid, enc, _, _ = toy
    docs, sources = record_chunks(corpus)
    q = ["AAPL Close on 2022-01-10"]
    got = NaiveRAG(corpus, by_uuid, enc, k=4).retrieve(q)[0]
    x = enc.embed(docs.texts())
    s = x @ enc.embed(q)[0]
    want = [u for i in np.argsort(-s, kind="stable")[:4] for u in sources[int(i)]]
    assert [d.uuid for d in got.raw] == want


def test_chart_chunks_do_not_depend_on_the_workdir():
    """A chart's chunk names its PNG file, not the path (the workdir's words would move the
    hashing encoder's buckets and so the baselines' ranking)."""
    from jaxmethods.methods.fintmm.records import Chart

    texts = []
    for folder in ("/tmp/run_a/data/Chart", "/srv/other/Chart"):
        chart = Chart("AAPL", "M3", 2022, f"{folder}/AAPL_2022-M3_Kline.png", "AAPL_2022-M3_Kline")
        corpus = Corpus(data=[], news=[], charts=[chart], qa=[], companies={"AAPL": "Apple Inc"})
        texts.append(record_chunks(corpus)[0].texts())
    assert (
        texts[0]
        == texts[1]
        == [
            "Apple Inc (AAPL) monthly candlestick chart 2022-M3 (2022-03-01..2022-03-31), image "
            "AAPL_2022-M3_Kline.png"
        ]
    )


def test_rephrase_mixes_the_forms_and_keeps_the_rest():
    """Every combination of one day form and one quarter form per question (written out by
    hand), nothing else changed."""
    q = "What was X on 2022-03-05 and from 2021-12-31 to 2022-01-04, in Q2 2022 and Q4 2021?"
    rng = np.random.default_rng(0)
    seen = {rephrase(q, rng, day_forms=DAY_FORMS, quarter_forms=QUARTER_FORMS) for _ in range(60)}
    assert seen == {
        "What was X on " + a + " and from " + b + " to " + c + ", in " + e + " and " + f + "?"
        for a, b, c in [("2022-03-05", "2021-12-31", "2022-01-04"),
                        ("March 5, 2022", "December 31, 2021", "January 4, 2022"),
                        ("Mar 5, 2022", "Dec 31, 2021", "Jan 4, 2022")]
        for e, f in [("Q2 2022", "Q4 2021"), ("2022Q2", "2021Q4"),
                     ("the second quarter of 2022", "the fourth quarter of 2021")]
    }  # fmt: skip
    only = {rephrase(q, rng, day_forms=("iso",), quarter_forms=Q_TOKEN_FORMS) for _ in range(20)}
    assert all(x.startswith(q[:25]) and "quarter" not in x for x in only)
