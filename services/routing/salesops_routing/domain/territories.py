"""Which territory a lead belongs to: an index over a ruleset's rules, exact and fast.

Every rule is filed under equality keys (named-account domain, country, region, industry,
lead source, postal prefix) that any lead it can route must have, so :meth:`TerritoryIndex.match`
looks up a handful of small buckets instead of scanning tens of thousands of rules. The keys
come from the rule's *reach*: its conditions intersected with those of its ancestors (a lead
matches a child territory only if it matches a rule of every ancestor that has rules), which
gives a child rule like "industry: software" under "postal 80" the selective key
(country, postal, industry). Candidates are then checked in full, so the index is exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import product
from typing import Any

from salesops_routing.domain.conditions import (
    EQ_DIMS,
    Conditions,
    Probe,
    domain_key,
    fold,
    postal_key,
)
from salesops_routing.domain.reach import (
    CompiledRule,
    Specificity,
    chain_of,
    collector_paused,
    compile_rules,
)
from salesops_routing.domain.ruleset import Ruleset, Territory

__all__ = ["CompiledRule", "LeadAttributes", "TerritoryIndex", "TerritoryMatch"]

_POSTAL = len(EQ_DIMS)  # the postal prefix ends an index key
_MAX_KEYS = 64  # per reach alternative: beyond, the least selective dimensions are dropped
_MAX_ALSO = 10


@dataclass(frozen=True)
class LeadAttributes:
    """What territory rules look at, for a lead (or an account: no lead source)."""

    country: str | None = None
    region: str | None = None
    postal_code: str | None = None
    industry: str | None = None
    employees: int | None = None
    annual_revenue: Decimal | None = None
    lead_source: str | None = None
    domain: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> LeadAttributes:
        """From a lead or account record; blanks and unreadable numbers count as missing (a
        CRM's bad value must not fail routing, and a missing value matches no condition)."""
        country = _text(values.get("country"))
        domain = _text(values.get("domain"))
        return cls(
            country=None if country is None else country.upper(),
            region=_text(values.get("region")),
            postal_code=_text(values.get("postal_code")),
            industry=_text(values.get("industry")),
            employees=_integer(values.get("employees")),
            annual_revenue=_decimal(values.get("annual_revenue")),
            lead_source=_text(values.get("lead_source")),
            domain=None if domain is None else domain_key(domain) or None,
        )

    def probe(self) -> Probe:
        """The values as rules compare them (case-blind, postal code without spaces)."""
        postal = None if self.postal_code is None else postal_key(self.postal_code) or None
        return Probe(
            domain=None if self.domain is None else domain_key(self.domain),
            country=None if self.country is None else self.country.strip().upper(),
            region=None if self.region is None else fold(self.region),
            industry=None if self.industry is None else fold(self.industry),
            lead_source=None if self.lead_source is None else fold(self.lead_source),
            postal=postal,
            employees=self.employees,
            revenue=self.annual_revenue,
        )


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


@dataclass(frozen=True)
class TerritoryMatch:
    territory_id: str
    rule_id: str
    chain: tuple[str, ...]  # the territory, then its ancestors up to the root
    named_account: bool
    specificity: Specificity  # higher wins; ties go to the lower territory id
    also_matched: tuple[str, ...]  # the runners-up, best first (at most 10)

    def explanation(self) -> dict[str, Any]:
        return {
            "territory": self.territory_id,
            "rule": self.rule_id,
            "chain": list(self.chain),
            "named_account": self.named_account,
            "also_matched": list(self.also_matched),
        }


_Buckets = dict[tuple[str | None, ...], list[CompiledRule]]


class TerritoryIndex:
    def __init__(
        self,
        territories: Mapping[str, Territory],
        chains: Mapping[str, tuple[str, ...]],
        rules: Sequence[CompiledRule],
    ) -> None:
        self._territories = dict(territories)
        self._chains = dict(chains)
        self.rules: tuple[CompiledRule, ...] = tuple(rules)
        with_rules = {rule.territory_id for rule in rules}
        # The ancestors whose rules a lead must also match.
        self._gates = {t: tuple(a for a in c[1:] if a in with_rules) for t, c in chains.items()}
        self._families: dict[tuple[int, ...], _Buckets] = {}
        self._always: list[CompiledRule] = []
        for rule in rules:
            self._file(rule)
        # (equality dimensions, whether a postal prefix ends the key, buckets), for lookups
        self._lookups = [
            (family[:-1], True, buckets) if family[-1] == _POSTAL else (family, False, buckets)
            for family, buckets in self._families.items()
        ]

    @classmethod
    def build(cls, ruleset: Ruleset) -> TerritoryIndex:
        territories: dict[str, Territory] = {}
        for territory in ruleset.territories:
            territories.setdefault(territory.id, territory)  # a duplicate id is refused anyway
        with collector_paused():
            chains = {tid: chain_of(tid, territories) for tid in territories}
            rules = compile_rules(territories, chains)
            return cls(territories, chains, rules)

    def territory(self, territory_id: str) -> Territory | None:
        return self._territories.get(territory_id)

    def ancestors(self, territory_id: str) -> tuple[str, ...]:
        return self._chains.get(territory_id, (territory_id,))[1:]

    def chain(self, territory_id: str) -> tuple[str, ...]:
        return self._chains.get(territory_id, (territory_id,))

    def gates(self, territory_id: str) -> tuple[str, ...]:
        """The ancestors with rules: a lead matches the territory only if it matches one rule
        of each of these too."""
        return self._gates.get(territory_id, ())

    def match(self, attrs: LeadAttributes) -> TerritoryMatch | None:
        """The most specific territory the lead matches, or None (the caller falls back)."""
        probe = attrs.probe()
        best: dict[str, CompiledRule] = {}
        seen: set[int] = set()
        for rule in self._candidates(probe):
            if rule.number in seen:
                continue
            seen.add(rule.number)
            if rule.conditions.matches(probe):
                current = best.get(rule.territory_id)
                if current is None or rule.order < current.order:
                    best[rule.territory_id] = rule
        gates = self._gates
        qualified = [r for t, r in best.items() if all(g in best for g in gates[t])]
        if not qualified:
            return None
        qualified.sort(key=lambda r: r.order)
        winner = qualified[0]
        return TerritoryMatch(
            territory_id=winner.territory_id,
            rule_id=winner.rule_id,
            chain=self._chains[winner.territory_id],
            named_account=winner.specificity[0] == 1,
            specificity=winner.specificity,
            also_matched=tuple(r.territory_id for r in qualified[1 : 1 + _MAX_ALSO]),
        )

    def _candidates(self, probe: Probe) -> list[CompiledRule]:
        """The rules filed under a key the lead has (with repeats: a rule may sit under
        several of the lead's postal prefixes)."""
        values = (probe.domain, probe.country, probe.region, probe.industry, probe.lead_source)
        code = probe.postal
        found: list[CompiledRule] = []
        for dims, by_postal, buckets in self._lookups:
            key = tuple([values[d] for d in dims])
            if None in key:
                continue
            if not by_postal:
                found += buckets.get(key, ())
            elif code:
                for size in range(1, len(code) + 1):
                    found += buckets.get((*key, code[:size]), ())
        found += self._always
        return found

    def covering_candidates(self, conditions: Conditions) -> list[CompiledRule]:
        """The rules whose reach could cover ``conditions`` (each dimension a superset): what
        a lead with one representative value of each constrained dimension would look up."""
        anchors = conditions.anchors()

        def some(dim: str) -> str | None:
            return min(anchors[dim]) if dim in anchors else None

        probe = Probe(
            domain=some("domain"),
            country=some("country"),
            region=some("region"),
            industry=some("industry"),
            lead_source=some("lead_source"),
            postal=some("postal"),
        )
        return self._candidates(probe)

    def _file(self, rule: CompiledRule) -> None:
        for alternative in rule.reach:
            keys = _keys(alternative)
            if keys is None:
                self._always.append(rule)  # nothing to look it up by: always checked
                return
            family, combos = keys
            buckets = self._families.setdefault(family, {})
            for combo in combos:
                bucket = buckets.setdefault(combo, [])
                if not bucket or bucket[-1] is not rule:
                    bucket.append(rule)


def _keys(alternative: Conditions) -> tuple[tuple[int, ...], Iterator[tuple[str, ...]]] | None:
    """The family (dimensions) and keys to file an alternative under: every anchored
    dimension, the most selective conjunction, dropping the widest lists while the number of
    keys exceeds the cap."""
    a = alternative
    lists = (a.domain, a.country, a.region, a.industry, a.lead_source)  # EQ_DIMS order
    anchored = [(n, values) for n, values in enumerate(lists) if values is not None]
    prefixes = alternative.postal_anchors()
    if prefixes is not None:
        anchored.append((_POSTAL, prefixes))
    if not anchored:
        return None
    count = 1
    for _, values in anchored:
        count *= len(values)
    while len(anchored) > 1 and count > _MAX_KEYS:
        widest = max(anchored, key=lambda a: len(a[1]))
        anchored.remove(widest)
        count //= len(widest[1])
    if count == 1:  # the usual case: one value per dimension
        return tuple(n for n, _ in anchored), iter([tuple(min(v) for _, v in anchored)])
    return tuple(n for n, _ in anchored), product(*[values for _, values in anchored])
