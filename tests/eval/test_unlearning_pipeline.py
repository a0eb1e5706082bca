"""Model-side unlearning evaluation on a tiny random decoder: jitted statistics vs NumPy, TOFU
truth ratios through the pipeline, and the MUSE evaluator end to end against a cache-free greedy
reference scored by `rouge_score` and a transcription of open-unlearning's extraction strength."""

import jax
import numpy as np
import pytest
from flax import nnx
from rouge_score.rouge_scorer import RougeScorer

from jaxmethods.data.muse import knowmem_examples, pretraining_instance
from jaxmethods.data.tofu import LLAMA2_CHAT_TEMPLATE, tokenize_qa
from jaxmethods.data.tokenizer import build_tiny_tokenizer
from jaxmethods.eval.likelihood import sequence_statistics
from jaxmethods.eval.muse_eval import (
    KNOWMEM_STOPWORDS,
    MuseEvalSettings,
    cut_at_stopwords,
    evaluate_muse,
    verbmem_extraction_strength,
    verbmem_rouge,
)
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


BUFFER = 64  # one fixed-shape forward serves every step of the greedy reference


def greedy_text(prompt_ids, new_tokens: int) -> str:
    """Cache-free greedy continuation: argmax of a full forward per step, stop after EOS, decode
    without special tokens (the generation the MUSE ROUGE metrics score)."""
    out: list[int] = []
    for _ in range(new_tokens):
        cur = list(prompt_ids) + out
        ids = np.zeros((1, BUFFER), np.int32)
        mask = np.zeros_like(ids)
        ids[0, : len(cur)], mask[0, : len(cur)] = cur, 1
        out.append(int(np.asarray(LOGITS(ids, mask))[0, len(cur) - 1].argmax()))
        if out[-1] == TOK.eos_token_id:
            break
    return TOK.decode(out, skip_special_tokens=True)


def np_extraction_strength(input_ids, labels) -> float:
    """open-unlearning's `extraction_strength` transcribed: log-probs at positions s-1 .. e-1 for
    the label positions s..e (the last label dropped), ES = 1 - k / L with k the first suffix whose
    greedy predictions all equal the labels (the loop leaves k = L - 1 when none does)."""
    ids = np.asarray([input_ids], np.int32)
    logits = np.asarray(LOGITS(ids, np.ones_like(ids)), np.float64)[0, :-1]
    labels = np.asarray(labels)
    idx = np.flatnonzero(labels != -100)[:-1]
    if idx.size == 0:
        return 0.0
    preds = logits[idx[0] - 1 : idx[-1]].argmax(-1)
    target, n = labels[idx], len(idx)
    for k in range(n):
        if np.array_equal(preds[k:], target[k:]):
            break
    return 1.0 - k / n


def test_evaluate_muse_end_to_end():
    s = MuseEvalSettings(batch_size=2, length=32, prompt_length=32, verbmem_new_tokens=4,
                         knowmem_new_tokens=4)  # fmt: skip
    scorer = RougeScorer(["rougeL"], use_stemmer=True)
    # The model's own continuation as a ground truth makes ROUGE and ES non-trivial.
    own = greedy_text(TOK("the story")["input_ids"], 4).strip()
    verbmem = [{"prompt": "the story", "gt": f"{own} of the day"},
               {"prompt": "Aria was", "gt": "born in Lisbon"}]  # fmt: skip
    icl = [{"question": "Where was Aria born?", "answer": "Lisbon"}]
    probe = knowmem_examples(TOK, [{"question": "the story", "answer": ""}], icl, max_length=32)
    own_answer = cut_at_stopwords(greedy_text(probe[0]["prompt_ids"], 4), KNOWMEM_STOPWORDS)
    qa = [*icl, {"question": "the story", "answer": f"{own_answer} Lisbon"}]
    splits = {
        "verbmem/forget": verbmem,
        "knowmem/forget_qa": qa,
        "knowmem/forget_qa_icl": icl,
        "knowmem/retain_qa": qa[:1],
        "knowmem/retain_qa_icl": icl,
        "privleak/forget": [{"text": TEXTS[1]}, {"text": TEXTS[2]}],
        "privleak/holdout": [{"text": TEXTS[3]}, {"text": TEXTS[4]}],
    }
    out = evaluate_muse(MODEL, TOK, splits, retrain_auc=0.5236, settings=s)

    # verbmem: ROUGE-L F1 of the greedy continuation against gt, scored by rouge_score itself.
    verb = [
        scorer.score(r["gt"], greedy_text(TOK(r["prompt"])["input_ids"], 4).strip())["rougeL"]
        for r in verbmem
    ]
    want_verb = [x.fmeasure for x in verb]
    assert max(want_verb) > 0.3  # the reference is not a trivial 0
    np.testing.assert_allclose(verbmem_rouge(MODEL, TOK, verbmem, s), want_verb, atol=1e-12)
    assert out["forget_verbmem_ROUGE"] == pytest.approx(np.mean(want_verb), abs=1e-12)

    # knowmem: few-shot prompt (last prompt_length tokens), answer cut at the stop words.
    def knowmem_reference(rows):
        exs = knowmem_examples(TOK, rows, icl, max_length=s.length)
        gens = [greedy_text(e["prompt_ids"][-s.prompt_length :], 4) for e in exs]
        gens = [cut_at_stopwords(g, KNOWMEM_STOPWORDS) for g in gens]
        return [scorer.score(r["answer"], g)["rougeL"].fmeasure for r, g in zip(rows, gens)]

    want_know = knowmem_reference(qa)
    assert max(want_know) > 0.3
    assert out["forget_knowmem_ROUGE"] == pytest.approx(np.mean(want_know), abs=1e-12)
    assert out["retain_knowmem_ROUGE"] == pytest.approx(
        np.mean(knowmem_reference(qa[:1])), abs=1e-12
    )

    # extraction strength on prompt (prefix, ignored) + " " + gt (labels), open-unlearning's loop.
    want_es = []
    for r in verbmem:
        prefix = TOK(r["prompt"])["input_ids"]
        full = TOK(r["prompt"] + " " + r["gt"])["input_ids"][: len(prefix) + s.length]
        want_es.append(np_extraction_strength(full, [-100] * len(prefix) + full[len(prefix) :]))
    np.testing.assert_allclose(
        verbmem_extraction_strength(MODEL, TOK, verbmem, s), want_es, atol=1e-12
    )
    assert out["extraction_strength"] == pytest.approx(np.mean(want_es), abs=1e-12)

    # Min-K (k = 0.4) scores recomputed in NumPy; AUC = P(holdout score > forget score)
    scores = [np_stats(pretraining_instance(TOK, t, s.length))[2] for t in TEXTS[1:5]]
    forget_s, holdout_s = scores[:2], scores[2:]
    auc = np.mean([(h > f) + 0.5 * (h == f) for h in holdout_s for f in forget_s])
    assert out["mia_min_k"] == pytest.approx(auc)
    assert out["privleak"] == pytest.approx(privleak(out["mia_min_k"], 0.5236))
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
