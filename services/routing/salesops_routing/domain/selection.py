"""Which eligible rep of a territory gets the next lead, and the explanation of why.

Rotation is stride scheduling on a virtual clock. Each member has a *position*: how far their
leads have carried them through the rotation. A lead moves the chosen member on by their
*stride*, 1/weight, so a weight-2 rep advances half as fast and comes round twice as often.
The territory keeps a *virtual time*: the earliest position an eligible member stood at when
the last lead was handed out. Nobody who stays eligible ever falls behind it, so a member
found behind it (or without a position) is one who was away or is new. Without catch-up they
rejoin where the rotation stands now rather than collecting the leads they missed in a burst;
with catch-up they keep their old position and get those leads first.

The strategies rank the eligible members:

* round robin: every stride is 1 and the smallest position goes first, ties by rotation
  order, which is strict round robin in that order. A rejoining rep whose place in the order
  the current round has already passed waits for the next round: their turn, not an extra.
* weighted round robin: earliest eligible deadline first. Of the members not ahead of the
  weighted mean position (those owed a lead, or even), the one whose next lead falls due
  first (position + stride). Plain "smallest position + stride" would let a heavy rep take a
  run of early leads while light ones wait, an error that grows with the size of the team;
  the mean keeps every rep of a steady team within one lead of their exact weight share.
  Nobody rejoins owed more than one lead, whatever the weights, so a heavy rep back from
  absence gets no burst either.
* least loaded: the fewest open leads per weight; equal loads are ranked by the rotation, so
  they still take turns fairly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import groupby
from typing import Any, TypeAlias
from uuid import UUID

from salesops_routing.domain.availability import (
    SKIP_REASONS,
    Absence,
    RepState,
    SkipReason,
    capacity_windows,
    unavailable_because,
)

__all__ = [
    "FALLBACK_QUEUE",
    "LEAST_LOADED",
    "ROUND_ROBIN",
    "STRATEGIES",
    "WEIGHTED_ROUND_ROBIN",
    "Absence",
    "MemberState",
    "RepState",
    "Selection",
    "SkipReason",
    "Skipped",
    "capacity_windows",
    "select_rep",
    "unavailable_because",
]

ROUND_ROBIN = "round_robin"
WEIGHTED_ROUND_ROBIN = "weighted_round_robin"
LEAST_LOADED = "least_loaded"
FALLBACK_QUEUE = "fallback_queue"
STRATEGIES = (ROUND_ROBIN, WEIGHTED_ROUND_ROBIN, LEAST_LOADED)


@dataclass(frozen=True)
class MemberState:
    """A rep in a territory with their weight and stored rotation position (None: never
    served)."""

    rep: RepState
    weight: float = 1.0
    position: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"a member's weight must be positive, got {self.weight!r}")


_Weigh: TypeAlias = Callable[[MemberState], float]


@dataclass(frozen=True)
class Skipped:
    rep: RepState
    reason: SkipReason
    detail: str


@dataclass(frozen=True)
class Selection:
    """The rep a lead goes to (None: the fallback queue), what to store for the rotation, and
    everything that explains the choice."""

    strategy: str  # the territory's strategy, or "fallback_queue" when nobody can take it
    rep: RepState | None
    candidates: tuple[RepState, ...]  # eligible members, best ranked first
    skipped: tuple[Skipped, ...]  # in rotation order
    new_position: float | None  # the chosen member's position to store
    virtual_time: float  # the territory's rotation clock to store

    def reason(self, territory_id: str) -> str:
        if self.rep is None:
            return _fallback_reason(territory_id, self.skipped)
        in_order = sorted(self.candidates, key=_order_key)
        place = 1 + next(i for i, r in enumerate(in_order) if r.id == self.rep.id)
        text = (
            f"{self.strategy.replace('_', ' ')} in territory {territory_id}: "
            f"rep {place} of {len(in_order)} eligible"
        )
        if self.strategy == LEAST_LOADED:
            text += f", {self.rep.open_leads} open leads"
        return text

    def explanation(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "chosen": _rep_json(self.rep) if self.rep else None,
            "candidates": [_rep_json(r) for r in self.candidates],
            "skipped": [
                {**_rep_json(s.rep), "reason": s.reason, "detail": s.detail} for s in self.skipped
            ],
            "virtual_time": self.virtual_time,
        }


def select_rep(
    members: Sequence[MemberState],
    *,
    strategy: str,
    now: datetime,
    virtual_time: float,
    catch_up: bool = False,
    exclude: Collection[UUID] = (),
) -> Selection:
    """Choose the member who gets the next lead (see the module docstring); ``exclude`` names
    reps who must not get it, such as the owner an SLA breach takes it from."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    everyone = sorted(members, key=lambda m: _order_key(m.rep))
    skipped, eligible = _screen(everyone, now, frozenset(exclude))
    if not eligible:
        return Selection(FALLBACK_QUEUE, None, (), skipped, None, virtual_time)
    weigh = _unit_weight if strategy == ROUND_ROBIN else _member_weight
    if catch_up:
        seats = [_Seat(m, weigh(m), _default(m.position, virtual_time)) for m in eligible]
    else:
        seats = _rejoined(eligible, everyone, weigh, virtual_time)
    ranked = _rank_by_load(seats) if strategy == LEAST_LOADED else _rank(seats)
    chosen = ranked[0]
    # The clock follows the earliest eligible position, so it never passes anyone who stays
    # eligible: only reps who were away (or are new) can be found behind it.
    clock = max(virtual_time, min(s.start for s in seats))
    candidates = tuple(s.member.rep for s in ranked)
    return Selection(strategy, chosen.member.rep, candidates, skipped, chosen.finish, clock)


@dataclass(frozen=True)
class _Seat:
    """An eligible member with the weight the strategy counts and their effective start."""

    member: MemberState
    weight: float
    start: float

    @property
    def stride(self) -> float:
        return 1 / self.weight

    @property
    def finish(self) -> float:
        return self.start + self.stride


def _screen(
    everyone: Sequence[MemberState], now: datetime, exclude: frozenset[UUID]
) -> tuple[tuple[Skipped, ...], list[MemberState]]:
    skipped: list[Skipped] = []
    eligible: list[MemberState] = []
    for member in everyone:
        why = unavailable_because(member.rep, now)
        if why is None and member.rep.id in exclude:
            why = "previous_owner", "the lead is moving on from them"
        if why is None:
            eligible.append(member)
        else:
            skipped.append(Skipped(member.rep, *why))
    return tuple(skipped), eligible


def _rejoined(
    eligible: Sequence[MemberState],
    everyone: Sequence[MemberState],
    weigh: _Weigh,
    clock: float,
) -> list[_Seat]:
    """Seat every eligible member where the rotation lets them stand: nobody behind the clock,
    nobody owed more than one lead. A member who stayed eligible is never behind the clock, so
    that floor only moves members who were away or are new."""
    uniform = len({weigh(m) for m in eligible}) == 1
    # With equal strides the rotation is a round in rotation order; this round has passed the
    # place of everyone before the last member already a full stride past the clock.
    passed = _furthest_served_this_round(everyone, weigh, clock) if uniform else None
    seats = []
    for member in eligible:
        weight = weigh(member)
        floor = clock
        if passed is not None and _order_key(member.rep) < passed:
            floor += 1 / weight  # their turn this round is gone: next round, not an extra
        seats.append(_Seat(member, weight, max(_default(member.position, floor), floor)))
    return _owed_one_lead_at_most(seats)


def _furthest_served_this_round(
    everyone: Sequence[MemberState], weigh: _Weigh, clock: float
) -> tuple[int, str] | None:
    ahead = (
        _order_key(m.rep)
        for m in everyone
        if m.position is not None and m.position >= clock + 1 / weigh(m)
    )
    return max(ahead, default=None)


def _owed_one_lead_at_most(seats: Sequence[_Seat]) -> list[_Seat]:
    """Move up anyone owed more than one lead: a start more than a stride behind the weighted
    mean start, the mean taken after the moves (they raise it).

    In a steady team nobody is owed a whole lead (the ranking sees to that), so this binds
    only when the team changes, chiefly for a heavy rep back from away while a light member
    held the clock back, who would otherwise rejoin with a run of leads. Members are moved in
    the order the rising mean reaches them; once it stops reaching the next one it is final.
    """
    total = math.fsum(s.weight for s in seats)
    unmoved = math.fsum(s.weight * s.start for s in seats)
    mean, moved, moved_weight = unmoved / total, 0, 0.0
    for seat in sorted(seats, key=lambda s: s.finish):
        if mean <= seat.finish or moved_weight + seat.weight >= total:
            break
        unmoved -= seat.weight * seat.start
        moved, moved_weight = moved + 1, moved_weight + seat.weight
        # mean * total = unmoved + sum over moved (weight * mean - 1)
        mean = (unmoved - moved) / (total - moved_weight)
    # A seat already at or past its floor is kept as it is (a copy per seat per decision was
    # a tenth of routing's CPU with 100 reps in a territory).
    return [s if s.start >= mean - s.stride else replace(s, start=mean - s.stride) for s in seats]


def _rank(seats: Sequence[_Seat]) -> list[_Seat]:
    """Earliest eligible deadline first: members at or behind the weighted mean position
    (they are owed a lead, or even) by when their next lead falls due, then the rest."""
    total = math.fsum(s.weight for s in seats)
    mean = math.fsum(s.weight * s.start for s in seats) / total
    due = max(mean, min(s.start for s in seats))  # rounding must not leave nobody due
    return sorted(seats, key=lambda s: (s.start > due, s.finish, _order_key(s.member.rep)))


def _rank_by_load(seats: Sequence[_Seat]) -> list[_Seat]:
    by_load = sorted(seats, key=_load)
    return [seat for _, equal in groupby(by_load, key=_load) for seat in _rank(list(equal))]


def _load(seat: _Seat) -> float:
    return seat.member.rep.open_leads / seat.weight


def _unit_weight(member: MemberState) -> float:
    return 1.0


def _member_weight(member: MemberState) -> float:
    return member.weight


def _default(position: float | None, fallback: float) -> float:
    return fallback if position is None else position


def _order_key(rep: RepState) -> tuple[int, str]:
    return rep.order, str(rep.id)


def _rep_json(rep: RepState) -> dict[str, Any]:
    return {"rep_id": str(rep.id), "name": rep.name}


def _fallback_reason(territory_id: str, skipped: Sequence[Skipped]) -> str:
    if not skipped:
        return f"no reps in territory {territory_id}: fallback queue"
    counts = {reason: sum(s.reason == reason for s in skipped) for reason in SKIP_REASONS}
    why = ", ".join(f"{n} {reason}" for reason, n in counts.items() if n)
    return f"no eligible rep in territory {territory_id} ({why}): fallback queue"
