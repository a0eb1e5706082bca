"""Streaming readers for the corpus formats: DPR passages TSV and BEIR JSON Lines + qrels.

- DPR (`psgs_w100.tsv`, optionally `.gz`): a header row `id\\ttext\\ttitle`, then one passage per
  row; fields may be double-quoted with `""` escapes, as DPR writes them (read with `csv`, like
  DPR's own loader).
- BEIR: `corpus.jsonl` rows `{"_id", "title", "text", ...}`, `queries.jsonl` rows
  `{"_id", "text", ...}`, and qrels TSV `query-id\\tcorpus-id\\tscore` with a header row.

The passage and query readers are generators (a 21M-row TSV is never held twice); a malformed
row raises `ValueError("<file>:<line>: ...")`.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import sys
from collections.abc import Iterator

from jaxmethods.data.jsonl import jsonl_objects
from jaxmethods.retrieval.docstore import Passage, Query

DPR_HEADER = ("id", "text", "title")
QRELS_HEADER = ("query-id", "corpus-id", "score")


def _open_text(path: str | os.PathLike) -> io.TextIOBase:
    if str(path).endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _tsv_rows(path: str | os.PathLike) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-empty TSV row; quoted fields may span lines."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with _open_text(path) as f:
        reader = csv.reader(f, delimiter="\t")
        start = 1
        try:
            for fields in reader:
                if fields:
                    yield start, fields
                start = reader.line_num + 1
        except csv.Error as e:
            raise ValueError(f"{path}:{start}: malformed TSV ({e})") from None


def read_dpr_tsv(path: str | os.PathLike, *, header: bool = True) -> Iterator[Passage]:
    """Yields the passages of a DPR TSV (`id\\ttext\\ttitle`), streaming.

    The header row is required (and checked) unless `header=False`. A row without exactly three
    fields or with an empty id raises ValueError naming file and line.
    """
    rows = _tsv_rows(path)
    if header:
        first = next(rows, None)
        if first is None:
            raise ValueError(f"{path}: empty file, expected the header row 'id\\ttext\\ttitle'")
        line, fields = first
        if tuple(f.strip() for f in fields) != DPR_HEADER:
            raise ValueError(
                f"{path}:{line}: expected the header row 'id\\ttext\\ttitle', got {fields!r}"
                " (pass header=False for a file without one)"
            )
    for line, fields in rows:
        if len(fields) != 3:
            raise ValueError(
                f"{path}:{line}: expected 3 tab-separated fields (id, text, title), "
                f"got {len(fields)}"
            )
        if not fields[0].strip():
            raise ValueError(f"{path}:{line}: empty passage id")
        yield Passage(id=fields[0].strip(), text=fields[1], title=fields[2])


def write_dpr_tsv(path: str | os.PathLike, passages) -> None:
    """Writes passages as a DPR TSV with its header row (quoting as `csv` does)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(DPR_HEADER)
        for p in passages:
            writer.writerow((p.id, p.text, p.title))


def _field(where: str, row: dict, name: str, *, required: bool = True) -> str:
    if name not in row:
        if required:
            raise ValueError(f"{where}: missing field {name!r}")
        return ""
    value = row[name]
    if not isinstance(value, (str, int)):
        raise ValueError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    return str(value)


def read_beir_corpus(path: str | os.PathLike) -> Iterator[Passage]:
    """Yields passages from a BEIR `corpus.jsonl` (`_id`, `text`, optional `title`; other fields
    go to `Passage.meta`), streaming."""
    for where, row in jsonl_objects(path):
        doc_id = _field(where, row, "_id")
        text = _field(where, row, "text")
        title = _field(where, row, "title", required=False)
        meta = {k: v for k, v in row.items() if k not in ("_id", "text", "title")}
        yield Passage(id=doc_id, text=text, title=title, meta=meta)


def read_beir_queries(path: str | os.PathLike) -> Iterator[Query]:
    """Yields queries from a BEIR `queries.jsonl` (`_id`, `text`; other fields go to `meta`)."""
    for where, row in jsonl_objects(path):
        meta = {k: v for k, v in row.items() if k not in ("_id", "text")}
        yield Query(id=_field(where, row, "_id"), text=_field(where, row, "text"), meta=meta)


def read_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV (`query-id\\tcorpus-id\\tscore`, header row) -> {qid: {doc id: score}}."""
    qrels: dict[str, dict[str, int]] = {}
    rows = _tsv_rows(path)
    first = next(rows, None)
    if first is None:
        return qrels
    line, fields = first
    if tuple(f.strip() for f in fields) != QRELS_HEADER:
        raise ValueError(
            f"{path}:{line}: expected the header row 'query-id\\tcorpus-id\\tscore', got {fields!r}"
        )
    for line, fields in rows:
        if len(fields) != 3:
            raise ValueError(
                f"{path}:{line}: expected 3 tab-separated fields (query-id, corpus-id, score), "
                f"got {len(fields)}"
            )
        try:
            score = int(fields[2])
        except ValueError:
            raise ValueError(f"{path}:{line}: score {fields[2]!r} is not an integer") from None
        qrels.setdefault(fields[0], {})[fields[1]] = score
    return qrels
