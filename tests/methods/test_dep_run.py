"""DEP's run: every config variant converts, the authors' settings are what §7 says, arms see
the right soft rows, the table, and (slow) the tiny end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest

from configs.dep import VARIANTS, get_config
from jaxmethods.methods.dep.config import from_config_dict
from jaxmethods.methods.dep.report import results_table
from jaxmethods.methods.dep.run import arm_inputs
from jaxmethods.train.config import ConfigError


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_converts(variant):
    cfg = from_config_dict(get_config(variant))
    assert cfg.method == "dep" and cfg.name == f"dep_{variant}"
    assert cfg.adapter.embed_size == cfg.embed.dim


@pytest.mark.parametrize("variant,category", [("books", "Books"), ("movies", "Movies_and_TV"),
                                              ("cds", "CDs_and_Vinyl")])  # fmt: skip
def test_authors_settings(variant, category):
    cfg = from_config_dict(get_config(variant))
    o = cfg.optim
    assert (o.optimizer, o.lr, o.weight_decay, o.warmup_ratio, o.schedule) == (
        "adamw",
        1e-5,
        0.025,
        0.01,
        "linear",
    )
    assert (o.max_grad_norm, cfg.batch_size * o.grad_accum, cfg.epochs) == (1.0, 16, 5)
    assert cfg.checkpoint_per_epoch and cfg.eval.select == "meteor"
    assert cfg.data.num_val == 512 and cfg.data.categories == (category,)
    assert (cfg.data.max_length, cfg.data.total_length) == (3072, 3072 + 2048 + 1)
    g = cfg.generate
    assert (g.temperature, g.top_p, g.max_new_tokens) == (0.8, 0.95, 2048)
    assert cfg.model.dtype == "bfloat16" and cfg.model.source == "Qwen/Qwen2.5-7B-Instruct"
    assert (cfg.adapter.embed_size, cfg.adapter.code_size, cfg.sae_weight) == (1024, 512, 100.0)
    assert cfg.eval.meteor_wordnet and cfg.eval.meteor_tokenizer == "punkt"
    assert cfg.embed.encoder == "BAAI/bge-m3" and cfg.arms == ("none", "history", "dep")


def test_bad_configs_name_the_field():
    with pytest.raises(ConfigError, match=r"config\.arms"):
        c = get_config("tiny")
        c.arms = ("dep", "rag")
        from_config_dict(c)
    with pytest.raises(ConfigError, match=r"config\.adapter\.embed_size"):
        from_config_dict(get_config("tiny,adapter.embed_size=8"))
    with pytest.raises(ConfigError, match=r"config\.embed\.pooling"):
        from_config_dict(get_config("tiny,embed.pooling=max"))
    with pytest.raises(ConfigError, match=r"config\.embed\.folder"):
        from_config_dict(get_config("books,embed.source=files,emb="))
    with pytest.raises(ConfigError, match=r"config\.data\.world"):
        from_config_dict(get_config("demo,data.world=flat"))


def test_arm_inputs():
    x = np.arange(2 * 16 * 3, dtype=np.float32).reshape(2, 16, 3) + 1
    np.testing.assert_array_equal(arm_inputs("dep", x), x)
    np.testing.assert_array_equal(arm_inputs("none", x), 0 * x)
    h = arm_inputs("history", x)
    np.testing.assert_array_equal(h[:, :8], x[:, :8])
    np.testing.assert_array_equal(h[:, 8:], 0 * x[:, 8:])
    assert x[0, 0, 0] == 1  # the input is not modified


def test_results_table():
    r = {"rouge1": 0.5, "rouge1_se": 0.01, "rougeL": 0.25, "rougeL_se": 0.02, "meteor": 0.125,
         "meteor_se": 0.03, "sacrebleu": 12.345}  # fmt: skip
    t = results_table({"dep": r}, "METEOR").splitlines()
    assert t[0] == "| model | ROUGE-1 | ROUGE-L | METEOR | sacreBLEU |"
    assert t[2] == (
        "| DEP (history + difference) | 0.5000 ± 0.0100 | 0.2500 ± 0.0200 | 0.1250 ± 0.0300 | 12.35 |"
    )


@pytest.mark.slow
def test_tiny_end_to_end(tmp_path):
    from jaxmethods.methods.dep.run import run

    out = run(get_config("tiny"), str(tmp_path))
    assert out["data/train"] == 8 and out["data/test"] == 4
    for arm in ("none", "history", "dep"):
        assert 0.0 <= out[f"test/{arm}/meteor"] <= 1.0
        assert np.isfinite(out[f"{arm}/train_loss"])
    assert "dep" in out["tables"]


def _fake_examples(n: int = 12, t: int = 6, e: int = 3):
    from jaxmethods.methods.dep.dataset import Examples

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        mask = np.array([0] * (i % 3) + [1] * (t - i % 3), np.int32)
        rows.append({
            "input_ids": (np.arange(t, dtype=np.int32) + 10 * i) * mask,
            "attention_mask": mask,
            "labels": np.where(np.arange(t) >= t - 2, 7, -100).astype(np.int32),
            "his_diff_emb": rng.normal(size=(16, e)).astype(np.float32) + 1.0,
        })  # fmt: skip
    return Examples(rows)


def test_pretraining_rows_take_a_random_arm_each():
    from jaxmethods.methods.dep.run import _gather

    ex = _fake_examples()
    idx = np.array([0, 3, 5, 7, 11, 2, 9, 1, -1])
    batch = _gather(ex, None, mask_arms=True, all_labels=True, seed=1)(idx)
    seen = set()
    for r, i in enumerate(idx[:-1]):
        x = ex.rows[i]["his_diff_emb"]
        got = batch["his_diff_emb"][r]
        kinds = {  # none: all zero; history: rows 8-15 zero; dep: unchanged
            "none": not got.any(),
            "history": np.array_equal(got[:8], x[:8]) and not got[8:].any(),
            "dep": np.array_equal(got, x),
        }
        assert sum(kinds.values()) == 1, (r, kinds)
        seen |= {k for k, v in kinds.items() if v}
        m = ex.rows[i]["attention_mask"]
        np.testing.assert_array_equal(
            batch["labels"][r], np.where(m > 0, ex.rows[i]["input_ids"], -100)
        )
    assert seen == {"none", "history", "dep"}
    assert not batch["his_diff_emb"][-1].any() and (batch["labels"][-1] == -100).all()
    again = _gather(ex, None, mask_arms=True, all_labels=True, seed=1)(
        idx
    )  # a function of the indices
    np.testing.assert_array_equal(again["his_diff_emb"], batch["his_diff_emb"])
    plain = _gather(ex, None)(idx[:2])  # no masking; the rows' own (target) labels
    np.testing.assert_array_equal(plain["his_diff_emb"][1], ex.rows[3]["his_diff_emb"])
    np.testing.assert_array_equal(plain["labels"][1], ex.rows[3]["labels"])


def test_token_deletion_views():
    from jaxmethods.methods.dep.demo_encoder import delete_tokens

    ids = np.array([[1, 5, 6, 7, 8, 0, 0], [1, 9, 0, 0, 0, 0, 0]], np.int32)
    mask = (ids > 0).astype(np.int32)
    out, m = delete_tokens(ids, mask, 0.5, np.random.default_rng(3), pad_id=0)
    for b in range(2):
        kept = [int(v) for v in out[b][m[b] > 0]]
        assert kept[0] == 1 and (out[b][m[b] == 0] == 0).all()
        assert list(m[b]) == sorted(m[b], reverse=True)  # real tokens first, then padding
        it = iter(ids[b][mask[b] > 0].tolist())
        assert all(any(v == w for w in it) for v in kept)  # a subsequence, order kept
    np.testing.assert_array_equal(
        delete_tokens(ids, mask, 0.0, np.random.default_rng(0), 0)[0], ids
    )


def test_synthetic_titles_and_ratings_carry_no_style():
    from jaxmethods.methods.dep.synthetic import OPENERS, STYLE_WORDS, synthetic_dpl

    main, _ = synthetic_dpl(num_users=30, num_items=24, reviews_per_user=18, seed=2)
    rows = main["test"]
    styles = {w.lower() for w in STYLE_WORDS + OPENERS}
    for r in rows:
        for rev in (*r["profile"], r["data"]):
            assert not set(rev["title"].lower().split()) & styles
    titles = {rev["asin"]: rev["title"] for r in rows for rev in r["profile"]}
    for r in rows:  # every reviewer of an item writes the same title
        assert all(titles[rev["asin"]] == rev["title"] for rev in r["profile"])
    openers = {r["user_id"]: r["data"]["text"].split(",")[0] for r in rows}
    assert set(openers.values()) == set(OPENERS)
    ratings = np.array([[rev["rating"] for rev in r["profile"]] for r in rows])
    assert ratings.std(axis=1).min() > 0  # not a per-user constant


def test_synthetic_style_needs_the_peers():
    """A user's word and the item's tone word share a pool and swap places at random, so one
    review cannot tell them apart; the item's other reviewers (DEP's peers) can: the word the
    user writes that the item's peers do not always write is the user's."""
    from jaxmethods.methods.dep.synthetic import STYLE_WORDS, style_slots, synthetic_dpl

    main, meta = synthetic_dpl(num_users=40, num_items=24, reviews_per_user=18, seed=3)
    tone = {m["asin"]: next(w for w in STYLE_WORDS if f"A {w} tale" in m["description"])
            for m in meta}  # fmt: skip
    orders, by_item = set(), {}
    for r in main["test"]:
        user_words = set()
        for rev in (*r["profile"], r["data"]):
            slots = style_slots(rev["text"])
            a, b = rev["text"].split(" is ")[1].split(".")[0].split(" and ")
            orders.add(a == tone[rev["asin"]])
            assert tone[rev["asin"]] in (a, b) and slots["words"] == " ".join(sorted((a, b)))
            by_item.setdefault(rev["asin"], []).append({a, b})
            user_words.add(b if a == tone[rev["asin"]] else a)
        assert len(user_words) == 1  # one characteristic word per user
    assert orders == {True, False}  # the tone comes first in some reviews, second in others
    for asin, pairs in by_item.items():  # every reviewer of an item writes its tone word
        assert set.intersection(*pairs) >= {tone[asin]}


def test_style_slots():
    from jaxmethods.methods.dep.synthetic import style_slots

    t = "Wow, the old river is cozy and gritty. The boat steals the show. Trust me."
    assert style_slots(t) == {
        "opener": "Wow", "words": "cozy gritty", "sign_off": "Trust me.", "length": "long"
    }  # fmt: skip
    assert style_slots("garbage") == {
        "opener": "", "words": "", "sign_off": "", "length": "short"
    }  # fmt: skip


def test_paired_gaps_against_numpy():
    from jaxmethods.methods.dep.report import gaps_table, paired_gaps

    rng = np.random.default_rng(0)
    per = {
        a: {"rougeL": rng.random(7), "meteor": rng.random(7)} for a in ("none", "history", "dep")
    }
    g = paired_gaps(per)
    d = per["dep"]["meteor"] - per["history"]["meteor"]
    assert g["dep-history/meteor"] == pytest.approx(d.mean())
    assert g["dep-history/meteor_se"] == pytest.approx(np.std(d, ddof=1) / np.sqrt(7))
    assert set(g) == {f"{p}/{m}{s}" for p in ("history-none", "dep-history", "dep-none")
                      for m in ("rougeL", "meteor") for s in ("", "_se")}  # fmt: skip
    assert "dep-none/rougeL" not in paired_gaps({"dep": per["dep"], "history": per["history"]})
    t = gaps_table(g, "METEOR").splitlines()
    assert t[0] == "| paired gap (same test samples) | ROUGE-L | METEOR |"
    r = g["history-none/rougeL"], g["history-none/rougeL_se"]
    assert t[2].startswith(
        f"| history-only soft tokens - non-personalized | {r[0]:+.4f} ± {r[1]:.4f} |"
    )


@pytest.mark.parametrize("share", [False, True])
def test_pretraining_users_stay_out_of_val_and_test(tmp_path, share):
    from jaxmethods.methods.dep.run import load_data

    cfg = from_config_dict(get_config(f"tiny,pretrain.users=3,pretrain.share_train={share}"))
    splits, _, pre, everyone = load_data(cfg, str(tmp_path))
    corpus = {"u000", "u001", "u002"}
    assert {s.user_id for s in pre.samples} == corpus
    assert len({s.user_id for s in everyone}) == cfg.data.num_users + 3  # all are peers
    for name in ("val", "test"):
        assert not {s.user_id for s in splits[name].samples} & corpus
    train = {s.user_id for s in splits["train"].samples}
    assert (train >= corpus) if share else not (train & corpus)
    assert len(train - corpus) == cfg.data.num_users


def test_synthetic_favourite_world_hides_the_word_from_history():
    """World "favourite": a user's catalogue reviews all pair their word W with their favourite
    tone F (alphabetical order, so no position tells them apart); the three newest reviews are
    new releases (no earlier reviewer, so no peers) whose tone is neither F nor W."""
    from collections import Counter

    from jaxmethods.methods.dep.synthetic import STYLE_WORDS, TOPICS, synthetic_dpl

    main, meta = synthetic_dpl(num_users=40, num_items=112, reviews_per_user=20, world="favourite")
    tone = {m["asin"]: next(w for w in STYLE_WORDS if f"A {w} tale" in m["description"])
            for m in meta}  # fmt: skip
    early, words = set(), set()
    for r in main["test"]:
        revs = [*r["profile"], r["data"]]
        pairs = [tuple(v["text"].split(" is ")[1].split(".")[0].split(" and ")) for v in revs]
        assert all(a < b and tone[v["asin"]] in (a, b) for (a, b), v in zip(pairs[:-3], revs))
        assert all(a == tone[v["asin"]] for (a, _), v in zip(pairs[-3:], revs[-3:]))  # tone 1st
        mine = {a if b == tone[v["asin"]] else b for (a, b), v in zip(pairs, revs)}
        assert len(mine) == 1  # one word per user
        (w,) = mine
        favs = {tone[v["asin"]] for v in revs[:-3]}
        assert len(favs) == 1 and w not in favs and len(set(pairs[:-3])) == 1
        assert all(tone[v["asin"]] not in favs | mine for v in revs[-3:])
        early |= {v["asin"] for v in revs[:-3]}
        words.add(w)
    assert words == set(STYLE_WORDS)
    newest = {v["asin"] for r in main["test"] for v in (*r["profile"][-2:], r["data"])}
    assert not newest & early  # new releases have no earlier reviewer: no peers
    per_tone = Counter((m["description"].split()[1], m["description"].split()[-4])
                       for m in meta[:96])  # fmt: skip
    assert set(per_tone.values()) == {2} and len(per_tone) == 4 * len(TOPICS)  # topic: no tone
    with pytest.raises(ValueError, match="= 84, got 60"):
        synthetic_dpl(num_users=2, num_items=60, reviews_per_user=20, world="favourite")
