"""Model-side unlearning evaluation on a tiny random decoder: jitted statistics vs NumPy, TOFU
truth ratios through the pipeline, and the MUSE evaluator end to end."""

import jax
import numpy as np
import pytest
from flax import nnx

from jaxmethods.data.muse import pretraining_instance
from jaxmethods.data.tofu import LLAMA2_CHAT_TEMPLATE, tokenize_qa
from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.eval.likelihood import sequence_statistics
from jaxmethods.eval.muse_eval import MuseEvalSettings, cut_at_stopwords, evaluate_muse
from jaxmethods.eval.tofu_eval import TofuEvalSettings, forget_truth_ratios
from jaxmethods.eval.unlearning import privleak
from jaxmethods.models.decoder import DecoderConfig, DecoderLM

TEXTS = ["Where was Aria born?", "Aria was born in Lisbon.", "Aria's birthplace is Oslo.",
         "Aria's birthplace is Lisbon.", "Question: Answer: the story of the day went on"]  # fmt: skip
TOK = build_tiny_tokenizer(TEXTS, vocab_size=120)
MODEL = DecoderLM(
    DecoderConfig.tiny(vocab_size=len(TOK), hidden_size=16, intermediate_size=32, num_layers=1),
    nnx.Rngs(1),
)
LOGITS = jax.jit(lambda ids, mask: MODEL(ids, mask))


def np_stats(ex, k=0.4):
    ids = np.asarray([ex["input_ids"]], np.int32)
    lg = np.asarray(LOGITS(ids, np.ones_like(ids)), np.float64)[0, :-1]
    lab = np.asarray(ex["labels"][1:])
    lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
    pos = np.flatnonzero(lab != -100)
    lp = lg[pos, lab[pos]] - lse[pos]
    scored = lp[:-1]  # the authors drop the last label token for Min-K / extraction
    n_k = max(1, int(len(scored) * k))
    match = (lg[pos].argmax(-1) == lab[pos])[:-1]
    return -lp.sum(), len(pos), -np.sort(scored)[:n_k].mean(), match


def test_sequence_statistics_match_numpy():
    exs = [tokenize_qa(TOK, LLAMA2_CHAT_TEMPLATE, TEXTS[0], a, max_length=40) for a in TEXTS[1:4]]
    stats = sequence_statistics(
        MODEL, exs, batch_size=2, length=40, pad_id=TOK.pad_token_id, min_k=0.4, with_matches=True
    )
    for i, ex in enumerate(exs):
        nll, n, mink, match = np_stats(ex)
        assert stats["nll"][i] == pytest.approx(nll, rel=1e-4)
        assert stats["num_tokens"][i] == n and stats["avg_nll"][i] == pytest.approx(
            nll / n, rel=1e-4
        )
        assert stats["min_k"][i] == pytest.approx(mink, rel=1e-4)
        assert stats["num_scored"][i] == len(match)
        np.testing.assert_array_equal(stats["match"][i, : len(match)], match)


def test_forget_truth_ratios_through_the_pipeline():
    rows = [{"question": TEXTS[0], "answer": TEXTS[1], "paraphrased_answer": TEXTS[3],
             "perturbed_answer": [TEXTS[2], TEXTS[1]]}]  # fmt: skip
    s = TofuEvalSettings(batch_size=4, length=40, prompt_length=24, max_new_tokens=4)
    tr = forget_truth_ratios(MODEL, TOK, rows, s)
    avg = [
        np_stats(tokenize_qa(TOK, LLAMA2_CHAT_TEMPLATE, TEXTS[0], a, max_length=40))
        for a in (TEXTS[3], TEXTS[2], TEXTS[1])
    ]
    avg = [nll / n for nll, n, _, _ in avg]
    want = np.exp(-(avg[1] + avg[2]) / 2) / (np.exp(-avg[0]) + 1e-10)
    assert tr[0] == pytest.approx(want, rel=1e-4)


def test_evaluate_muse_end_to_end():
    qa = [{"question": "Where was Aria born?", "answer": "Lisbon"}]
    splits = {
        "verbmem/forget": [{"prompt": "the story", "gt": "of the day"}],
        "knowmem/forget_qa": qa,
        "knowmem/forget_qa_icl": qa,
        "knowmem/retain_qa": qa,
        "knowmem/retain_qa_icl": qa,
        "privleak/forget": [{"text": TEXTS[1]}, {"text": TEXTS[2]}],
        "privleak/holdout": [{"text": TEXTS[3]}, {"text": TEXTS[4]}],
    }
    s = MuseEvalSettings(batch_size=2, length=32, prompt_length=32, verbmem_new_tokens=4,
                         knowmem_new_tokens=4)  # fmt: skip
    out = evaluate_muse(MODEL, TOK, splits, retrain_auc=0.5236, settings=s)
    for k in ("forget_verbmem_ROUGE", "forget_knowmem_ROUGE", "retain_knowmem_ROUGE"):
        assert 0.0 <= out[k] <= 1.0
    # Min-K (k = 0.4) scores recomputed in NumPy; AUC = P(holdout score > forget score)
    scores = [np_stats(pretraining_instance(TOK, t, 31))[2] for t in TEXTS[1:5]]
    forget_s, holdout_s = scores[:2], scores[2:]
    auc = np.mean([(h > f) + 0.5 * (h == f) for h in holdout_s for f in forget_s])
    assert out["mia_min_k"] == pytest.approx(auc)
    assert out["privleak"] == pytest.approx(privleak(out["mia_min_k"], 0.5236))
    assert 0.0 <= out["extraction_strength"] <= 1.0
    with pytest.raises(KeyError, match="privleak/holdout"):
        evaluate_muse(MODEL, TOK, {k: v for k, v in splits.items() if k != "privleak/holdout"})


def test_reference_privleak_of_the_retrained_muse_models():
    # MUSE_SUMMARY.json of the authors' retrained models: mia_min_k 0.5236 -> privleak -4.72
    # (News), 0.4592 -> 8.16 (Books), both against open-unlearning's 0.5 fallback.
    assert privleak(0.5236, 0.5) == pytest.approx(-4.72, abs=1e-6)
    assert privleak(0.4592, 0.5) == pytest.approx(8.16, abs=1e-6)


def test_cut_at_stopwords():
    assert cut_at_stopwords(" Lisbon\n\nQuestion: x", ("\n\n", "\nQuestion")) == "Lisbon"
    assert cut_at_stopwords("Oslo Question: y", ("Question:",)) == "Oslo"
