"""Checks on a ruleset before it becomes the routing model, in words a sales-ops admin reads.

Errors refuse the change: broken structure (duplicate ids, unknown parents, cycles), invalid
bands and postal ranges, and two territories that could claim the same lead with equal
precedence (which one wins would then hang on the territory id, which nobody means). Warnings
are reported and the change is accepted: rules that can never route a lead, territories
nobody can work, members not (yet) in the roster, active reps in no territory.

The pairwise checks never compare all pairs: overlaps are searched by recursive blocking on
the values rules share (:mod:`.overlaps`), covering rules by :class:`TerritoryIndex` lookups.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from salesops_routing.domain.conditions import EQ_DIMS, postal_key
from salesops_routing.domain.overlaps import overlapping_pairs
from salesops_routing.domain.reach import CompiledRule, collector_paused
from salesops_routing.domain.ruleset import Member, Rule, Ruleset, Territory
from salesops_routing.domain.territories import TerritoryIndex

Severity = Literal["error", "warning"]
_CAP = 50  # findings of one kind listed one by one; the rest are counted


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str
    territory_id: str | None = None
    rule_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "territory_id": self.territory_id,
            "rule_id": self.rule_id,
        }


@dataclass(frozen=True)
class RosterRep:
    id: UUID
    email: str | None
    active: bool
    role: str | None = None

    @property
    def takes_leads(self) -> bool:
        """Active and not a manager (managers never work leads)."""
        return self.active and self.role != "manager"


def validate(
    ruleset: Ruleset, roster: Sequence[RosterRep], *, index: TerritoryIndex | None = None
) -> list[Finding]:
    """Every finding, errors first. ``index``: the ruleset's, when the caller built it
    already (building one for 50,000 rules takes a second or two)."""
    with collector_paused():
        findings = [*_structure(ruleset), *_invalid_conditions(ruleset)]
        findings += _members(ruleset, roster)
        index = index or TerritoryIndex.build(ruleset)
        findings += _overlaps(index)
        findings += _unreachable(index, ruleset)
    findings.sort(key=lambda f: f.severity != "error")  # stable: each kind keeps its order
    return findings


def _error(
    code: str, message: str, territory: str | None = None, rule: str | None = None
) -> Finding:
    return Finding("error", code, message, territory, rule)


def _warning(
    code: str, message: str, territory: str | None = None, rule: str | None = None
) -> Finding:
    return Finding("warning", code, message, territory, rule)


def _rule_id(territory: Territory, index: int, rule: Rule) -> str:
    return rule.id or f"{territory.id}#{index}"


# --------------------------------------------------------------------------------------------
# Structure


def _structure(ruleset: Ruleset) -> Iterator[Finding]:
    counts = Counter(t.id for t in ruleset.territories)
    for tid, count in counts.items():
        if count > 1:
            yield _error(
                "duplicate_territory",
                f"The territory id '{tid}' is used by {count} territories; ids must be unique.",
                tid,
            )
    yield from _duplicate_rules(ruleset)
    first = {t.id: t for t in reversed(ruleset.territories)}
    for territory in ruleset.territories:
        if territory.parent is not None and territory.parent not in first:
            yield _error(
                "unknown_parent",
                f"Territory '{territory.id}' names the parent '{territory.parent}', "
                "which is not a territory of this model.",
                territory.id,
            )
    yield from _cycles(first)
    fallback = ruleset.fallback_territory
    if fallback is not None and fallback not in first:
        yield _error(
            "unknown_fallback",
            f"The fallback territory '{fallback}' is not a territory of this model.",
            fallback,
        )


def _duplicate_rules(ruleset: Ruleset) -> Iterator[Finding]:
    first = {t.id: t for t in reversed(ruleset.territories)}.values()  # duplicates: reported
    ids = [(_rule_id(t, n, rule), t.id) for t in first for n, rule in enumerate(t.rules, 1)]
    counts = Counter(rule_id for rule_id, _ in ids)
    owners: dict[str, list[str]] = {}
    for rule_id, territory_id in ids:
        if counts[rule_id] > 1:
            owners.setdefault(rule_id, []).append(territory_id)
    for rule_id, territories in owners.items():
        where = ", ".join(sorted(set(territories)))
        yield _error(
            "duplicate_rule",
            f"The rule id '{rule_id}' is used by {len(territories)} rules (in {where}); "
            "rule ids must be unique across the model.",
            territories[0],
            rule_id,
        )


def _cycles(territories: dict[str, Territory]) -> Iterator[Finding]:
    reported: set[str] = set()
    for start in territories:
        path: list[str] = []
        current: str | None = start
        while current is not None and current in territories and current not in path:
            path.append(current)
            current = territories[current].parent
        if current is None or current not in path:
            continue
        cycle = path[path.index(current) :]
        first = cycle.index(min(cycle))
        cycle = cycle[first:] + cycle[:first]  # told from its smallest id, whichever start
        if reported.isdisjoint(cycle):
            reported.update(cycle)
            yield _error(
                "parent_cycle",
                "These territories are each other's ancestors, which has no top: "
                + " -> ".join([*cycle, cycle[0]])
                + ".",
                min(cycle),
            )


def _invalid_conditions(ruleset: Ruleset) -> Iterator[Finding]:
    for territory in ruleset.territories:
        for index, rule in enumerate(territory.rules, start=1):
            rule_id = _rule_id(territory, index, rule)
            for name, band in (("employees", rule.employees), ("revenue", rule.annual_revenue)):
                low, high = (None, None) if band is None else (band.min, band.max)
                if low is not None and high is not None and low > high:
                    yield _error(
                        "invalid_band",
                        f"Rule '{rule_id}' of territory '{territory.id}' has a {name} band "
                        f"from {low} to {high}: the minimum is above the maximum.",
                        territory.id,
                        rule_id,
                    )
            for lo, hi in rule.postal_code.ranges if rule.postal_code else ():
                problem = _range_problem(postal_key(lo), postal_key(hi))
                if problem:
                    yield _error(
                        "invalid_range",
                        f"Rule '{rule_id}' of territory '{territory.id}' has the postal range "
                        f"{lo}-{hi}: {problem}.",
                        territory.id,
                        rule_id,
                    )


def _range_problem(lo: str, hi: str) -> str | None:
    if len(lo) != len(hi):
        return "both ends must have the same number of characters"
    if lo > hi:
        return "the first code comes after the last"
    return None


# --------------------------------------------------------------------------------------------
# Members and roster


class _Roster:
    def __init__(self, reps: Sequence[RosterRep]) -> None:
        self.by_id = {rep.id: rep for rep in reps}
        self.by_email = {rep.email.strip().lower(): rep for rep in reps if rep.email}

    def find(self, member: Member) -> RosterRep | None:
        if member.rep_id is not None:
            return self.by_id.get(member.rep_id)
        return self.by_email.get((member.email or "").strip().lower())


def _member_key(member: Member, rep: RosterRep | None) -> str:
    if rep is not None:
        return str(rep.id)  # the same rep named once by id and once by e-mail is a duplicate
    return str(member.rep_id) if member.rep_id else f"email:{(member.email or '').lower()}"


def _member_name(member: Member) -> str:
    return member.email or str(member.rep_id)


def _members(ruleset: Ruleset, reps: Sequence[RosterRep]) -> Iterator[Finding]:
    roster = _Roster(reps)
    parents = {t.parent for t in ruleset.territories}
    placed: set[UUID] = set()
    for territory in ruleset.territories:
        keys: set[str] = set()
        active = False
        for member in territory.members:
            rep = roster.find(member)
            key = _member_key(member, rep)
            if key in keys:
                yield _error(
                    "duplicate_member",
                    f"{_member_name(member)} is listed twice in territory '{territory.id}'.",
                    territory.id,
                )
            keys.add(key)
            if rep is None:
                yield _warning(
                    "unknown_member",
                    f"{_member_name(member)} in territory '{territory.id}' is not a known rep "
                    "yet; they take leads once the CRM sends them.",
                    territory.id,
                )
            else:
                placed.add(rep.id)
                active = active or rep.takes_leads
        # A container territory without members is a design (its leads go up), not a gap.
        worked = bool(territory.members) or bool(territory.rules and territory.id not in parents)
        if not active and (worked or territory.id == ruleset.fallback_territory):
            yield _warning(
                "no_active_members",
                f"Nobody can take leads in territory '{territory.id}': "
                + (
                    "its members are all inactive, managers or unknown"
                    if territory.members
                    else "it has no members"
                )  # fmt: skip
                + "; its leads go up to the parent territory, then to the fallback queue.",
                territory.id,
            )
    yield from _unplaced([rep for rep in reps if rep.takes_leads and rep.id not in placed])


def _unplaced(reps: list[RosterRep]) -> Iterator[Finding]:
    reps.sort(key=lambda rep: (rep.email or "~", str(rep.id)))
    for rep in reps[:_CAP]:
        yield _warning(
            "rep_in_no_territory",
            f"Active rep {rep.email or rep.id} is a member of no territory and gets no leads "
            "from territory rules.",
        )
    if len(reps) > _CAP:
        yield _warning(
            "rep_in_no_territory",
            f"... and {len(reps) - _CAP} more active reps are members of no territory.",
        )


# --------------------------------------------------------------------------------------------
# Overlaps and unreachable rules


def _overlaps(index: TerritoryIndex) -> Iterator[Finding]:
    pairs = overlapping_pairs(index.rules)
    for (first, second, shared), _ in zip(pairs, range(_CAP), strict=False):
        named, depth, count, priority = first.specificity
        kind = "named-account rules" if named else f"rules with {count} conditions"
        yield _error(
            "overlapping_territories",
            f"Territories '{first.territory_id}' and '{second.territory_id}' can both claim "
            f"the same leads ({shared.describe()}) with equal precedence: {kind}, at depth "
            f"{depth}, priority {priority} (rules '{first.rule_id}' and '{second.rule_id}'). "
            "Give one of them a higher priority or make the rules exclusive.",
            first.territory_id,
            first.rule_id,
        )
    if len(pairs) > _CAP:
        yield _error(
            "overlapping_territories",
            f"... and {len(pairs) - _CAP} more pairs of territories overlap with equal precedence.",
        )


def _unreachable(index: TerritoryIndex, ruleset: Ruleset) -> Iterator[Finding]:
    position = {t.id: n for n, t in reversed(list(enumerate(ruleset.territories)))}
    # In the order the admin wrote them (the index holds them parents first).
    for rule in sorted(index.rules, key=lambda r: (position[r.territory_id], r.order[-1])):
        why = _why_unreachable(index, rule)
        if why:
            yield _warning(
                "unreachable_rule",
                f"Rule '{rule.rule_id}' of territory '{rule.territory_id}' never routes a lead: "
                f"{why}.",
                rule.territory_id,
                rule.rule_id,
            )


def _why_unreachable(index: TerritoryIndex, rule: CompiledRule) -> str | None:
    conditions = rule.conditions
    for dim in EQ_DIMS:
        if getattr(conditions, dim) == frozenset():
            return f"its {dim.replace('_', ' ')} list is empty"
    if conditions.postal == ():
        return "its postal code condition lists no prefix and no range"
    if conditions.empty_dimension() is not None:
        return None  # an inverted band or range: reported as an error
    if not rule.reach:
        if not rule.exact:
            return None
        parents = ", ".join(f"'{t}'" for t in index.gates(rule.territory_id))
        return (
            "no lead can match it and also match a rule of each parent territory "
            f"({parents}) as it must"
        )
    winner = _covering(index, rule)
    if winner is None:
        return None
    return (
        f"every lead it matches goes to territory '{winner.territory_id}' "
        f"(rule '{winner.rule_id}'), whose rule covers it and takes precedence"
    )


def _covering(index: TerritoryIndex, rule: CompiledRule) -> CompiledRule | None:
    """A rule of another territory, of higher precedence, whose reach (exactly known)
    contains all of this rule's: looked up in the index, so only same-bucket rules count."""
    seen: set[int] = set()
    for other in index.covering_candidates(rule.reach[0]):
        if other.specificity <= rule.specificity or other.number in seen:
            continue
        seen.add(other.number)
        if (
            other.territory_id != rule.territory_id
            and other.exact
            and all(any(a.covers(b) for a in other.reach) for b in rule.reach)
        ):
            return other
    return None
