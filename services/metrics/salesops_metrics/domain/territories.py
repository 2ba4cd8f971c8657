"""What metrics needs of routing's territory model (from ``ruleset.published``): each rep's
primary territory and each territory's first-touch SLA.

Read tolerantly: the ruleset is routing's document, so a field metrics does not know, or
one missing, must never fail a consumer. A rep's primary territory is the first territory, in
the ruleset's order, that lists the rep as a member (by ``rep_id`` or by e-mail).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class TerritoryModel:
    version: int = 0
    primary_by_rep: Mapping[str, str] = field(default_factory=dict)
    primary_by_email: Mapping[str, str] = field(default_factory=dict)
    sla_minutes: Mapping[str, float] = field(default_factory=dict)

    def primary_territory(self, rep_id: UUID | None, email: str | None) -> str | None:
        if rep_id is not None and (found := self.primary_by_rep.get(str(rep_id))):
            return found
        if email:
            return self.primary_by_email.get(email.strip().lower())
        return None


def territory_model(version: int, ruleset: Mapping[str, Any]) -> TerritoryModel:
    by_rep: dict[str, str] = {}
    by_email: dict[str, str] = {}
    sla: dict[str, float] = {}
    territories = ruleset.get("territories")
    for territory in territories if isinstance(territories, list) else []:
        if not isinstance(territory, dict) or not isinstance(territory.get("id"), str):
            continue
        tid = territory["id"]
        minutes = (territory.get("sla") or {}).get("first_touch_minutes")
        if isinstance(minutes, int | float) and minutes > 0:
            sla[tid] = float(minutes)
        for member in territory.get("members") or []:
            if not isinstance(member, dict):
                continue
            if isinstance(rep := member.get("rep_id"), str):
                by_rep.setdefault(rep.lower(), tid)
            if isinstance(email := member.get("email"), str):
                by_email.setdefault(email.strip().lower(), tid)
    return TerritoryModel(version, by_rep, by_email, sla)
