"""ROUGE-L (rouge_score semantics) and the Porter stemmer against hand-computed values."""

import pytest

from jaxmethods.eval.porter import porter_stem
from jaxmethods.eval.rouge import lcs_length, rouge1, rouge_l, rouge_l_batch, rouge_tokenize

# Examples from Porter (1980), whole-algorithm outputs.
PORTER = {
    "caresses": "caress", "ponies": "poni", "ties": "ti", "caress": "caress", "cats": "cat",
    "feed": "feed", "plastered": "plaster", "motoring": "motor", "sing": "sing", "hopping": "hop",
    "tanned": "tan", "falling": "fall", "hissing": "hiss", "fizzed": "fizz", "failing": "fail",
    "filing": "file", "happy": "happi", "sky": "sky", "generalizations": "gener",
    "oscillators": "oscil", "hopeful": "hope", "goodness": "good", "adjustable": "adjust",
    "adoption": "adopt", "replacement": "replac", "dependent": "depend", "controll": "control",
    "roll": "roll", "cease": "ceas", "allowance": "allow", "inference": "infer",
    "revival": "reviv", "gyroscopic": "gyroscop", "irritant": "irrit", "communism": "commun",
    "activate": "activ", "effective": "effect", "bowdlerize": "bowdler",
    "homologous": "homolog", "relational": "relat", "conditional": "condit",
    "rational": "ration", "agreed": "agre", "conflated": "conflat", "sized": "size",
    "connections": "connect", "connecting": "connect",
}  # fmt: skip


@pytest.mark.parametrize("word", sorted(PORTER))
def test_porter_stemmer(word):
    assert porter_stem(word) == PORTER[word]


def test_tokenizer_rules():
    assert rouge_tokenize("Hello, World! It's 2024-ish.") == [
        "hello",
        "world",
        "it",
        "s",
        "2024",
        "ish",
    ]
    assert rouge_tokenize("Café naïve") == ["caf", "na", "ve"]  # non-ASCII letters split tokens
    assert rouge_tokenize("running cats", use_stemmer=True) == ["run", "cat"]
    assert rouge_tokenize("the runs bus", use_stemmer=True) == [
        "the",
        "run",
        "bus",
    ]  # len <= 3 kept


def test_lcs():
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4
    assert lcs_length([], ["a"]) == 0


def test_rouge_l_hand_values():
    # target 6 tokens, prediction 5 tokens, LCS "the cat on the mat" = 5
    s = rouge_l("The cat sat on the mat", "the cat is on the mat")
    # prediction tokens: the cat is on the mat (6); LCS = the cat on the mat (5)
    assert s.recall == pytest.approx(5 / 6)
    assert s.precision == pytest.approx(5 / 6)
    assert s.fmeasure == pytest.approx(5 / 6)
    s = rouge_l("a b c d", "a c")
    assert (s.precision, s.recall) == (1.0, 0.5)
    assert s.fmeasure == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert rouge_l("", "anything").fmeasure == 0.0
    assert rouge_l("x y", "z").recall == 0.0
    # stemming lets inflections match
    assert rouge_l("He was running", "he runs", use_stemmer=True).recall == pytest.approx(2 / 3)
    assert rouge_l("connected cats", "connecting cat", use_stemmer=True).recall == 1.0


def test_rouge1_and_batch():
    s = rouge1("a a b", "a c a a")
    assert s.recall == pytest.approx(2 / 3) and s.precision == pytest.approx(2 / 4)
    assert [x.recall for x in rouge_l_batch(["a b", "c"], ["a", "c"])] == [0.5, 1.0]
    with pytest.raises(ValueError, match="2 targets but 1"):
        rouge_l_batch(["a", "b"], ["a"])
