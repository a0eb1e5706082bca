"""Time windows of the graph stores' `expand` (see `graph_store`): `Window` (a `TimeSpan`, a pair
of dates or of inclusive day ordinals, or None) -> `window_ordinals`, the overlap test
`in_window` (a missing time or window always passes), and the day-ordinal conversions the
Cypher stores keep times in (`time_ordinals`, `span_from`).
"""

from __future__ import annotations

import datetime

from jaxmethods.methods.fintmm.records import TimeSpan

Window = TimeSpan | tuple[datetime.date, datetime.date] | tuple[int, int] | None
_OPEN = (-(2**62), 2**62)


def window_ordinals(window: Window) -> tuple[int, int] | None:
    """A window as inclusive day ordinals (lo, hi), or None for no window."""
    if window is None:
        return None
    if isinstance(window, TimeSpan):
        return window.ordinals()
    if isinstance(window, (tuple, list)) and len(window) == 2:
        lo, hi = window
        if isinstance(lo, datetime.date) and isinstance(hi, datetime.date):
            return lo.toordinal(), hi.toordinal()
        if isinstance(lo, int) and isinstance(hi, int):
            return lo, hi
    raise ValueError(
        f"window must be a TimeSpan, (date, date), (ordinal, ordinal) or None, got {window!r}"
    )


def time_ordinals(time: TimeSpan | None) -> tuple[int | None, int | None]:
    return (None, None) if time is None else time.ordinals()


def in_window(time: TimeSpan | None, win: tuple[int, int] | None) -> bool:
    """True when `time` overlaps `win` (inclusive); a missing time or window always passes."""
    if time is None or win is None:
        return True
    t0, t1 = time.ordinals()
    return t1 >= win[0] and t0 <= win[1]


def span_from(t0: int | None, t1: int | None) -> TimeSpan | None:
    if t0 is None:
        return None
    return TimeSpan(datetime.date.fromordinal(int(t0)), datetime.date.fromordinal(int(t1)))


def _check(hops: int, limit: int) -> None:
    if hops < 0 or limit < 0:
        raise ValueError(f"expand: hops and limit must be >= 0, got hops={hops}, limit={limit}")
