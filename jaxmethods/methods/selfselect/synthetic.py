"""The demo's synthetic world: entity -> city facts, half of them taught to the model, a passage
corpus that covers a different, overlapping half.

- Entities have a short made-up name, a profession and a home city (one of `CITIES`). The
  question is "Where does {name} the {profession} live?", the gold answer the city.
- `known` entities: their closed-book QA is in the pre-training rows, so the model answers them
  from memory (parametric knowledge); other entities it has never seen.
- `covered` entities: their passage "{name} the {profession} lives in {city}." is in the
  retrieval corpus, so BM25 finds it (plus same-profession distractors); for the others BM25
  returns distractors only.
- Pre-training also teaches three skills on a disjoint pool of reading-only entities: reading
  (the RAG prompt answered from the passage that names the entity, ranked first as BM25 ranks
  it), relevance ("is the first passage about the asked entity?", yes / no, the negatives being
  same-profession passages as BM25 returns them), and the selection *format* (the selection
  prompt answered with one of the two candidates, drawn at random, so the base model follows the
  format without knowing which source to trust).

Nothing here decides an outcome: which source the model should trust is learnt from the RGP
pairs the pipeline builds from the model's own samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jaxmethods.methods.selfselect.prompts import (
    PromptConfig,
    as_response,
    render,
    render_passages,
)
from jaxmethods.retrieval.docstore import Passage

CITIES = ("Rome", "Paris", "Oslo", "Lima", "Cairo", "Delhi", "Tokyo", "Quito", "Dakar", "Hanoi",
          "Sofia", "Perth")  # fmt: skip
RELEVANCE = "{passages} ; Q: {question} ; Is the first passage about it?"
PROFESSIONS = ("baker", "pilot", "nurse", "tailor", "farmer", "judge", "poet", "miner")
_ONSETS = "bdfghjklmnprstvwz"
_VOWELS = "aeiouy"
_CODAS = "klmnprstx"


@dataclass(frozen=True)
class WorldConfig:
    """Sizes of the synthetic world (`num_entities` = train + test questions)."""

    num_entities: int = 320
    num_test: int = 120
    known_frac: float = 0.5
    covered_frac: float = 0.5
    num_reading_entities: int = 300
    reading_rows: int = 1200
    format_rows: int = 400
    known_repeats: int = 4
    num_distractors: int = 2
    gold_first: bool = True
    relevance_rows: int = 1200
    seed: int = 0


@dataclass(frozen=True)
class World:
    facts: list[dict]  # {"id", "name", "profession", "city"}
    known: frozenset[str]
    covered: frozenset[str]
    train: list[dict]  # {"id", "question", "answers"}
    test: list[dict]
    corpus: list[Passage]
    reading: list[dict]  # reading-only facts


def _names(n: int, rng: np.random.Generator) -> list[str]:
    pool = [o.upper() + v + c for o in _ONSETS for v in _VOWELS for c in _CODAS]
    if n > len(pool):
        raise ValueError(f"the synthetic world has at most {len(pool)} names, asked for {n}")
    return [pool[i] for i in rng.permutation(len(pool))[:n]]


def question_of(fact: dict) -> str:
    return f"Where does {fact['name']} the {fact['profession']} live?"


def passage_of(fact: dict) -> Passage:
    text = f"{fact['name']} the {fact['profession']} lives in {fact['city']}"
    return Passage(id=fact["id"], text=text)


def make_world(cfg: WorldConfig) -> World:
    rng = np.random.default_rng(cfg.seed)
    names = _names(cfg.num_entities + cfg.num_reading_entities, rng)

    def fact(i: int, prefix: str) -> dict:
        return {"id": f"{prefix}{i}", "name": names[i], "profession": str(rng.choice(PROFESSIONS)),
                "city": str(rng.choice(CITIES))}  # fmt: skip

    facts = [fact(i, "e") for i in range(cfg.num_entities)]
    reading = [fact(i, "r") for i in range(cfg.num_entities, len(names))]
    ids = [f["id"] for f in facts]
    known = frozenset(i for i in ids if rng.random() < cfg.known_frac)
    covered = frozenset(i for i in ids if rng.random() < cfg.covered_frac)
    qa = [{"id": f["id"], "question": question_of(f), "answers": [f["city"]]} for f in facts]
    order = rng.permutation(len(qa))
    test = [qa[i] for i in sorted(order[: cfg.num_test])]
    train = [qa[i] for i in sorted(order[cfg.num_test :])]
    corpus = [passage_of(f) for f in facts if f["id"] in covered]
    # Reading-only passages make the corpus larger and are BM25 distractors too.
    corpus += [passage_of(f) for f in reading]
    return World(facts, known, covered, train, test, corpus, reading)


def pretraining_rows(world: World, prompts: PromptConfig, cfg: WorldConfig) -> list[dict]:
    """{"prompt", "response"} rows that build the base model: closed-book QA of the known facts
    (`known_repeats` times), reading on the reading-only pool, and the selection format."""
    rng = np.random.default_rng(cfg.seed + 1)
    rows = []
    for f in world.facts:
        if f["id"] in world.known:
            row = {"prompt": render("closed_book", prompts, question_of(f)),
                   "response": as_response(f["city"])}  # fmt: skip
            rows += [row] * cfg.known_repeats
    pool = world.reading

    def passages_for(f: dict, with_gold: bool) -> list[tuple[str, str]]:
        others = [pool[j] for j in rng.choice(len(pool), cfg.num_distractors + 1, replace=False)]
        others = [o for o in others if o["id"] != f["id"]][: cfg.num_distractors]
        ps = [passage_of(o) for o in others]
        if with_gold:  # first (as BM25 ranks it) or anywhere: then reading needs name matching
            ps.insert(0 if cfg.gold_first else int(rng.integers(0, len(ps) + 1)), passage_of(f))
        return [(p.title, p.text) for p in ps]

    for _ in range(cfg.reading_rows):
        f = pool[int(rng.integers(len(pool)))]
        prompt = render("rag", prompts, question_of(f), passages_for(f, True))
        rows.append({"prompt": prompt, "response": as_response(f["city"])})
    for _ in range(cfg.format_rows):
        f = pool[int(rng.integers(len(pool)))]
        a, b = rng.choice(CITIES, 2, replace=False)
        prompt = render("select", prompts, question_of(f), passages_for(f, rng.random() < 0.5),
                        [str(a), str(b)])  # fmt: skip
        rows.append({"prompt": prompt, "response": as_response(str(rng.choice([a, b])))})
    for _ in range(cfg.relevance_rows):
        f = pool[int(rng.integers(len(pool)))]
        relevant = bool(rng.random() < 0.5)
        ps = passages_for(f, relevant)
        if not relevant:  # a same-profession distractor first, as BM25 ranks them
            twin = [o for o in pool if o["profession"] == f["profession"] and o["id"] != f["id"]]
            o = twin[int(rng.integers(len(twin)))]
            ps[0] = (passage_of(o).title, passage_of(o).text)
        text = RELEVANCE.format(passages=render_passages(prompts, ps), question=question_of(f))
        rows.append({"prompt": text, "response": as_response("yes" if relevant else "no")})
    return [rows[i] for i in rng.permutation(len(rows))]
