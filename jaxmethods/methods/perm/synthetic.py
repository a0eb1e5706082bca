"""Synthetic PERM data for offline demos and tests: persona / scenario / query records (the
fields of the authors' JSONL after reading) and formatted completions of mixed quality, used to
warm-start a tiny policy (what an instruct checkpoint brings) and to train a tiny judge LM."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERSONAS = (
    "a night-shift nurse who rarely talks about herself",
    "a first-year PhD student far from home",
    "a retired teacher who lives alone",
    "a young father with a newborn",
    "a high-school student before exams",
    "a chef who just closed his restaurant",
)
SCENARIOS = (
    "her sister forgot her birthday after a long week",
    "his first paper was rejected with harsh reviews",
    "her old dog is getting weaker",
    "he has not slept properly for weeks",
    "the exam results come out tomorrow",
    "the lease ended and the staff had to go",
)
QUERIES = (
    "Honestly it's fine, I'm used to it.",
    "Maybe I'm just not cut out for this.",
    "I keep pretending everything will be fine.",
    "I don't even know why I'm telling you this.",
    "Everyone says I should be happy.",
)
GOOD_ANALYSES = (
    "She feels tired and hurt.",
    "He is anxious and feels lonely.",
    "They feel overwhelmed and sad.",
    "He is worried and stressed.",
)
BAD_ANALYSES = ("The user sent a message.", "A scenario is given.", "Noted.")
GOOD_RESPONSES = (
    "I hear you, you are not alone.",
    "It makes sense, I am here for you.",
    "You deserve rest, try a short walk today.",
    "I am proud of you, call a friend tomorrow.",
)
BAD_RESPONSES = (
    "It is understandable to feel that way.",
    "Okay.",
    "Please provide more details.",
    "I can understand why.",
)


def synthetic_records(num: int, seed: int, users: Sequence = ()) -> list[dict]:
    """`num` records `{"persona", "scenario", "query"}` (+ `"user"`: `users[i mod U]`)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(num):
        row = {
            "persona": PERSONAS[rng.integers(len(PERSONAS))],
            "scenario": SCENARIOS[rng.integers(len(SCENARIOS))],
            "query": QUERIES[rng.integers(len(QUERIES))],
        }
        if len(users):
            row["user"] = users[i % len(users)]
        rows.append(row)
    return rows


def synthetic_completion(rng: np.random.Generator) -> str:
    """One completion: formatted or not, with good or poor analysis and response."""
    analysis = (GOOD_ANALYSES if rng.random() < 0.5 else BAD_ANALYSES)[rng.integers(3)]
    response = (GOOD_RESPONSES if rng.random() < 0.5 else BAD_RESPONSES)[rng.integers(4)]
    form = rng.integers(3)
    if form == 0:  # no headers: parses to ("", "")
        return f"{analysis} {response}"
    if form == 1:  # headers, one of the two sections poor
        return f"# Analysis\n{analysis}\n# Response\n{response}"
    good = GOOD_RESPONSES[rng.integers(len(GOOD_RESPONSES))]
    return f"# Analysis\n{GOOD_ANALYSES[rng.integers(len(GOOD_ANALYSES))]}\n# Response\n{good}"


def synthetic_completions(num: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [synthetic_completion(rng) for _ in range(num)]


def corpus(records: list[dict]) -> list[str]:
    """Texts a tiny tokenizer is trained on: the records and every completion phrase."""
    texts = [f"{r['persona']} {r['scenario']} {r['query']}" for r in records]
    texts += [*GOOD_ANALYSES, *BAD_ANALYSES, *GOOD_RESPONSES, *BAD_RESPONSES]
    return texts + synthetic_completions(32, seed=0)
