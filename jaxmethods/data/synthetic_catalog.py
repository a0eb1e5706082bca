"""A synthetic Amazon-2018-style catalog for demos and tests (offline, seconds).

Items belong to franchises whose titles share long word prefixes ("Star Harbor Legends Saga Vol.
3"), so many title tokens are forced (zero information gain) as in real catalogs; item popularity
is Zipf-skewed. Each user mostly buys from a favourite franchise, more popular items more often,
so the next item is learnable from the history. The output is raw review and metadata records in
the Amazon 2018 JSON format, which `jaxmethods.data.amazon2018.process_reviews` turns into the CSV
splits exactly like the real files (a few malformed titles exercise its filters).
"""

from __future__ import annotations

import numpy as np

_WORDS = [
    "star",
    "harbor",
    "legend",
    "crystal",
    "shadow",
    "ember",
    "river",
    "frost",
    "iron",
    "golden",
    "silent",
    "wild",
    "neon",
    "ancient",
    "lunar",
    "hidden",
    "royal",
    "storm",
    "velvet",
    "cosmic",
    "dragon",
    "forest",
    "ocean",
    "desert",
    "thunder",
    "paper",
    "silver",
    "mystic",
    "rapid",
    "brave",
    "quiet",
]
_SERIES = ("Saga", "Chronicles", "Collection", "Adventures", "Deluxe Edition", "Trilogy")
_SUFFIXES = ("Vol.", "Part", "Episode", "Book")
_START = 1506816000  # 2017-10-01 UTC
_END = 1541030400  # 2018-11-01 UTC


def synthetic_catalog_titles(
    num_franchises: int, items_per_franchise: int, rng: np.random.Generator
) -> list[str]:
    """Distinct titles, franchise by franchise, sharing `"<Name> <Series> <Suffix>"` prefixes."""
    if num_franchises * 3 > len(_WORDS) ** 2:
        raise ValueError(f"num_franchises={num_franchises} is too large for the word pool")
    titles, names = [], set()
    while len(names) < num_franchises:
        a, b = rng.choice(len(_WORDS), size=2, replace=False)
        names.add(f"{_WORDS[a].title()} {_WORDS[b].title()}")
    for f, name in enumerate(sorted(names)):
        series = _SERIES[f % len(_SERIES)]
        suffix = _SUFFIXES[f % len(_SUFFIXES)]
        for k in range(items_per_franchise):
            extra = f" {_WORDS[(f + k) % len(_WORDS)].title()}" if k % 3 == 2 else ""
            titles.append(f"{name} {series} {suffix} {k + 1}{extra}")
    return titles


def synthetic_amazon(
    *,
    num_franchises: int = 8,
    items_per_franchise: int = 12,
    num_users: int = 400,
    events_per_user: tuple[int, int] = (6, 14),
    loyalty: float = 0.85,
    zipf_a: float = 1.1,
    seed: int = 0,
) -> tuple[list[dict], list[dict]]:
    """Raw `(reviews, metadata)` records in the Amazon 2018 JSON-lines schema.

    Args:
      num_franchises, items_per_franchise: catalog size is their product.
      num_users: users; each draws `events_per_user` (inclusive range) purchases.
      loyalty: probability that a purchase comes from the user's favourite franchise (else an
        item drawn by global popularity).
      zipf_a: exponent of the popularity skew (over franchises and over items within one).
      seed: everything is deterministic given the seed.
    Returns:
      reviews: dicts with reviewerID, asin, unixReviewTime, overall;
      metadata: dicts with asin and title (plus three items whose titles the filters reject).
    """
    rng = np.random.default_rng(seed)
    titles = synthetic_catalog_titles(num_franchises, items_per_franchise, rng)
    n_items = len(titles)
    within = 1.0 / np.arange(1, items_per_franchise + 1) ** zipf_a
    within = within / within.sum()
    franchise_pop = 1.0 / np.arange(1, num_franchises + 1) ** zipf_a
    franchise_pop = franchise_pop / franchise_pop.sum()
    # Shuffle popularity ranks so popular items are not always "Vol. 1".
    rank_of = np.stack([rng.permutation(items_per_franchise) for _ in range(num_franchises)])
    global_pop = (franchise_pop[:, None] * within[rank_of]).reshape(-1)

    asins = [f"S{i:05d}" for i in range(n_items)]
    reviews = []
    for u in range(num_users):
        fav = rng.choice(num_franchises, p=franchise_pop)
        n = int(rng.integers(events_per_user[0], events_per_user[1] + 1))
        times = np.sort(rng.integers(_START, _END, size=n))
        for t in times:
            if rng.random() < loyalty:
                item = fav * items_per_franchise + rng.choice(
                    items_per_franchise, p=within[rank_of[fav]]
                )
            else:
                item = rng.choice(n_items, p=global_pop)
            reviews.append(
                {
                    "reviewerID": f"U{u:05d}",
                    "asin": asins[item],
                    "unixReviewTime": int(t),
                    "overall": float(rng.integers(3, 6)),
                }
            )
    metadata = [{"asin": a, "title": t} for a, t in zip(asins, titles)]
    metadata += [
        {"asin": "BAD00001", "title": '<span id="x">Broken</span>'},
        {"asin": "BAD00002", "title": " ".join(["word"] * 21)},
        {"asin": "BAD00003"},
    ]
    for j, asin in enumerate(("BAD00001", "BAD00002", "BAD00003")):
        for u in range(6):
            reviews.append(
                {
                    "reviewerID": f"U{u:05d}",
                    "asin": asin,
                    "unixReviewTime": _START + 1000 * (j + 1) + u,
                    "overall": 5.0,
                }
            )
    return reviews, metadata
