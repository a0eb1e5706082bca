"""Reason4Rec pipeline pieces on a tiny random decoder: the chat-format examples (response-only
loss = CE over the response tokens), the rating scorer against NumPy on the unpadded logits,
MAE/RMSE with the (user_id, item_id) merge, the resume guard of an expert, the mean baselines, cold-start counting in the
inference, the synthetic world and the last-epoch training loss."""

import jax
import numpy as np
import pandas as pd
import pytest

from jaxmethods.methods.reason4rec.evaluate import error_metrics, mean_baselines, paired_mae_gap
from jaxmethods.methods.reason4rec.prompts import COMPACT, FORBIDDEN, rating_target


@pytest.fixture(scope="module")
def tiny():
    from jaxmethods.data.tokenizer import build_tiny_tokenizer
    from jaxmethods.methods.reason4rec.experts import ChatFormat
    from jaxmethods.models.decoder import DecoderLM
    from jaxmethods.models.decoder_config import DecoderConfig
    from jaxmethods.models.multi_lora import apply_multi_lora

    texts = ["summarize the song and rate it", "love the melody . hate the vocals"]
    texts += [rating_target(k) for k in range(1, 6)] * 20
    tok = build_tiny_tokenizer(texts, vocab_size=160)
    cfg = DecoderConfig.tiny(vocab_size=len(tok), bos_token_id=1, eos_token_id=2, pad_token_id=0)
    ml = apply_multi_lora(DecoderLM(cfg), ("reward", "predictor"), rank=4, alpha=8.0,
                          target_modules=r"(q_proj|v_proj)$", head_trainable=("predictor",))  # fmt: skip
    # Non-zero B factors so that the two adapters differ.
    ml.bank.lora = jax.tree.map(lambda x: x + 0.05, ml.bank.lora)
    return tok, ChatFormat(tok, max_length=128), ml


def _softmax_expected(z, ids):
    z = z[ids].astype(np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    return float(np.clip((p * np.arange(1, 6)).sum(), 1, 5))


def test_rating_tokens_and_scorer_match_numpy(tiny):
    from jaxmethods.methods.reason4rec.experts import RatingScorer

    _, fmt, ml = tiny
    for k in range(1, 6):  # the rating token follows the shared prefix in every target
        ids = fmt.encode(rating_target(k))
        assert ids[: len(fmt.rating_prefix)] == fmt.rating_prefix
        assert ids[len(fmt.rating_prefix)] == fmt.rating_ids[k - 1]
    prompts = ["love the melody", "hate the vocals . rate it", "summarize the song"]
    scorer = RatingScorer(ml, fmt, batch_size=2, length_multiple=16)
    # Reference: one right-padded forward (causal: padding after a row cannot change its
    # logits), the logits at each row's last real token, softmax in NumPy.
    seqs = [fmt.score_ids(p) for p in prompts]
    ids = np.zeros((len(seqs), 32), np.int32)
    mask = np.zeros_like(ids)
    for r, x in enumerate(seqs):
        ids[r, : len(x)], mask[r, : len(x)] = x, 1
    forward = jax.jit(lambda bank, base, index: ml.merge(bank, base, index)(ids, mask))
    for name in ("reward", "predictor"):
        got = scorer.score(name, prompts)
        logits = np.asarray(forward(ml.bank, ml.base, ml.index(name)))
        want = [
            _softmax_expected(logits[r, len(x) - 1], fmt.rating_ids) for r, x in enumerate(seqs)
        ]
        np.testing.assert_allclose(got, want, atol=1e-4)
    assert not np.allclose(scorer.score("reward", prompts), scorer.score("predictor", prompts))


def test_response_only_loss_is_ce_over_response(tiny):
    from jaxmethods.data.forget_retain import gather_examples
    from jaxmethods.models.causal_lm import causal_lm_loss

    tok, fmt, ml = tiny
    ex = fmt.example("love the melody", rating_target(4))
    n_prompt = len(fmt.prompt_ids("love the melody"))
    assert ex["labels"][:n_prompt] == [-100] * n_prompt
    assert ex["labels"][n_prompt:] == [*fmt.encode(rating_target(4)), tok.eos_token_id]
    batch = gather_examples([ex], np.array([0]), length=32, pad_id=fmt.pad_id)
    k = ml.index("predictor")

    @jax.jit
    def loss_and_logits(bank, base, batch):
        model = ml.merge(bank, base, k)
        return causal_lm_loss(model, batch), model(batch["input_ids"], batch["attention_mask"])

    (loss, count), logits = loss_and_logits(ml.bank, ml.base, batch)
    logits = np.asarray(logits)[0].astype(np.float64)
    ids = ex["input_ids"]
    ce = [np.log(np.exp(logits[t - 1] - logits[t - 1].max()).sum()) + logits[t - 1].max()
          - logits[t - 1, ids[t]] for t in range(n_prompt, len(ids))]  # fmt: skip
    assert int(count) == len(ids) - n_prompt
    assert float(loss) == pytest.approx(np.mean(ce), abs=1e-4)


def test_expert_does_not_resume_onto_another_base(tiny, tmp_path, monkeypatch):
    """A rerun in the same workdir with another base (e.g. with or without the tiny base's LM
    pre-training) must not restore the adapters and head copies trained on the earlier base
    from `<workdir>/<expert>/checkpoints`; other examples or another recipe neither."""
    import dataclasses
    import types

    from jaxmethods.methods.reason4rec import experts
    from jaxmethods.methods.reason4rec.config import ExpertConfig
    from jaxmethods.train import make_mesh
    from jaxmethods.train.trainer import LoopConfig

    _, fmt, shared = tiny
    calls = []

    def fake_fit(*, params, num_steps, **_):  # the guard runs before `fit`: nothing compiles
        calls.append(num_steps)
        state = types.SimpleNamespace(params=params)
        return types.SimpleNamespace(state=state, step=num_steps, last_metrics={"loss": 1.0})

    monkeypatch.setattr(experts, "fit", fake_fit)
    ml = dataclasses.replace(shared)  # insert() rebinds `bank` on this copy only
    other = dataclasses.replace(
        shared, base=jax.tree.map(lambda x: np.asarray(x) * 1.001, shared.base)
    )
    ex = [fmt.example("love the melody", rating_target(5)),
          fmt.example("hate the vocals", rating_target(1))]  # fmt: skip
    ecfg = ExpertConfig(rank=4, alpha=8.0, head_trainable=True, epochs=1.0, batch_size=2)
    common = dict(mesh=make_mesh({"data": 1, "fsdp": 1, "tensor": 1}), workdir=str(tmp_path),
                  loop=LoopConfig(progress=False), seed=0, pad_id=fmt.pad_id,
                  length_multiple=16)  # fmt: skip
    out = experts.train_expert(ml, "predictor", ex, ecfg, **common)
    assert out["predictor/steps"] == 1 and (tmp_path / "predictor" / "inputs.json").exists()
    experts.train_expert(ml, "predictor", ex, ecfg, **common)  # the same inputs resume
    assert calls == [1, 1]
    with pytest.raises(ValueError, match=r"predictor was trained from other inputs \(base"):
        experts.train_expert(other, "predictor", ex, ecfg, **common)
    with pytest.raises(ValueError, match="examples"):
        experts.train_expert(ml, "predictor", ex[:1], ecfg, **common)
    with pytest.raises(ValueError, match="settings"):
        experts.train_expert(ml, "predictor", ex, dataclasses.replace(ecfg, lr=1e-3), **common)
    assert calls == [1, 1]


def test_metrics_merge_on_user_item():
    truth = pd.DataFrame({"user_id": ["a", "b", "c", "d"], "item_id": [1, 2, 3, 4],
                          "ratings": [5.0, 1.0, 3.0, 4.0]})  # fmt: skip
    pred = pd.DataFrame({"user_id": ["a", "b", "b", "x", "c"], "item_id": [1, 2, 2, 9, 3],
                         "pred": [4.0, 9.0, 2.0, 3.0, 3.5]})  # fmt: skip
    m = error_metrics(pred, truth)
    err = np.array([4.0 - 5, 2.0 - 1, 3.5 - 3])  # b keeps its last prediction; d, x unmatched
    assert m["mae"] == pytest.approx(np.abs(err).mean())
    assert m["rmse"] == pytest.approx(np.sqrt((err**2).mean()))
    assert m["mae_se"] == pytest.approx(np.abs(err).std(ddof=1) / np.sqrt(3))
    assert (m["n"], m["unmatched_truth"], m["unmatched_pred"], m["duplicate_pred"]) == (3, 1, 1, 1)
    other = pred.assign(pred=[5.0, 1.0, 1.0, 3.0, 3.0])
    gap, _ = paired_mae_gap(pred, other, truth)
    assert gap == pytest.approx(0.0 - np.abs(err).mean())


def test_mean_baselines():
    train = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": [1, 2, 1],
                          "ratings": [5.0, 3.0, 1.0]})  # fmt: skip
    test = pd.DataFrame({"user_id": ["a", "z"], "item_id": [1, 7], "ratings": [4.0, 2.0]})
    b = mean_baselines(train, test)
    np.testing.assert_allclose(b["item_mean"]["pred"], [3.0, 3.0])  # item 7 unknown: global 3
    np.testing.assert_allclose(b["user_mean"]["pred"], [4.0, 3.0])


def test_infer_counts_cold_start_and_uses_global_mean():
    from jaxmethods.methods.reason4rec.context import HistoryIndex
    from jaxmethods.methods.reason4rec.run import infer

    hist = pd.DataFrame({"user_id": ["u", "v"], "item_id": ["i", "i"], "title": ["A", "A"],
                         "ratings": [5.0, 2.0], "unixReviewTime": [1, 2],
                         "aspect_preference_summary": ["s1", "s2"]})  # fmt: skip
    test = pd.DataFrame({"user_id": ["u", "new", "u"], "item_id": ["i", "i", "unk"],
                         "title": ["A", "A", "B"], "ratings": [4.0, 3.0, 1.0],
                         "unixReviewTime": [5, 5, 5]})  # fmt: skip
    seen = {}

    def reason_fn(prompts):
        seen["reason"] = prompts
        return ["fits"] * len(prompts), {"prompt_tokens": 1.0, "new_tokens": 1.0, "seconds": 0.0}

    def score_fn(adapter, prompts):
        seen[adapter] = prompts
        return np.full(len(prompts), 4.5 if adapter == "predictor" else 2.5), 7

    preds, m = infer(reason_fn, score_fn, COMPACT, HistoryIndex(hist), test, "music")
    assert m["test/cold_start"] == 2 and len(seen["reason"]) == 1
    assert "analysis: fits" in seen["predictor"][0] and "analysis" not in seen["direct"][0]
    np.testing.assert_allclose(preds["reason4rec"]["pred"], [4.5, 3.5, 3.5])
    np.testing.assert_allclose(preds["direct"]["pred"], [2.5, 3.5, 3.5])


def test_synthetic_world_and_teacher():
    from jaxmethods.llm import FunctionClient, Request
    from jaxmethods.methods.reason4rec.synthetic import (
        RuleTeacher,
        SyntheticConfig,
        make_world,
        teacher_summary,
    )

    # The summary: what the review says, in the fixed aspect order ("?" when not mentioned).
    four = ("melody", "vocals", "lyrics", "rhythm")
    assert teacher_summary("vocals hate , melody love ; rhythm love", four) == (
        "melody love , vocals hate , lyrics ? , rhythm love"
    )
    w = make_world(SyntheticConfig(num_users=30, num_items=8, per_user=6, mention_noise=0.0,
                                   sloppy=0.0, quote_rating=1.0))  # fmt: skip
    df = pd.concat([w.train, w.test])
    assert set(df.ratings) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert w.train.unixReviewTime.max() <= w.test.unixReviewTime.min()
    truth = [w.verdicts[u][w.item_aspect[i]] for u, i in zip(df.user_id, df.item_id)]
    love = np.asarray(truth) == "love"
    assert df.ratings[love].min() >= 3 and df.ratings[~love].max() <= 3  # the verdict decides
    assert df.ratings[love].mean() > 4 and df.ratings[~love].mean() < 2
    for r, v in zip(df.itertuples(), truth):
        a = w.item_aspect[r.item_id]
        assert r.title.split()[0] == a and r.reviews.endswith(f"; {a} {v}")
        # Without mention noise every review states all of the user's true verdicts.
        assert teacher_summary(r.reviews, w.aspects) == " , ".join(
            f"{x} {w.verdicts[r.user_id][x]}" for x in w.aspects
        )
    r = w.train.iloc[0]
    client = FunctionClient(RuleTeacher(w, {"p": (r.user_id, r.item_id),
                                            "p hint 4.0": (r.user_id, r.item_id)}))  # fmt: skip
    plain, hinted = client.complete([Request.from_prompt("p"), Request.from_prompt("p hint 4.0")])
    a = w.item_aspect[r.item_id]
    assert plain.text == f"{a} {w.verdicts[r.user_id][a]}"  # sloppy=0: the true verdict
    assert not any(f in plain.text for f in FORBIDDEN)
    assert hinted.text.startswith(plain.text) and "4.0 stars" in hinted.text  # quote_rating=1
    sloppy = make_world(SyntheticConfig(num_users=30, num_items=8, per_user=6, sloppy=1.0))
    r = sloppy.train.iloc[0]
    flipped = FunctionClient(RuleTeacher(sloppy, {"p": (r.user_id, r.item_id)}))
    a = sloppy.item_aspect[r.item_id]
    wrong = "hate" if sloppy.verdicts[r.user_id][a] == "love" else "love"
    assert flipped.complete([Request.from_prompt("p")])[0].text == f"{a} {wrong}"


def test_last_epoch_loss_is_token_weighted_over_the_last_epoch(tmp_path):
    import json

    from jaxmethods.methods.reason4rec.experts import last_epoch_loss

    rows = [{"step": s, "loss": float(s), "tokens": 10.0 + s} for s in range(1, 8)]
    rows.append({"step": 7, "loss": 70.0, "tokens": 1.0})  # a resumed run re-logged step 7
    rows.append({"step": 7, "eval/x": 1.0})  # rows without a loss are skipped
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # Epochs of 3 steps ending at step 7: steps 5, 6, 7 (the last row of step 7 counts).
    want = (5 * 15 + 6 * 16 + 70 * 1) / (15 + 16 + 1)
    assert last_epoch_loss(str(path), 7, 3) == pytest.approx(want)
    assert np.isnan(last_epoch_loss(str(tmp_path / "none.jsonl"), 7, 3))


def test_configs_and_authors_recipes():
    from configs.reason4rec import VARIANTS, get_config
    from jaxmethods.methods.reason4rec.config import from_config_dict

    cfgs = {v: from_config_dict(get_config(v)) for v in VARIANTS}
    m = cfgs["music"]
    # 1_Summarizer/3, 2_Reasoner/3, 2_Reasoner/6, 3_Predictor/2 of the authors' scripts.
    assert (m.summarizer.rank, m.summarizer.alpha, m.summarizer.lr, m.summarizer.epochs,
            m.summarizer.batch_size, m.summarizer.warmup_steps) == (16, 32, 3e-4, 5, 16, 100)  # fmt: skip
    assert (m.reward.rank, m.reward.lr, m.reward.epochs, m.reward.warmup_ratio,
            m.reward.head_trainable) == (8, 3e-6, 3, 0.1, True)  # fmt: skip
    assert (m.reasoner.rank, m.reasoner.dropout, m.reasoner.lr, m.reasoner.batch_size,
            m.reasoner.head_trainable) == (16, 0.1, 3e-4, 32, False)  # fmt: skip
    assert (m.predictor.rank, m.predictor.lr, m.predictor.head_trainable) == (8, 3e-5, True)
    assert [cfgs[v].distill.tau for v in ("music", "book", "yelp")] == [0.1, 0.2, 0.08]
    assert m.model.source == "meta-llama/Meta-Llama-3-8B-Instruct" and m.data.max_history == 10
    assert (m.data.num_samples, m.data.reward_samples, m.distill.max_retries) == (20000, 8000, 10)
