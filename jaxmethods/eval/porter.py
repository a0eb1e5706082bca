"""The Porter (1980) suffix-stripping stemmer, original algorithm.

`rouge_score`'s tokenizer stems tokens longer than 3 characters with NLTK's
`PorterStemmer("ORIGINAL_ALGORITHM")` when `use_stemmer=True`, which is how open-unlearning (and
so BalDRO) scores ROUGE. This is an independent implementation of the algorithm as published
(M. F. Porter, "An algorithm for suffix stripping", Program 14(3), 1980), steps 1a to 5b, for
lower-case ASCII words. Only the longest matching suffix of each rule group is considered.
"""

from __future__ import annotations

from collections.abc import Callable

_VOWELS = frozenset("aeiou")


def _is_consonant(word: str, i: int) -> bool:
    ch = word[i]
    if ch in _VOWELS:
        return False
    if ch == "y":  # y is a consonant at the start or after a vowel, a vowel after a consonant
        return i == 0 or not _is_consonant(word, i - 1)
    return True


def _measure(stem: str) -> int:
    """m in [C](VC)^m[V]: the number of vowel-consonant sequences."""
    m, prev_vowel = 0, False
    for i in range(len(stem)):
        cons = _is_consonant(stem, i)
        if cons and prev_vowel:
            m += 1
        prev_vowel = not cons
    return m


def _has_vowel(stem: str) -> bool:
    return any(not _is_consonant(stem, i) for i in range(len(stem)))


def _ends_double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _is_consonant(word, len(word) - 1)


def _ends_cvc(word: str) -> bool:
    """*o: the stem ends consonant-vowel-consonant, the last not w, x or y."""
    if len(word) < 3:
        return False
    n = len(word)
    return (
        _is_consonant(word, n - 3)
        and not _is_consonant(word, n - 2)
        and _is_consonant(word, n - 1)
        and word[-1] not in "wxy"
    )


Rule = tuple[str, str, Callable[[str], bool] | None]


def _apply_rules(word: str, rules: list[Rule]) -> str:
    """Applies the first (longest) rule whose suffix matches; stops there even if its test fails."""
    for suffix, replacement, condition in rules:
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
            if condition is None or condition(stem):
                return stem + replacement
            return word
    return word


def _m_gt0(stem: str) -> bool:
    return _measure(stem) > 0


def _m_gt1(stem: str) -> bool:
    return _measure(stem) > 1


def _step1a(word: str) -> str:
    return _apply_rules(
        word, [("sses", "ss", None), ("ies", "i", None), ("ss", "ss", None), ("s", "", None)]
    )


def _step1b(word: str) -> str:
    if word.endswith("eed"):
        stem = word[:-3]
        return stem + "ee" if _measure(stem) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix):
            stem = word[: -len(suffix)]
            if not _has_vowel(stem):
                return word
            return _step1b_cleanup(stem)
    return word


def _step1b_cleanup(stem: str) -> str:
    for suffix, replacement in (("at", "ate"), ("bl", "ble"), ("iz", "ize")):
        if stem.endswith(suffix):
            return stem[: -len(suffix)] + replacement
    if _ends_double_consonant(stem) and stem[-1] not in "lsz":
        return stem[:-1]
    if _measure(stem) == 1 and _ends_cvc(stem):
        return stem + "e"
    return stem


def _step1c(word: str) -> str:
    if word.endswith("y") and _has_vowel(word[:-1]):
        return word[:-1] + "i"
    return word


_STEP2 = [
    (s, r, _m_gt0)
    for s, r in (
        ("ational", "ate"),
        ("tional", "tion"),
        ("enci", "ence"),
        ("anci", "ance"),
        ("izer", "ize"),
        ("abli", "able"),
        ("alli", "al"),
        ("entli", "ent"),
        ("eli", "e"),
        ("ousli", "ous"),
        ("ization", "ize"),
        ("ation", "ate"),
        ("ator", "ate"),
        ("alism", "al"),
        ("iveness", "ive"),
        ("fulness", "ful"),
        ("ousness", "ous"),
        ("aliti", "al"),
        ("iviti", "ive"),
        ("biliti", "ble"),
    )
]

_STEP3 = [
    (s, r, _m_gt0)
    for s, r in (
        ("icate", "ic"),
        ("ative", ""),
        ("alize", "al"),
        ("iciti", "ic"),
        ("ical", "ic"),
        ("ful", ""),
        ("ness", ""),
    )
]


def _ion_condition(stem: str) -> bool:
    return _measure(stem) > 1 and stem[-1:] in ("s", "t")


_STEP4_SUFFIXES = (
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent",
    "ion", "ou", "ism", "ate", "iti", "ous", "ive", "ize",
)  # fmt: skip


def _step4(word: str) -> str:
    # Longest match first: sort the suffixes that end the word by length.
    matches = sorted((s for s in _STEP4_SUFFIXES if word.endswith(s)), key=len, reverse=True)
    if not matches:
        return word
    suffix = matches[0]
    stem = word[: -len(suffix)]
    ok = _ion_condition(stem) if suffix == "ion" else _measure(stem) > 1
    return stem if ok else word


def _step5a(word: str) -> str:
    if word.endswith("e"):
        stem = word[:-1]
        m = _measure(stem)
        if m > 1 or (m == 1 and not _ends_cvc(stem)):
            return stem
    return word


def _step5b(word: str) -> str:
    if _measure(word) > 1 and _ends_double_consonant(word) and word.endswith("l"):
        return word[:-1]
    return word


def _longest_first(rules: list[Rule]) -> list[Rule]:
    return sorted(rules, key=lambda r: len(r[0]), reverse=True)


_STEP2 = _longest_first(_STEP2)
_STEP3 = _longest_first(_STEP3)


def porter_stem(word: str) -> str:
    """Stems one lower-case word, e.g. "generalizations" -> "gener", "happy" -> "happi"."""
    if len(word) <= 2:
        return word
    word = _step1a(word)
    word = _step1b(word)
    word = _step1c(word)
    word = _apply_rules(word, _STEP2)
    word = _apply_rules(word, _STEP3)
    word = _step4(word)
    word = _step5a(word)
    return _step5b(word)
