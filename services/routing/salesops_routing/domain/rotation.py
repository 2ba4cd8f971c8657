"""Fair rotation: which rep gets a territory's next lead, and why.

Strict round robin over the eligible reps in rotation order (the order routing first heard of
them). The rotation remembers the turn of the rep served last rather than an index into the
pool, so a rep leaving or rejoining the pool moves nobody else's turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

DEFAULT_TERRITORY = "default"
ROUND_ROBIN = "round_robin"
FALLBACK_QUEUE = "fallback_queue"
STRATEGIES = (ROUND_ROBIN, FALLBACK_QUEUE)
# No rulesets exist yet: every decision is made under the implicit version 0.
RULESET_VERSION = 0

SkipReason = Literal["inactive", "manager"]


@dataclass(frozen=True)
class RoutableRep:
    """A rep as rotation sees them; ``turn`` is their fixed place in the rotation order."""

    id: UUID
    turn: int
    name: str | None = None
    active: bool = True
    role: str | None = None

    @property
    def skip_reason(self) -> SkipReason | None:
        if not self.active:
            return "inactive"
        if self.role == "manager":
            return "manager"  # managers coach the reps; they never work leads themselves
        return None


@dataclass(frozen=True)
class SkippedRep:
    rep: RoutableRep
    reason: SkipReason


@dataclass(frozen=True)
class RoutingDecision:
    """The rep a lead goes to (None: the fallback queue) with everything that explains it."""

    territory_id: str
    strategy: str
    rep: RoutableRep | None
    candidates: tuple[RoutableRep, ...]
    skipped: tuple[SkippedRep, ...]
    served_last: RoutableRep | None

    @property
    def reason(self) -> str:
        if self.rep is None:
            return _fallback_reason(self.territory_id, self.skipped)
        place = self.candidates.index(self.rep) + 1
        return (
            f"round robin in territory {self.territory_id}: "
            f"rep {place} of {len(self.candidates)} eligible"
        )

    def explanation(self) -> dict[str, Any]:
        return {
            "territory": self.territory_id,
            "strategy": self.strategy,
            "ruleset_version": RULESET_VERSION,
            "candidates": [_rep_json(r) for r in self.candidates],
            "chosen": _rep_json(self.rep) if self.rep else None,
            "served_last": _rep_json(self.served_last) if self.served_last else None,
            "skipped": [{**_rep_json(s.rep), "reason": s.reason} for s in self.skipped],
            "reason": self.reason,
        }


def next_in_rotation(
    reps: Sequence[RoutableRep],
    *,
    last_turn: int | None,
    territory_id: str = DEFAULT_TERRITORY,
) -> RoutingDecision:
    """Choose the first eligible rep after the one served last, wrapping around."""
    ordered = sorted(reps, key=lambda r: r.turn)
    skipped = tuple(SkippedRep(r, reason) for r in ordered if (reason := r.skip_reason))
    candidates = tuple(r for r in ordered if r.skip_reason is None)
    served_last = next((r for r in ordered if r.turn == last_turn), None)
    if not candidates:
        return RoutingDecision(territory_id, FALLBACK_QUEUE, None, (), skipped, served_last)
    after_last = [r for r in candidates if last_turn is None or r.turn > last_turn]
    chosen = after_last[0] if after_last else candidates[0]
    return RoutingDecision(territory_id, ROUND_ROBIN, chosen, candidates, skipped, served_last)


def _rep_json(rep: RoutableRep) -> dict[str, Any]:
    return {"rep_id": str(rep.id), "name": rep.name}


def _fallback_reason(territory_id: str, skipped: Sequence[SkippedRep]) -> str:
    if not skipped:
        return f"no reps in territory {territory_id}: fallback queue"
    counts: dict[str, int] = {}
    for s in skipped:
        counts[s.reason] = counts.get(s.reason, 0) + 1
    why = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    return f"no eligible rep in territory {territory_id} ({why}): fallback queue"
