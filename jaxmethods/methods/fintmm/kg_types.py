"""The temporal KG's data types: `Entity` and `Relation` (each with `{time, description,
source_ids}`), `TemporalKG` (entities by name, relations in order, `neighbors`, JSON-lines
`save` / `load`), `KGStats` (what `build_kg` made and skipped) and `KGBuilder` (the merge rules
`build_kg` applies). `jaxmethods.methods.fintmm.kg` re-exports all of them.

    kg.entities["AAPL 2022-03-15"].time.label()   # "2022-03-15"
    kg.neighbors("AAPL 2022-03-15")               # [Relation(... next_trading_day ...), ...]
    kg.save("kg.jsonl"); TemporalKG.load("kg.jsonl") == kg
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from collections import defaultdict

from jaxmethods.methods.fintmm.records import TimeSpan

KG_FORMAT = "jaxmethods.fintmm.TemporalKG/1"


def _item_record(item: Entity | Relation) -> dict:
    rec = dataclasses.asdict(item)
    t = item.time
    rec["time"] = None if t is None else [t.start.isoformat(), t.end.isoformat()]
    rec["source_ids"] = list(item.source_ids)
    return rec


def _from_record(rec: dict) -> dict:
    t = rec.get("time")
    time = None
    if t is not None:
        time = TimeSpan(datetime.date.fromisoformat(t[0]), datetime.date.fromisoformat(t[1]))
    return {**rec, "time": time, "source_ids": tuple(rec["source_ids"])}


def _time_label(time: TimeSpan | None) -> str:
    return "undated" if time is None else time.label()


@dataclasses.dataclass(frozen=True)
class Entity:
    """A KG node. `kind`: "company" | "table" | "price" | "news" | "event" | "chart" | ...;
    `time`: the period it describes (None for timeless nodes such as a company)."""

    name: str
    kind: str
    time: TimeSpan | None
    description: str
    source_ids: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.name

    def text(self) -> str:
        """The embedded string: f"{name} {time} {description}"."""
        return f"{self.name} {_time_label(self.time)} {self.description}"


@dataclasses.dataclass(frozen=True)
class Relation:
    """A directed KG edge `src -[kind]-> dst` (kind: "next_trading_day" | "mentions" |
    "covers" | "reports" | ...), with the time it holds and its sources."""

    src: str
    dst: str
    kind: str
    time: TimeSpan | None
    description: str
    source_ids: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.src} -[{self.kind}]-> {self.dst}"

    def text(self) -> str:
        """The embedded string: f"{key} {time} {description}"."""
        return f"{self.key} {_time_label(self.time)} {self.description}"


@dataclasses.dataclass
class TemporalKG:
    """Entities by name and a list of relations; `neighbors(name)` lists the relations touching
    `name` (either direction), through an adjacency index built on first use."""

    entities: dict[str, Entity] = dataclasses.field(default_factory=dict)
    relations: list[Relation] = dataclasses.field(default_factory=list)
    _adj: dict[str, list[int]] | None = dataclasses.field(default=None, repr=False, compare=False)
    _adj_len: int = dataclasses.field(default=-1, repr=False, compare=False)

    def _adjacency(self) -> dict[str, list[int]]:
        if self._adj is None or self._adj_len != len(self.relations):
            adj: dict[str, list[int]] = defaultdict(list)
            for i, r in enumerate(self.relations):
                adj[r.src].append(i)
                if r.dst != r.src:
                    adj[r.dst].append(i)
            self._adj, self._adj_len = dict(adj), len(self.relations)
        return self._adj

    def neighbors(self, name: str) -> list[Relation]:
        return [self.relations[i] for i in self._adjacency().get(name, ())]

    def relation_map(self) -> dict[str, Relation]:
        """Relations by `key` (the last one wins for duplicate keys)."""
        return {r.key: r for r in self.relations}

    def save(self, path: str | os.PathLike) -> None:
        """Writes the KG as JSON lines: a header, then one line per entity and relation
        (times as `TimeSpan.label()`-free `[start, end]` ISO dates, None for no time)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps({"format": KG_FORMAT}) + "\n")
            for e in self.entities.values():
                f.write(json.dumps({"entity": _item_record(e)}, ensure_ascii=False) + "\n")
            for r in self.relations:
                f.write(json.dumps({"relation": _item_record(r)}, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> TemporalKG:
        """Reads `save`'s file; errors name the file and line."""
        kg = cls()
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                try:
                    rec = json.loads(line)
                    if line_no == 1:
                        if rec.get("format") != KG_FORMAT:
                            raise ValueError(
                                f"format {rec.get('format')!r}, expected {KG_FORMAT!r}"
                            )
                    elif "entity" in rec:
                        e = Entity(**_from_record(rec["entity"]))
                        kg.entities[e.name] = e
                    else:
                        kg.relations.append(Relation(**_from_record(rec["relation"])))
                except (ValueError, KeyError, TypeError) as err:
                    raise ValueError(f"{path}:{line_no}: not a TemporalKG line ({err})") from None
        return kg

    def item(self, key: str) -> Entity | Relation:
        """An entity name or a relation key -> the item; KeyError names the key."""
        if key in self.entities:
            return self.entities[key]
        for r in self.relations:
            if r.key == key:
                return r
        raise KeyError(f"TemporalKG: no entity or relation {key!r}")


@dataclasses.dataclass
class KGStats:
    """What `build_kg` made and skipped.

    Attributes:
      entities, relations: counts by kind.
      news, news_extracted, news_skipped: news items, those the extractor handled, those it
        gave up on (invalid output after retries).
      charts, charts_missing_png: charts, those whose PNG is missing (entity kept, no summary).
      charts_summarized: summaries by source ("mllm" | "prices"); charts_without_summary:
        charts with a PNG the summarizer had nothing for (e.g. no prices in the period).
      extractor: the extractor's own counters (calls, cached, retries, skipped, ...).
    """

    entities: dict[str, int] = dataclasses.field(default_factory=dict)
    relations: dict[str, int] = dataclasses.field(default_factory=dict)
    news: int = 0
    news_extracted: int = 0
    news_skipped: int = 0
    charts: int = 0
    charts_missing_png: int = 0
    charts_summarized: dict[str, int] = dataclasses.field(default_factory=dict)
    charts_without_summary: int = 0
    extractor: dict[str, int] = dataclasses.field(default_factory=dict)

    def flat(self) -> dict[str, int]:
        """Flat `kg/...` metric names -> numbers (for summary.json)."""
        out: dict[str, int] = {
            "kg/entities": sum(self.entities.values()),
            "kg/relations": sum(self.relations.values()),
        }
        for name in ("news", "news_extracted", "news_skipped", "charts", "charts_missing_png"):
            out[f"kg/{name}"] = getattr(self, name)
        out["kg/charts_without_summary"] = self.charts_without_summary
        for group in ("entities", "relations", "charts_summarized", "extractor"):
            for k, v in sorted(getattr(self, group).items()):
                out[f"kg/{group}/{k}"] = int(v)
        return out


class KGBuilder:
    """Accumulates entities (merged by name) and relations (merged by key + time).

    `entity(e) -> name`: a repeated name keeps the first kind (unless that is the placeholder
    "entity" / "concept"), takes the hull of both times, appends a description it does not
    contain yet after " | " and unites the sources. `relation(r)`: self-loops are dropped; a
    repeated (key, time) joins descriptions and sources the same way."""

    def __init__(self) -> None:
        self.entities: dict[str, Entity] = {}
        self.relations: list[Relation] = []
        self._rel_index: dict[tuple, int] = {}

    def entity(self, e: Entity) -> str:
        prev = self.entities.get(e.name)
        if prev is None:
            self.entities[e.name] = e
            return e.name
        time = prev.time
        if time is None or e.time is None:
            time = time or e.time
        else:
            time = TimeSpan(min(time.start, e.time.start), max(time.end, e.time.end))
        desc = prev.description
        if e.description and e.description not in desc:
            desc = f"{desc} | {e.description}" if desc else e.description
        srcs = tuple(dict.fromkeys((*prev.source_ids, *e.source_ids)))
        kind = prev.kind if prev.kind not in ("entity", "concept") else e.kind
        self.entities[e.name] = Entity(e.name, kind, time, desc, srcs)
        return e.name

    def relation(self, r: Relation) -> None:
        if r.src == r.dst:
            return
        key = (r.key, r.time)
        i = self._rel_index.get(key)
        if i is None:
            self._rel_index[key] = len(self.relations)
            self.relations.append(r)
            return
        prev = self.relations[i]
        srcs = tuple(dict.fromkeys((*prev.source_ids, *r.source_ids)))
        desc = prev.description
        if r.description and r.description not in desc:
            desc = f"{desc} | {r.description}"
        self.relations[i] = dataclasses.replace(prev, description=desc, source_ids=srcs)
