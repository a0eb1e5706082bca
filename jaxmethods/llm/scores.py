"""Judge-score parsing: a number in a range from free text, or None; never an exception.

    parse_score("Reasoning... Score: 4", 1, 5)       -> 4.0
    parse_score("I'd give it 4/5.", 1, 5)            -> 4.0
    parse_score("**3**", 1, 5, integer=True)         -> 3
    parse_score("Total Score: 85/100", 0, 100)       -> 85.0
    parse_score("Score: 7", 1, 5)                    -> None   (out of range)
    parse_score("no idea", 1, 5)                     -> None

Candidates are looked for in tiers, most explicit first; the first tier with a match decides
(its first or last match, `which`), and a value outside [low, high] (or not whole when
`integer=True`) is None rather than a fallback to a weaker tier:
  1. a label: "score", "rating", "grade" (optionally "total"/"final"/"overall" before it),
     then up to 12 characters without digits (":", " is ", ":** ", " of ") and the number;
  2. a fraction "N/high" or "N out of high" (the denominator must equal `high`);
  3. an emphasised number: "**N**", "[[N]]", "[N]";
  4. the whole text (stripped of spaces, "*", "." and quotes) is a number.
Numbers are non-negative decimals ("4", "4.5", ".5" is not one).
"""

from __future__ import annotations

import math
import re
from typing import Any

_NUM = r"(\d+(?:\.\d+)?)"
_LABELLED = re.compile(
    r"\b(?:(?:total|final|overall)\s+)?(?:score|rating|grade)\b[^\d\n]{0,12}?" + _NUM, re.I
)
_FRACTION = re.compile(_NUM + r"\s*(?:/|out\s+of)\s*" + _NUM, re.I)
_EMPHASIS = re.compile(
    r"\*\*\s*" + _NUM + r"\s*\*\*|\[\[\s*" + _NUM + r"\s*\]\]|\[\s*" + _NUM + r"\s*\]"
)
_BARE = re.compile(r"^" + _NUM + r"$")


def _pick(values: list[str], which: str) -> str | None:
    if not values:
        return None
    return values[0] if which == "first" else values[-1]


def _candidates(text: str, high: float) -> list[list[str]]:
    labelled = [m.group(1) for m in _LABELLED.finditer(text)]
    fractions = [m.group(1) for m in _FRACTION.finditer(text) if float(m.group(2)) == high]
    emphasis = [next(g for g in m.groups() if g is not None) for m in _EMPHASIS.finditer(text)]
    bare = [m.group(1) for m in [_BARE.match(text.strip().strip("*.\"' \n"))] if m]
    return [labelled, fractions, emphasis, bare]


def parse_score(
    text: Any, low: float, high: float, *, integer: bool = False, which: str = "last"
) -> float | int | None:
    """The judge's score in [low, high] from `text`, or None when there is no valid one.

    Args:
      text: the judge's reply (anything that is not a string gives None).
      low, high: the inclusive range.
      integer: require a whole number and return an int.
      which: "last" (default: the verdict usually ends the reply) or "first" match of the
        deciding tier.
    """
    if which not in ("first", "last"):
        raise ValueError(f"parse_score: which must be 'first' or 'last', got {which!r}")
    if not isinstance(text, str) or not text.strip():
        return None
    for tier in _candidates(text, float(high)):
        raw = _pick(tier, which)
        if raw is None:
            continue
        value = float(raw)
        if not (math.isfinite(value) and low <= value <= high):
            return None
        if integer:
            return int(value) if value == int(value) else None
        return value
    return None


def parse_scores(
    texts: list[Any], low: float, high: float, *, integer: bool = False, which: str = "last"
) -> list[float | int | None]:
    """`parse_score` over a list."""
    return [parse_score(t, low, high, integer=integer, which=which) for t in texts]
