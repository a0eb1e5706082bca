"""DEP's generation metrics against hand-computed values of the metrics' definitions and the
libraries called directly."""

from __future__ import annotations

import numpy as np
import pytest

from jaxmethods.eval.generation_metrics import (
    MeteorOptions,
    generation_metrics,
    meteor,
    meteor_label,
    rouge_f1,
    sacrebleu_score,
)

OFFLINE = MeteorOptions(wordnet=False, tokenizer="wordpunct")


def _meteor_by_hand(matches: int, n_hyp: int, n_ref: int, chunks: int) -> float:
    """Banerjee & Lavie with nltk's defaults alpha 0.9, beta 3, gamma 0.5."""
    if matches == 0:
        return 0.0
    p, r = matches / n_hyp, matches / n_ref
    fmean = p * r / (0.9 * p + 0.1 * r)
    return fmean * (1 - 0.5 * (chunks / matches) ** 3)


def test_rouge_by_hand():
    out = rouge_f1(["the cat sat on the mat", "a b c d"], ["  the cat sat ", "d c b a"])
    # ROUGE-1: P = 3/3, R = 3/6; ROUGE-L the same (LCS 3). Reversed: unigrams 4/4, LCS 1.
    np.testing.assert_allclose(out["rouge1"], [2 / 3, 1.0])
    np.testing.assert_allclose(out["rougeL"], [2 / 3, 0.25])


def test_meteor_exact_stem_no_synonyms():
    refs = ["the cat sat on the mat", "cat runs", "large dog"]
    preds = ["the cat sat on the mat", "cats running", "big dog"]
    got = meteor(refs, preds, OFFLINE)
    want = [
        _meteor_by_hand(6, 6, 6, 1),
        _meteor_by_hand(2, 2, 2, 1),  # Porter stems: cats -> cat, running / runs -> run
        _meteor_by_hand(1, 2, 2, 1),  # big / large would match only through WordNet
    ]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert meteor_label(OFFLINE) == "METEOR (exact+stem, no WordNet synonyms; wordpunct tokens)"
    assert meteor_label(MeteorOptions()) == "METEOR"


def test_meteor_without_wordnet_names_the_download():
    import nltk

    try:
        nltk.data.find("corpora/wordnet")
        pytest.skip("WordNet is installed here")
    except LookupError:
        pass
    with pytest.raises(LookupError, match=r"nltk\.downloader wordnet"):
        meteor(["a"], ["a"], MeteorOptions(wordnet=True, tokenizer="wordpunct"))
    with pytest.raises(ValueError, match="tokenizer"):
        MeteorOptions(tokenizer="spaces")


def test_sacrebleu_and_table():
    import sacrebleu

    refs = ["The quick brown fox jumps over the lazy dog .", "It was a dark night ."]
    preds = ["The quick brown fox jumped over the dog .", "It was a dark and stormy night ."]
    assert sacrebleu_score(refs, refs) == pytest.approx(100.0)
    assert sacrebleu_score(refs, preds) == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    m = generation_metrics(refs, preds, meteor_options=OFFLINE)
    r = rouge_f1(refs, preds)["rougeL"]
    assert m["rougeL"] == pytest.approx(r.mean())
    assert m["rougeL_se"] == pytest.approx(np.std(r, ddof=1) / np.sqrt(2))
    assert set(m) == {
        "rouge1",
        "rouge1_se",
        "rougeL",
        "rougeL_se",
        "meteor",
        "meteor_se",
        "sacrebleu",
    }
    with pytest.raises(ValueError, match="2 references but 1 predictions"):
        rouge_f1(refs, preds[:1])
