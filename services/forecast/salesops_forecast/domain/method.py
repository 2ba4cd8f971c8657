"""The bookings forecast method: one code path for a forecast run (scheduled or
``POST /v1/forecasts/run``) and for ``salesops forecast backtest``.

At an origin (an as-of time and a period), every scope group gets:

- ``pipeline``: what the period has won so far, plus each deal open at the as-of time ×
  its P(win) × P(close within what is left of the period) × its amount, plus the bookings
  expected from deals not yet created. P(close): a deal with an expected close date closes
  in the period if the date falls in it; an undated one by the Kaplan–Meier survival of the
  sales cycles known at the as-of time (closed deals are events, open ones censored at their
  age; with no closed deal of known age yet, it counts as closing in this period), times
  the **quarter's rhythm** for periods shorter than a quarter (below), capped at 1. Not
  yet created: the mean over past periods of what each booked from deals created
  on or after its own start + the as-of time's offset into the period; for a month (or a
  week) the mean over the past periods at the same place in the quarter, its spread from all.
- the time-series methods of ``series/methods`` on the scope's bookings per period, never
  below what the period has already won.

**The quarter's rhythm**: of the deals open at the same offset into each past period at the
same place in the quarter (first, second or third month; a week by the month of its
Monday), the share won within that period, against the same share over all past periods; 1
when no past period is at the same place. Counted in deals, not amounts: a lost deal's
amount is often rewritten to 0 when it closes, so past open amounts are not known.

The blend weighs the methods by how each did for the company at the ``ORIGINS`` earlier
origins before this one (domain/blend: weights and their rule chosen out of sample), and
applies the weights to every scope.

A deal with no creation time is never counted as open at an as-of time (it cannot be aged,
nor placed before any past origin): the service gives such a deal the time it was first
seen, the backtest none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property

import numpy as np
import numpy.typing as npt

from salesops_forecast.domain.blend import Estimate, Origin, Rule, blend, out_of_sample_weights
from salesops_forecast.domain.pipeline_model import (
    Array,
    Bookings,
    Days,
    Groups,
    Period,
    close_within,
    in_rhythm,
    not_yet_created,
    same_place,
)
from salesops_forecast.series.ets import SeriesForecast
from salesops_forecast.series.methods import series_forecasts
from salesops_forecast.series.seasons import Frequency

Flags = npt.NDArray[np.bool_]
DAY = 86400.0
ORIGINS = 6  # earlier origins the blend's weights come from
MIN_HISTORY = 3  # periods of bookings before an origin is forecast or scored
PIPELINE = "pipeline"


def seconds(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else float("nan")


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


@dataclass(frozen=True)
class DealHistory:
    """Every deal known, as arrays (one row per deal): times in POSIX seconds (NaN when
    unknown; a deal with no close time is open), and each deal's group at each scope level
    (-1: none at that level)."""

    created: Array
    closed: Array
    won: Flags
    booked: Array  # a won deal's booked value (others: anything)
    amount: Array  # what the deal would book while open; NaN: unknown (not counted)
    expected_close: Days  # NaT: none
    levels: Sequence[Groups]
    groups: int
    # Whether ``created`` is the deal's creation (else when it was first seen: not a sales
    # cycle's start). None: all are.
    created_known: Flags | None = None

    def __len__(self) -> int:
        return len(self.created)

    def open_at(self, t: float) -> Flags:
        """Created by ``t`` and not closed by then (NaN compares False)."""
        flags: Flags = (self.created <= t) & ~(self.closed <= t)
        return flags

    def total(self, per_deal: Array, mask: Flags) -> Array:
        """Per group, the sum of ``per_deal`` (the values of the ``mask`` rows)."""
        out = np.zeros(self.groups)
        for level in self.levels:
            g = level[mask]
            keep = g >= 0
            out += np.bincount(g[keep], weights=per_deal[keep], minlength=self.groups)
        return out

    @cached_property
    def bookings(self) -> Bookings:
        """Won deals, one row per (deal, group), by UTC day."""
        won = self.won & np.isfinite(self.closed)
        created, closed, amount, group = [], [], [], []
        for level in self.levels:
            rows = won & (level >= 0)
            created.append(_days(self.created[rows]))
            closed.append(_days(self.closed[rows]))
            amount.append(np.nan_to_num(self.booked[rows]))
            group.append(level[rows])
        return Bookings(
            np.concatenate(created),
            np.concatenate(closed),
            np.concatenate(amount),
            np.concatenate(group).astype(np.intp),
        )

    def won_between(self, start: float, end: float) -> Array:
        """Per group, the value won with a close time in [start, end]."""
        rows = self.won & (self.closed >= start) & (self.closed <= end)
        return self.total(np.nan_to_num(self.booked[rows]), rows)


def _days(values: Array) -> Days:
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[D]")
    known = np.isfinite(values)
    out[known] = np.floor(values[known] / DAY).astype(np.int64).astype("datetime64[D]")
    return out


@dataclass(frozen=True)
class AsOf:
    """Where a forecast stands: the as-of time, the period forecast and the complete past
    periods of the same kind before it (oldest first)."""

    as_of: datetime
    period: Period
    past: Sequence[Period]
    rhythm: bool  # a period shorter than a quarter: the quarter's rhythm applies
    start_month: int = 1

    @property
    def t(self) -> float:
        return self.as_of.timestamp()

    @property
    def start(self) -> float:
        return midnight(self.period[0]).timestamp()

    @property
    def end(self) -> float:
        """The first instant after the period."""
        return midnight(self.period[1] + timedelta(days=1)).timestamp()


@dataclass(frozen=True)
class PipelineEstimate:
    point: Array  # per group
    sigma: Array
    won: Array  # won so far in the period


def pipeline_estimate(h: DealHistory, p_win: Array, at: AsOf) -> PipelineEstimate:
    """The pipeline method (module doc) for every group. ``p_win``: per deal (row of ``h``),
    its P(win) as of ``at.as_of``; only the rows open then are read."""
    t = at.t
    won = h.won_between(at.start, t)
    open_now = h.open_at(t) & np.isfinite(h.amount)
    closed_by = (h.closed <= t) & np.isfinite(h.created)
    if h.created_known is not None:
        closed_by &= h.created_known
    cycles = (h.closed[closed_by] - h.created[closed_by]) / DAY
    ages = (t - h.created[open_now]) / DAY
    window = max(at.end - t, 0.0) / DAY
    if cycles.size:
        p_close = close_within(ages, window, cycles, still_open=ages)
    else:  # no sales cycle known yet: an undated deal counts as closing in this period
        p_close = np.ones(len(ages))
    if at.rhythm:
        p_close = p_close * quarter_rhythm(h, at)
    dated = h.expected_close[open_now]
    has_date = ~np.isnat(dated)
    in_period = (dated >= np.datetime64(at.period[0], "D")) & (
        dated <= np.datetime64(at.period[1], "D")
    )
    p_close = np.where(has_date, in_period.astype(float), p_close)
    p = np.minimum(p_win[open_now] * p_close, 1.0)
    amount = h.amount[open_now]
    offset = max(at.as_of.astimezone(UTC).date() - at.period[0], timedelta(0))
    nyc = not_yet_created(h.bookings, past=at.past, offset=offset, groups=h.groups)
    if at.rhythm:
        same = same_place(at.past, at.period, at.start_month)
        nyc = in_rhythm(nyc, h.bookings, same=same, offset=offset, groups=h.groups)
    point = won + h.total(p * amount, open_now) + nyc.mean
    variance = h.total(p * (1 - p) * amount**2, open_now) + nyc.sigma**2
    return PipelineEstimate(point, np.sqrt(variance), won)


def quarter_rhythm(h: DealHistory, at: AsOf) -> float:
    """The share of deals open at the origin's offset into past periods at the same place in
    the quarter that were won within them, against over all past periods (module doc)."""
    same = same_place(at.past, at.period, at.start_month)
    if not same:
        return 1.0
    overall = _won_share(h, at.past, at.t - at.start)
    return _won_share(h, same, at.t - at.start) / overall if overall > 0 else 1.0


def _won_share(h: DealHistory, periods: Sequence[Period], offset: float) -> float:
    won, opened = 0, 0
    for first, last in periods:
        t = midnight(first).timestamp() + offset
        open_then = h.open_at(t)
        end = midnight(last + timedelta(days=1)).timestamp()
        won += int((open_then & h.won & (h.closed < end)).sum())
        opened += int(open_then.sum())
    return won / opened if opened else 0.0


def series_at(y: Array, *, frequency: Frequency, horizon: int) -> dict[str, SeriesForecast]:
    """The time-series methods on bookings per period ``y`` (groups × periods before the
    origin)."""
    return series_forecasts(y, frequency=frequency, horizon=horizon)


def estimates(
    pipeline: PipelineEstimate,
    series: Mapping[str, SeriesForecast],
    *,
    pipeline_name: str = PIPELINE,
    rows: Sequence[int] | None = None,
) -> dict[str, tuple[Array, Array]]:
    """Each method's point and spread for the next period, per group (``rows``: which groups
    the series' rows are; all by default), never below what is already won."""
    index = np.arange(pipeline.won.size) if rows is None else np.asarray(rows)
    won = pipeline.won[index]
    out = {pipeline_name: (pipeline.point[index], pipeline.sigma[index])}
    for name, f in series.items():
        out[name] = (np.maximum(won, f.mean[:, 0]), f.sigma[:, 0])
    return out


def weights_at(
    earlier: Sequence[Origin], *, fallback: Sequence[str] = (PIPELINE,)
) -> tuple[dict[str, float], Rule]:
    """The blend's weights at an origin, from the company's forecasts and bookings at the
    last ``ORIGINS`` earlier origins (oldest first)."""
    return out_of_sample_weights(list(earlier)[-ORIGINS:], fallback=fallback)


def blend_points(
    found: Mapping[str, tuple[Array, Array]], weights: Mapping[str, float]
) -> tuple[Array, Array]:
    """The blend's point and spread per group."""
    n = len(next(iter(found.values()))[0])
    points, sigmas = np.zeros(n), np.zeros(n)
    for g in range(n):
        b = blend([Estimate(m, float(p[g]), float(s[g])) for m, (p, s) in found.items()], weights)
        points[g], sigmas[g] = b.point, b.sigma
    return points, sigmas
