"""The context of a target (u, i, t), as the authors' scripts build it from a history table:

* user history: u's rows with time < t, sorted by time (stable), the last `max_lines` (10);
* item history: i's rows with time < t (the authors' code does not exclude u), the last 10;
* user / item averages over *all* those prior rows' ratings, not only the last 10;
* history lines `"{k}. {title}, {rating:.1f};\\n{summary}\\n\\n"` (with ratings: direct
  prediction, reward model, Predictor) or `"{k}. {title}\\n{summary}\\n\\n"` (Reasoner),
  concatenated and stripped.

A target with no prior user or item row is cold: the pipeline predicts the global mean for it
(the authors' sampling skips such targets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SUMMARY_COLUMN = "aspect_preference_summary"


@dataclass(frozen=True)
class HistoryLine:
    title: str
    rating: float
    summary: str


@dataclass(frozen=True)
class Context:
    user_lines: tuple[HistoryLine, ...]
    item_lines: tuple[HistoryLine, ...]
    user_avg: float  # NaN when the user has no prior rating
    item_avg: float
    user_count: int  # all prior ratings (the averages' support)
    item_count: int

    @property
    def cold(self) -> bool:
        return self.user_count == 0 or self.item_count == 0


def history_text(lines, *, with_rating: bool) -> str:
    """The authors' history block (see the module docstring)."""
    text = ""
    for k, line in enumerate(lines, start=1):
        if with_rating:
            text += f"{k}. {line.title}, {float(line.rating):.1f};\n"
        else:
            text += f"{k}. {line.title}\n"
        text += f"{line.summary}".strip() + "\n\n"
    return text.strip()


class HistoryIndex:
    """Per-user and per-item time-sorted views of a history table, for O(log n) contexts.

    Args:
      history: rows with `user_id, item_id, title, ratings, unixReviewTime` and the summary
        column (the Summarizer's output on the train rows).
      max_lines: history lines kept per side (the authors' `tail(10)`).
      max_item_lines: item history lines kept, when other than `max_lines` (the demo's budget).
      summary_column: the column whose text follows each history line.
    """

    def __init__(self, history: pd.DataFrame, *, max_lines: int = 10,
                 max_item_lines: int | None = None,
                 summary_column: str = SUMMARY_COLUMN):  # fmt: skip
        if summary_column not in history.columns:
            raise KeyError(
                f"history table: no column {summary_column!r} (the Summarizer's output); has "
                f"{list(history.columns)}"
            )
        self.max_lines = max_lines
        self.max_item_lines = max_lines if max_item_lines is None else max_item_lines
        order = np.argsort(history["unixReviewTime"].to_numpy(), kind="stable")
        h = history.iloc[order]
        self._titles = h["title"].astype(str).to_numpy()
        self._ratings = h["ratings"].to_numpy(np.float64)
        self._summaries = h[summary_column].to_numpy()
        self._times = h["unixReviewTime"].to_numpy(np.int64)
        self._by_user = self._group(h["user_id"].to_numpy())
        self._by_item = self._group(h["item_id"].to_numpy())
        self.global_mean = float(self._ratings.mean()) if len(self._ratings) else 3.0

    @staticmethod
    def _group(keys: np.ndarray) -> dict:
        groups: dict = {}
        for pos, k in enumerate(keys.tolist()):
            groups.setdefault(k, []).append(pos)
        return {k: np.asarray(v, np.int64) for k, v in groups.items()}

    def _side(self, groups: dict, key, time: int, max_lines: int):
        rows = groups.get(key)
        if rows is None:
            return (), float("nan"), 0
        n = int(np.searchsorted(self._times[rows], time, side="left"))  # rows with time < t
        prior = rows[:n]
        avg = float(self._ratings[prior].mean()) if n else float("nan")
        lines = tuple(
            HistoryLine(self._titles[p], float(self._ratings[p]), self._summaries[p])
            for p in prior[max(0, len(prior) - max_lines) :]
        ) if n and max_lines > 0 else ()  # fmt: skip
        return lines, avg, n

    def context(self, user_id, item_id, time: int) -> Context:
        u_lines, u_avg, u_n = self._side(self._by_user, user_id, int(time), self.max_lines)
        i_lines, i_avg, i_n = self._side(self._by_item, item_id, int(time), self.max_item_lines)
        return Context(u_lines, i_lines, u_avg, i_avg, u_n, i_n)


def prompt_fields(ctx: Context, *, cls: str, title: str, with_rating: bool) -> dict[str, str]:
    """The template slots shared by every rating and reasoning prompt."""
    return {
        "cls": cls,
        "title": title,
        "user_history": history_text(ctx.user_lines, with_rating=with_rating),
        "item_history": history_text(ctx.item_lines, with_rating=with_rating),
        "user_avg": f"{float(ctx.user_avg):.1f}",
        "item_avg": f"{float(ctx.item_avg):.1f}",
    }
