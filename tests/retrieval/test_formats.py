"""DPR TSV, BEIR JSONL / qrels readers and the doc store, including malformed-row errors."""

import gzip
import json

import numpy as np
import pytest

from jaxmethods.retrieval import (
    DocStore,
    Passage,
    read_beir_corpus,
    read_beir_queries,
    read_dpr_tsv,
    read_qrels,
    write_dpr_tsv,
)

# Verbatim layout of the first rows of DPR's psgs_w100.tsv: quoted text with "" escapes.
DPR_TSV = (
    "id\ttext\ttitle\n"
    '1\t"Aaron Aaron ( or ; ""Ahärôn"") is a prophet, high priest, and the brother of Moses."\tAaron\n'
    "2\tSo far as the Old Testament is concerned\tAaron\n"
    '3\t"a line\nbreak inside quotes"\t"Title, with comma"\n'
)


def test_dpr_tsv_reads_quoted_rows_and_gzip(tmp_path):
    path = tmp_path / "psgs.tsv"
    path.write_text(DPR_TSV, encoding="utf-8")
    passages = list(read_dpr_tsv(path))
    assert [p.id for p in passages] == ["1", "2", "3"]
    assert (
        passages[0].text
        == 'Aaron Aaron ( or ; "Ahärôn") is a prophet, high priest, and the brother of Moses.'
    )
    assert passages[0].title == "Aaron"
    assert (
        passages[2].text == "a line\nbreak inside quotes"
        and passages[2].title == "Title, with comma"
    )
    gz = tmp_path / "psgs.tsv.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write(DPR_TSV)
    assert list(read_dpr_tsv(gz)) == passages
    out = tmp_path / "out.tsv"
    write_dpr_tsv(out, passages)
    assert list(read_dpr_tsv(out)) == passages


def test_dpr_tsv_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.tsv"
    # Passage 3 spans lines 4-5 (a quoted line break), so the malformed row is on line 6.
    path.write_text(DPR_TSV + "4\tonly two fields\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.tsv:6: expected 3 tab-separated fields .* got 2"):
        list(read_dpr_tsv(path))
    path.write_text("id\ttitle\ttext\n1\ta\tb\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.tsv:1: expected the header row"):
        list(read_dpr_tsv(path))
    assert [p.text for p in read_dpr_tsv(path, header=False)] == ["title", "a"]
    path.write_text("id\ttext\ttitle\n\tno id\tt\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.tsv:2: empty passage id"):
        list(read_dpr_tsv(path))


def test_beir_corpus_queries_qrels(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {"_id": "d1", "title": "T1", "text": "first", "metadata": {"url": "u"}},
        {"_id": 2, "text": "second"},
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    got = list(read_beir_corpus(corpus))
    assert got == [
        Passage("d1", "first", "T1", {"metadata": {"url": "u"}}),
        Passage("2", "second", ""),
    ]
    corpus.write_text(
        json.dumps(rows[0]) + '\n{"_id": "x", "title": "no text"}\n', encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"corpus\.jsonl:2: missing field 'text'"):
        list(read_beir_corpus(corpus))
    corpus.write_text(json.dumps(rows[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"corpus\.jsonl:2: malformed JSON"):
        list(read_beir_corpus(corpus))

    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"_id": "q1", "text": "who?", "metadata": {}}\n', encoding="utf-8")
    (q,) = read_beir_queries(queries)
    assert (q.id, q.text, q.meta) == ("q1", "who?", {"metadata": {}})

    qrels = tmp_path / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t2\nq2\td1\t0\n")
    assert read_qrels(qrels) == {"q1": {"d1": 1, "d2": 2}, "q2": {"d1": 0}}
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\tx\n")
    with pytest.raises(ValueError, match=r"test\.tsv:3: score 'x' is not an integer"):
        read_qrels(qrels)


def test_docstore_round_trip_and_lookup(tmp_path):
    store = DocStore(
        [Passage("a", "alpha", "A", {"date": 3}), Passage("b", "beta", "", {"date": 7})]
    )
    store.save_jsonl(tmp_path / "docs.jsonl")
    loaded = DocStore.load_jsonl(tmp_path / "docs.jsonl")
    assert list(loaded) == list(store)
    assert loaded.index_of("b") == 1
    with pytest.raises(KeyError, match="no passage with id 'zz'"):
        loaded.index_of("zz")
    assert loaded.get(np.array([[1, -1]])) == [[store[1], None]]
    np.testing.assert_array_equal(loaded.column("date"), [3, 7])
    dup = DocStore([Passage("a", "x"), Passage("a", "y")])
    with pytest.raises(ValueError, match="'a' appears at rows 0 and 1"):
        dup.index_of("a")
