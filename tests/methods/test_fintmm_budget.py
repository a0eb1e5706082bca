"""The generator's context budget (token counting, prefixes, TMMHybridRAG under a budget; the
baselines' budget: test_fintmm_pipeline), the temporal ranking inside the window, the
full-width synthetic statements and the benchmark's wording mix."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import numpy as np
import pytest

from jaxmethods.methods.fintmm.context_budget import (
    ContextBudget,
    count_tokens,
    item_line,
    token_prefix,
)
from jaxmethods.methods.fintmm.graph_store import InMemoryGraphStore
from jaxmethods.methods.fintmm.keywords import RuleKeywords
from jaxmethods.methods.fintmm.kg import Entity, Relation, TemporalKG
from jaxmethods.methods.fintmm.kg_names import BALANCE_SHEET, CASH_FLOW, INCOME_STATEMENT
from jaxmethods.methods.fintmm.records import Corpus, Datum, TimeSpan
from jaxmethods.methods.fintmm.retrieve import HybridOptions, TMMHybridRetriever, inside_first
from jaxmethods.methods.fintmm.synthetic_phrasing import rephrase

D = dt.date


def test_count_tokens_is_the_cl100k_pretokenizer_split():
    # The pieces written out by hand (tiktoken's cl100k_base pattern: letters with their
    # leading space or punctuation, digit groups of at most 3, punctuation runs).
    assert count_tokens("AAPL 2022-03-15: Close = 123.45 USD") == len(
        ["AAPL", " ", "202", "2", "-", "03", "-", "15", ":", " Close", " =", " ", "123", ".",
         "45", " USD"]
    )  # fmt: skip
    assert count_tokens("[d34898b8-e257]") == len(["[d", "34", "898", "b", "8", "-e", "257", "]"])
    assert count_tokens("") == 0
    assert count_tokens("(AAPL) income_statement Quarter") == len(
        ["(AAPL", ")", " income", "_statement", " Quarter"]
    )
    assert count_tokens("it's a 1234567 test") == len(
        ["it", "'s", " a", " ", "123", "456", "7", " test"]
    )


def test_token_prefix_and_item_budgets():
    lines = ["a b c", "d e", "f", "g h i j"]  # 3, 2, 1, 4 pieces
    assert token_prefix(lines, str, 5) == ["a b c", "d e"]
    assert token_prefix(lines, str, 4) == ["a b c"]  # the first that does not fit ends it
    assert token_prefix(lines, str, 0) == lines
    t = TimeSpan.day(D(2022, 1, 3))
    ents = [Entity(f"E{i}", "price", t, "x " * 10, ()) for i in range(3)]
    rels = [Relation("E0", f"E{i}", "r", t, "y " * 10, ()) for i in range(3)]
    items = [ents[0], rels[0], ents[1], rels[1], ents[2], rels[2]]
    e_cost = count_tokens(item_line(ents[0]))
    r_cost = count_tokens(item_line(rels[0]))
    got = ContextBudget(2 * e_cost, r_cost, 0).items(items)
    assert got == [ents[0], rels[0], ents[1]]  # each kind its own prefix, order kept


def _table_kg():
    """A company with one income statement per quarter of 2022 (long descriptions) and a
    price day in Q3."""
    ents = {"Apple Inc": Entity("Apple Inc", "company", None, "Apple Inc (AAPL)", ())}
    rels, data = [], []
    for q in range(1, 5):
        span = TimeSpan.quarter(2022, q)
        name = f"Apple Inc income statement 2022-Q{q}"
        uid = f"t{q}"
        data.append(Datum("Apple Inc", "AAPL", span.end.isoformat(), "Quarter", "totalRevenue",
                          float(q), "USD", uid, "FinancialTable"))  # fmt: skip
        desc = f"Apple Inc (AAPL) income statement for 2022-Q{q}: totalRevenue {q} USD" + (
            "; other 1 USD" * 30
        )
        ents[name] = Entity(name, "table", span, desc, (uid,))
        rels.append(Relation("Apple Inc", name, "reports", span, "reports", ()))
    day = TimeSpan.day(D(2022, 8, 1))
    ents["AAPL 2022-08-01"] = Entity("AAPL 2022-08-01", "price", day, "AAPL Close 5 USD", ())
    rels.append(Relation("AAPL 2022-08-01", "Apple Inc", "price_of", day, "price", ()))
    kg = TemporalKG(ents, rels)
    corpus = Corpus(data=data, news=[], charts=[], qa=[], companies={"AAPL": "Apple Inc"})
    return kg, corpus


def test_budget_keeps_the_windowed_period_and_cuts_the_unwindowed_history():
    kg, corpus = _table_kg()
    table = count_tokens(item_line(kg.entities["Apple Inc income statement 2022-Q1"]))
    company = count_tokens(item_line(kg.entities["Apple Inc"]))
    budget = ContextBudget(company + 2 * table, 0, 0)  # the company and two statements fit
    kw = RuleKeywords(corpus.companies, ["totalRevenue"])

    def run(**opts):
        o = HybridOptions(use_vec=False, budget=budget, **opts)
        r = TMMHybridRetriever(kg, None, InMemoryGraphStore(kg), corpus.by_uuid(), kw, o)
        return r.retrieve(["What was Apple Inc's totalRevenue in Q3 2022?"])[0]

    full, no_time = run(), run(use_temporal=False)
    assert [d.uuid for d in full.raw] == ["t3"]
    tables = [e.name for e in no_time.items if isinstance(e, Entity) and e.kind == "table"]
    assert tables == ["Apple Inc income statement 2022-Q1", "Apple Inc income statement 2022-Q2"]
    assert [d.uuid for d in no_time.raw] == ["t1", "t2"]  # the asked quarter did not fit


def test_inside_first_orders_the_asked_period_before_coarser_ones():
    q3, day = TimeSpan.quarter(2022, 3), TimeSpan.day(D(2022, 8, 1))
    year = TimeSpan(D(2022, 1, 1), D(2022, 12, 31))
    items = [
        Entity("year", "table", year, "", ()),
        Entity("q3", "table", q3, "", ()),
        Entity("company", "company", None, "", ()),
        Entity("day", "price", day, "", ()),
    ]
    assert [e.name for e in inside_first(items, day)] == ["company", "day", "year", "q3"]
    assert [e.name for e in inside_first(items, q3)] == ["q3", "company", "day", "year"]


def test_rephrase_default_mix_is_the_benchmark_prompts():
    q = "What was X on 2022-03-05 in Q2 2022?"
    rng = np.random.default_rng(0)
    out = [rephrase(q, rng) for _ in range(600)]
    days = Counter("iso" if "2022-03-05" in x else "long" if "March 5, 2022" in x else "other"
                   for x in out)  # fmt: skip
    quarters = Counter("q_year" if "Q2 2022" in x else "year_q" if "2022Q2" in x else "other"
                       for x in out)  # fmt: skip
    assert set(days) == {"iso", "long"} and set(quarters) == {"q_year", "year_q"}
    assert days["long"] / 600 == pytest.approx(2 / 3, abs=0.06)
    assert quarters["q_year"] / 600 == pytest.approx(2 / 3, abs=0.06)


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
    from jaxmethods.methods.fintmm.synthetic import make_synthetic_corpus

    kw = dict(seed=5, tickers=2, start="2022-06-01", end="2022-06-17", news_per_company=1,
              qa_per_kind=1, charts="none")  # fmt: skip
    a, b = tmp_path_factory.mktemp("core"), tmp_path_factory.mktemp("full")
    make_synthetic_corpus(a, **kw)
    make_synthetic_corpus(b, full_statements=True, **kw)
    return a, b


def test_full_statements_carry_every_alpha_vantage_field_and_keep_the_questions(two_corpora):
    a, b = two_corpora
    core = json.loads((a / "data" / "FinancialTable.json").read_text())
    full = json.loads((b / "data" / "FinancialTable.json").read_text())
    fields = BALANCE_SHEET | INCOME_STATEMENT | CASH_FLOW
    per_period = Counter((r["Symbol"], r["Date"], r["Interval"]) for r in full)
    assert set(per_period.values()) == {len(fields)} and len(per_period) == 2 * 5
    assert {r["indicator_name"] for r in full} == fields
    # the question-bearing rows are unchanged; the extra rows are whole millions, and the year
    # sums the quarters of a flow field and takes Q4 of a balance-sheet field
    key = lambda r: (r["Symbol"], r["Date"], r["Interval"], r["indicator_name"])
    by_key = {key(r): r["indicator_value"] for r in full}
    assert all(by_key[key(r)] == r["indicator_value"] for r in core)
    assert all(v % 1e6 == 0 for v in by_key.values())
    qs = [f"2022-{m}" for m in ("03-31", "06-30", "09-30", "12-31")]
    assert by_key[("AAPL", "2022-12-31", "Year", "ebitda")] == sum(
        by_key[("AAPL", d, "Quarter", "ebitda")] for d in qs
    )
    assert (
        by_key[("AAPL", "2022-12-31", "Year", "goodwill")]
        == by_key[("AAPL", "2022-12-31", "Quarter", "goodwill")]
    )
    assert (a / "QA.json").read_text() == (b / "QA.json").read_text()
    prices = ("data/StockPrice.json", "data/News.json")
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in prices)
