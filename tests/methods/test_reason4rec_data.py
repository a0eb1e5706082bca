"""Reason4Rec data: the pickle converter (refusal, bad rows), the Parquet reader (missing
reviews), the context builder against a hand-worked example, and the templates verbatim against
the authors' own f-strings (`tests/data/reason4rec/prompts_expected.json`)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxmethods.methods.reason4rec.context import HistoryIndex, history_text, prompt_fields
from jaxmethods.methods.reason4rec.convert import main as convert_main
from jaxmethods.methods.reason4rec.data import DataError, read_interactions
from jaxmethods.methods.reason4rec.prompts import AUTHORS, has_forbidden, rating_target

FIXTURE = Path(__file__).parents[1] / "data" / "reason4rec" / "prompts_expected.json"


def authors_frame(n: int = 6) -> pd.DataFrame:
    """A table in the authors' raw_data layout (object ids, float ratings, int times)."""
    return pd.DataFrame({
        "user_id": [f"U{i % 2}" for i in range(n)],
        "item_id": [f"I{i % 3}" for i in range(n)],
        "title": [f"Song {i}" for i in range(n)],
        "ratings": [float(1 + i % 5) for i in range(n)],
        "reviews": [f"review {i}" for i in range(n)],
        "unixReviewTime": [1_400_000_000 + i for i in range(n)],
    })  # fmt: skip


def test_converter_refuses_without_flag(tmp_path, capsys):
    src, dst = tmp_path / "train.pkl", tmp_path / "train.parquet"
    authors_frame().to_pickle(src)
    assert convert_main([str(src), str(dst)]) == 2
    assert "--trust-pickle" in capsys.readouterr().err and not dst.exists()


def test_convert_round_trip_and_missing_reviews(tmp_path):
    raw = tmp_path / "Music_data" / "raw_data"
    raw.mkdir(parents=True)
    df = authors_frame()
    df.loc[2, "reviews"] = None
    df.loc[4, "reviews"] = "  "
    df.to_pickle(raw / "train.pkl")
    pd.to_pickle([{"messages": []}], tmp_path / "Music_data" / "x_instruct.pkl")  # skipped
    out = tmp_path / "parquet"
    assert convert_main(["--trust-pickle", str(tmp_path / "Music_data"), str(out)]) == 0
    back, stats = read_interactions(out / "raw_data" / "train.parquet")
    assert (stats.rows, stats.missing_reviews, len(back)) == (6, 2, 4)
    keep = df.drop(index=[2, 4]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, keep, check_dtype=False)
    with pytest.raises(DataError, match="Parquet only"):
        read_interactions(raw / "train.pkl")


@pytest.mark.parametrize(
    "column,value,message",
    [("ratings", 7.0, "row 3 .*'ratings'"), ("unixReviewTime", 1.5, "row 3 .*'unixReviewTime'"),
     ("title", None, "row 3 .*'title'")],
)  # fmt: skip
def test_converter_names_first_bad_row(tmp_path, capsys, column, value, message):
    df = authors_frame()
    df[column] = df[column].astype(object)
    df.loc[3, column] = value
    df.loc[5, column] = value
    df.to_pickle(tmp_path / "t.pkl")
    assert convert_main(["--trust-pickle", str(tmp_path / "t.pkl"), str(tmp_path / "t.pq")]) == 1
    err = capsys.readouterr().err
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "t.pq").exists()
    df.drop(columns=["reviews"]).to_pickle(tmp_path / "m.pkl")
    assert convert_main(["--trust-pickle", str(tmp_path / "m.pkl"), str(tmp_path / "m.pq")]) == 1
    assert "missing column(s) ['reviews']" in capsys.readouterr().err


def test_context_hand_worked():
    rows = [  # user, item, title, rating, summary, time
        ("u", "a", "A", 5.0, "likes a ", 10),
        ("u", "b", "B", 1.0, "dislikes b", 20),
        ("u", "c", "C", 3.0, "meh c", 30),
        ("v", "t", "T", 4.0, "v on t", 15),
        ("w", "t", "T", 2.0, "w on t", 40),  # the same time as the target: excluded
        ("u", "d", "D", 2.0, "future", 50),
    ]
    h = pd.DataFrame(rows, columns=["user_id", "item_id", "title", "ratings",
                                    "aspect_preference_summary", "unixReviewTime"])  # fmt: skip
    ctx = HistoryIndex(h, max_lines=2).context("u", "t", 40)
    assert ctx.user_avg == pytest.approx(3.0) and ctx.user_count == 3  # all three, not last 2
    assert ctx.item_avg == pytest.approx(4.0) and ctx.item_count == 1
    assert history_text(ctx.user_lines, with_rating=True) == (
        "1. B, 1.0;\ndislikes b\n\n2. C, 3.0;\nmeh c"
    )
    assert history_text(ctx.user_lines, with_rating=False) == "1. B\ndislikes b\n\n2. C\nmeh c"
    assert history_text(ctx.item_lines, with_rating=True) == "1. T, 4.0;\nv on t"
    cold = HistoryIndex(h).context("new", "t", 40)
    assert cold.cold and np.isnan(cold.user_avg) and cold.user_lines == ()
    assert HistoryIndex(h).context("u", "t", 5).cold  # nothing before t


def test_no_future_rows_and_at_most_max_lines():
    rng = np.random.default_rng(0)
    n = 300
    h = pd.DataFrame({
        "user_id": rng.integers(0, 5, n), "item_id": rng.integers(0, 7, n),
        "title": [f"t{i}" for i in range(n)], "ratings": rng.integers(1, 6, n).astype(float),
        "aspect_preference_summary": [str(i) for i in range(n)],
        "unixReviewTime": rng.integers(0, 100, n),
    })  # fmt: skip
    index = HistoryIndex(h, max_lines=10)
    short = HistoryIndex(h, max_lines=3, max_item_lines=1)  # the demo's budget
    for u, i, t in zip(rng.integers(0, 5, 40), rng.integers(0, 7, 40), rng.integers(0, 100, 40)):
        ctx = index.context(int(u), int(i), int(t))
        prior_u = h[(h.user_id == u) & (h.unixReviewTime < t)]
        prior_i = h[(h.item_id == i) & (h.unixReviewTime < t)]
        assert len(ctx.user_lines) == min(10, len(prior_u)) and ctx.user_count == len(prior_u)
        s = short.context(int(u), int(i), int(t))
        assert len(s.user_lines) == min(3, len(prior_u)) and len(s.item_lines) == min(
            1, len(prior_i)
        )
        assert s.user_lines == ctx.user_lines[len(ctx.user_lines) - len(s.user_lines) :]
        assert s.item_count == len(prior_i) and s.item_lines == ctx.item_lines[-1:]
        for line in ctx.user_lines + ctx.item_lines:
            assert h.loc[int(line.summary), "unixReviewTime"] < t
        if len(prior_u):
            assert ctx.user_avg == pytest.approx(prior_u.ratings.mean())


def test_templates_verbatim():
    want = json.loads(FIXTURE.read_text())
    ns = want["ns"]
    common = dict(cls=ns["product_class"], title=ns["target_title"],
                  user_avg=f"{ns['user_average_rating']:.1f}",
                  item_avg=f"{ns['item_average_rating']:.1f}")  # fmt: skip
    rated = dict(common, user_history=ns["user_history_text"], item_history=ns["item_history_text"])
    plain = dict(common, user_history=ns["reasoner"]["user_history_text"],
                 item_history=ns["reasoner"]["item_history_text"])  # fmt: skip
    assert AUTHORS.reasoner.format(**plain) == want["reasoner"]
    assert (
        AUTHORS.reasoner_hint.format(**rated, rating=ns["target_rating"]) == want["reasoner_hint"]
    )
    assert AUTHORS.direct.format(**rated) == want["direct"]
    assert AUTHORS.predictor.format(**rated, analysis="It fits.") == want["predictor"]
    assert AUTHORS.predictor.format(**rated, analysis=ns["target_reviews"]) == want["reward_train"]
    summ = AUTHORS.summarizer.format(
        cls="Digital Music", title="Song A", rating=4.0, review="Nice."
    )
    assert summ == want["summarizer"]
    assert rating_target(4) == "Predicted Rating: 4.0"
    assert has_forbidden("it earns 4.0 overall") == "4.0"
    assert has_forbidden("five stars for sure") == "stars "
    assert has_forbidden("a fine groove") is None


def test_prompt_fields_use_context_formats():
    h = pd.DataFrame([("u", "x", "X", 4.0, "s", 1), ("v", "t", "T", 2.0, "r", 2)],
                     columns=["user_id", "item_id", "title", "ratings",
                              "aspect_preference_summary", "unixReviewTime"])  # fmt: skip
    f = prompt_fields(HistoryIndex(h).context("u", "t", 9), cls="C", title="T", with_rating=True)
    assert f["user_history"] == "1. X, 4.0;\ns" and f["item_avg"] == "2.0"
