"""The pipeline model's pieces that history teaches: bookings per period and scope, bookings
from deals not yet created at as-of, and when open deals close.

Won deals come as arrays, one row per (deal, scope group) so that a deal counts in the
company, its team and its rep at once; days are ``datetime64[D]`` (NaT when unknown).

**Not yet created.** For a period starting on day s and a forecast made d days into it, the
expected bookings from deals created on or after s + d are the mean, over the last past
periods of the same kind, of what was won within each period from deals created on or after
its own start + d. A deal with no creation day counts as created before any period.

**Closing within the period.** An open deal aged a days closes within the next w days with
probability (S(a) − S(a + w)) / S(a), S the Kaplan–Meier survival of sales cycles (engaged →
closed): closed deals are events, deals still open are censored at their age; S is floored
at 1 / (deals + 1) so that the ratio stays defined past the longest cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Days = npt.NDArray[np.datetime64]
Groups = npt.NDArray[np.intp]
Period = tuple[date, date]  # first and last day
PeriodKind = Literal["month", "week"]

MIN_PAST_PERIODS = 2
PAST_PERIODS = 6


def periods_between(first: date, last: date, kind: PeriodKind) -> list[Period]:
    """Calendar months, or weeks from Monday, covering ``first`` to ``last``."""
    out: list[Period] = []
    if kind == "week":
        start = first - timedelta(days=first.weekday())
        while start <= last:
            out.append((start, start + timedelta(days=6)))
            start += timedelta(days=7)
        return out
    start = first.replace(day=1)
    while start <= last:
        following = (start + timedelta(days=32)).replace(day=1)
        out.append((start, following - timedelta(days=1)))
        start = following
    return out


def days(values: Sequence[date | None]) -> Days:
    return np.array([np.datetime64(v, "D") if v else np.datetime64("NaT") for v in values])


@dataclass(frozen=True)
class Bookings:
    """Won deals, one row per (deal, scope group)."""

    created: Days
    closed: Days
    amount: Array
    group: Groups

    def _sum(self, mask: npt.NDArray[np.bool_], groups: int) -> Array:
        sums: Array = np.bincount(
            self.group[mask], weights=self.amount[mask], minlength=groups
        ).astype(float)
        return sums

    def booked(self, period: Period, *, groups: int, until: date | None = None) -> Array:
        """Won within the period (up to and including ``until``), per group."""
        start, end = np.datetime64(period[0], "D"), np.datetime64(until or period[1], "D")
        return self._sum((self.closed >= start) & (self.closed <= end), groups)

    def series(self, periods: Sequence[Period], *, groups: int) -> Array:
        """Bookings per group and period: (groups, periods)."""
        if not periods:
            return np.zeros((groups, 0))
        return np.stack([self.booked(p, groups=groups) for p in periods], axis=1)

    def created_since(self, period: Period, offset: timedelta, *, groups: int) -> Array:
        start, end = np.datetime64(period[0], "D"), np.datetime64(period[1], "D")
        cutoff = np.datetime64(period[0] + offset, "D")
        mask = (self.closed >= start) & (self.closed <= end) & (self.created >= cutoff)
        return self._sum(mask, groups)


@dataclass(frozen=True)
class NotYetCreated:
    mean: Array  # per group
    sigma: Array
    periods: int  # past periods it was learned from (0: none, mean and sigma are zero)


def not_yet_created(
    bookings: Bookings, *, past: Sequence[Period], offset: timedelta, groups: int
) -> NotYetCreated:
    """Expected bookings from deals created ``offset`` or later into a period, from the last
    ``PAST_PERIODS`` of ``past`` (oldest first); nothing until ``MIN_PAST_PERIODS`` exist."""
    used = list(past)[-PAST_PERIODS:]
    if len(used) < MIN_PAST_PERIODS:
        zero = np.zeros(groups)
        return NotYetCreated(zero, zero, 0)
    amounts = np.stack([bookings.created_since(p, offset, groups=groups) for p in used])
    return NotYetCreated(amounts.mean(axis=0), amounts.std(axis=0, ddof=1), len(used))


def quarter_place(day: date, start_month: int = 1) -> int:
    """0, 1 or 2: the month of ``day`` is the first, second or third of its (fiscal)
    quarter."""
    return (day.month - start_month) % 3


def same_place(past: Sequence[Period], period: Period, start_month: int = 1) -> list[Period]:
    """The past periods starting in the same month of their quarter as ``period``."""
    place = quarter_place(period[0], start_month)
    return [p for p in past if quarter_place(p[0], start_month) == place]


def in_rhythm(
    nyc: NotYetCreated,
    bookings: Bookings,
    *,
    same: Sequence[Period],
    offset: timedelta,
    groups: int,
) -> NotYetCreated:
    """Not yet created with its mean from the past periods at the same place in the quarter
    (``same``, the last ``PAST_PERIODS`` of them) and its spread from all: the first month
    of a quarter wins most of what is created in it, the others less. Unchanged when none
    is at the same place or ``nyc`` learned nothing."""
    used = list(same)[-PAST_PERIODS:]
    if not used or not nyc.periods:
        return nyc
    amounts = np.stack([bookings.created_since(p, offset, groups=groups) for p in used])
    return NotYetCreated(amounts.mean(axis=0), nyc.sigma, nyc.periods)


def close_within(ages: Array, window: float, cycles: Array, *, still_open: Array) -> Array:
    """Per open deal of age ``ages`` (days), the chance it closes within ``window`` days.
    Survival of sales cycles by Kaplan–Meier: ``cycles`` of the deals closed so far are
    events, the ages of the deals ``still_open`` are censored there (a deal open for
    months is evidence that deals do stay open that long)."""
    times = np.concatenate([np.asarray(cycles, dtype=float), np.asarray(still_open, dtype=float)])
    events = np.concatenate([np.ones(len(cycles)), np.zeros(len(still_open))])
    order = np.argsort(times, kind="stable")
    times, events = times[order], events[order]
    distinct, first = np.unique(times, return_index=True)
    closed = np.add.reduceat(events, first) if len(times) else np.zeros(0)
    at_risk = len(times) - first
    curve = np.cumprod(1 - closed / np.maximum(at_risk, 1))
    floor = 1 / (len(times) + 1)

    def survival(x: Array) -> Array:
        index = np.searchsorted(distinct, x, side="right") - 1
        s = np.where(index >= 0, curve[np.maximum(index, 0)], 1.0)
        return np.maximum(s, floor)

    a = np.maximum(np.asarray(ages, dtype=float), 0)
    chance: Array = (survival(a) - survival(a + window)) / survival(a)
    return chance
