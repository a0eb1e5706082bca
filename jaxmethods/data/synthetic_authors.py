"""Synthetic fictitious-author Q&A in TOFU's schema, for offline demos and tests.

TOFU describes 200 made-up authors with 20 QA pairs each; the forget splits are the last 1/5/10%
of the authors. This generator builds the same structure at toy scale from seeded attribute
tables: every author gets `questions_per_author` facts (birthplace, birth year, genre, parents'
jobs, award, first book, ...), each asked as a question with an answer, a paraphrased answer and
`num_perturbed` perturbed (wrong) answers that swap the fact for another value of the same
attribute. It also builds small `real_authors_perturbed` and `world_facts_perturbed` sets of
true, well-known facts (what the pretrained model is supposed to keep).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_FIRST = ("Aria", "Bram", "Cleo", "Dario", "Elin", "Farid", "Greta", "Hugo", "Ines", "Jonas",
          "Kira", "Lior", "Mara", "Nils", "Oona", "Pavel", "Quinn", "Rosa", "Soren",
          "Talia")  # fmt: skip
_LAST = ("Ashgrove", "Brightwater", "Coldmere", "Dunmore", "Eastbrook", "Fairholt", "Glenrow",
         "Hollins", "Ivesdale", "Juniper", "Kestrel", "Larkspur", "Moorfield", "Northcott",
         "Oakhurst", "Pennington", "Quarrier", "Redfern", "Stonebridge", "Thornbury")  # fmt: skip
_CITIES = ("Lisbon", "Oslo", "Nairobi", "Lima", "Seoul", "Dublin", "Hanoi", "Quito", "Tunis",
           "Riga", "Perth", "Accra", "Bergen", "Cusco", "Porto", "Krakow")  # fmt: skip
_GENRES = ("mystery", "science fiction", "historical fiction", "poetry", "fantasy", "horror",
           "romance", "satire", "travel writing", "biography")  # fmt: skip
_JOBS = ("baker", "pilot", "surgeon", "carpenter", "librarian", "chemist", "fisherman",
         "painter", "teacher", "tailor", "judge", "gardener")  # fmt: skip
_AWARDS = ("the Silver Quill Prize", "the Harbor Light Award", "the Golden Lantern Medal",
           "the Northern Star Prize", "the Amber Page Award", "the Crimson Ink Prize")  # fmt: skip
_NOUNS = ("River", "Lantern", "Orchard", "Compass", "Mirror", "Harbor", "Glacier", "Garden",
          "Clock", "Tower", "Meadow", "Falcon")  # fmt: skip
_ADJ = ("Silent", "Hidden", "Broken", "Golden", "Distant", "Crimson", "Winter", "Endless")

# (attribute, question, answer, paraphrase) templates; {n} is the author's name, {v} the value.
_FACTS = (
    ("city", "Where was {n} born?", "{n} was born in {v}.", "The birthplace of {n} is {v}."),
    ("year", "In which year was {n} born?", "{n} was born in {v}.", "{n}'s birth year is {v}."),
    ("genre", "What genre does {n} write?", "{n} writes {v}.", "{n} is known for {v}."),
    ("father", "What did the father of {n} do?", "The father of {n} was a {v}.",
     "{n}'s father worked as a {v}."),
    ("mother", "What did the mother of {n} do?", "The mother of {n} was a {v}.",
     "{n}'s mother worked as a {v}."),
    ("award", "Which award did {n} win?", "{n} won {v}.", "{n} received {v}."),
    ("book", "What is the first book of {n}?", "The first book of {n} is {v}.",
     "{n} debuted with {v}."),
)  # fmt: skip

_REAL_AUTHORS = (
    ("Who wrote Pride and Prejudice?", "Jane Austen"),
    ("Who wrote Hamlet?", "William Shakespeare"),
    ("Who wrote War and Peace?", "Leo Tolstoy"),
    ("Who wrote Don Quixote?", "Miguel de Cervantes"),
    ("Who wrote Moby Dick?", "Herman Melville"),
    ("Who wrote The Odyssey?", "Homer"),
    ("Who wrote Frankenstein?", "Mary Shelley"),
    ("Who wrote Ulysses?", "James Joyce"),
)
_WORLD_FACTS = (
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Egypt?", "Cairo"),
    ("What is the capital of Canada?", "Ottawa"),
    ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of Kenya?", "Nairobi"),
    ("What is the capital of Peru?", "Lima"),
)


def _values(rng: np.random.Generator) -> dict[str, list[str]]:
    books = [f"The {a} {n}" for a in _ADJ for n in _NOUNS]
    return {
        "city": list(_CITIES),
        "year": [str(y) for y in range(1931, 1999)],
        "genre": list(_GENRES),
        "father": list(_JOBS),
        "mother": list(_JOBS),
        "award": list(_AWARDS),
        "book": [books[i] for i in rng.permutation(len(books))],
    }


def _options(rows: tuple[tuple[str, str], ...], num_perturbed: int, rng) -> list[dict]:
    answers = [a for _, a in rows]
    out = []
    for q, a in rows:
        wrong = [x for x in answers if x != a]
        picks = rng.choice(len(wrong), size=min(num_perturbed, len(wrong)), replace=False)
        out.append({"question": q, "answer": a, "perturbed_answer": [wrong[i] for i in picks]})
    return out


def synthetic_tofu(
    *,
    num_authors: int = 20,
    questions_per_author: int = 5,
    forget_percent: int = 10,
    num_perturbed: int = 3,
    seed: int = 0,
) -> dict[str, list[dict]]:
    """Fictitious-author QA splits keyed by TOFU config name.

    Returns configs "full", f"forget{p:02d}", f"retain{100-p}", f"forget{p:02d}_perturbed",
    "retain_perturbed", "real_authors_perturbed", "world_facts_perturbed" where p =
    `forget_percent` (the forget split is the last p% of the authors, at least one). Rows have
    TOFU's fields: question, answer, paraphrased_answer, perturbed_answer (a list), author.
    """
    if not 1 <= questions_per_author <= len(_FACTS):
        raise ValueError(f"questions_per_author must be in [1, {len(_FACTS)}]")
    if num_authors > len(_FIRST) * len(_LAST):
        raise ValueError(f"at most {len(_FIRST) * len(_LAST)} authors")
    if forget_percent not in (1, 5, 10):
        raise ValueError(f"forget_percent must be 1, 5 or 10 (TOFU's splits), got {forget_percent}")
    rng = np.random.default_rng(seed)
    values = _values(rng)
    name_ids = rng.permutation(len(_FIRST) * len(_LAST))[:num_authors]
    rows = []
    for a, nid in enumerate(name_ids):
        name = f"{_FIRST[nid % len(_FIRST)]} {_LAST[nid // len(_FIRST)]}"
        book_value = values["book"][a % len(values["book"])]
        for attr, q, ans, para in _FACTS[:questions_per_author]:
            pool = values[attr]
            v = book_value if attr == "book" else pool[rng.integers(len(pool))]
            wrong = [x for x in pool if x != v]
            picks = rng.choice(len(wrong), size=num_perturbed, replace=False)
            rows.append(
                {
                    "question": q.format(n=name),
                    "answer": ans.format(n=name, v=v),
                    "paraphrased_answer": para.format(n=name, v=v),
                    # As in TOFU, perturbed answers are the paraphrase with a wrong fact.
                    "perturbed_answer": [para.format(n=name, v=wrong[i]) for i in picks],
                    "author": a,
                }
            )
    n_forget_authors = max(1, round(num_authors * forget_percent / 100))
    cut = (num_authors - n_forget_authors) * questions_per_author
    tag = f"{forget_percent:02d}"
    forget, retain = rows[cut:], rows[:cut]
    qa = lambda rs: [{"question": r["question"], "answer": r["answer"]} for r in rs]
    return {
        "full": qa(rows),
        f"forget{tag}": qa(forget),
        f"retain{100 - forget_percent}": qa(retain),
        f"forget{tag}_perturbed": forget,
        "retain_perturbed": retain[: max(len(forget), min(len(retain), 4 * len(forget)))],
        "real_authors_perturbed": _options(_REAL_AUTHORS, num_perturbed, rng),
        "world_facts_perturbed": _options(_WORLD_FACTS, num_perturbed, rng),
    }


def write_tofu_folder(splits: dict[str, list[dict]], folder: str | Path) -> Path:
    """Writes each config as `<folder>/<config>.json` in JSON lines, the hub's file layout."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        with open(folder / f"{name}.json", "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    return folder
