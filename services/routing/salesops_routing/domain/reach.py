"""A rule's *reach*: the leads it can route, its conditions met with one rule of each
ancestor that has rules (a lead matches a child territory only if it matches a rule of every
such ancestor), as alternatives.

The index files rules by the keys of their reach, which are more selective than a child's own
conditions (a child rule "industry: software" under "postal 80" can be looked up by country,
postal prefix and industry); validation compares reaches to find overlaps and dead rules.
Parents are compiled before their children, whose rules are met with the parent's reach,
looked up by blocks when it has many alternatives, so compiling stays linear in practice.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from salesops_routing.domain.conditions import EQ_DIMS, Conditions
from salesops_routing.domain.ruleset import Territory

_POSTAL = len(EQ_DIMS)  # the position of the postal alternatives in Conditions
_MAX_REACH = 256  # alternatives a territory's reach may enumerate before it is approximated
_BLOCK_ABOVE = 8  # a parent with more alternatives than this is looked up by blocks

Specificity = tuple[int, int, int, int]  # named account, depth, conditions, priority


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    """A rule ready to evaluate, with its place in the precedence order."""

    number: int  # dense position in the index
    territory_id: str
    rule_id: str
    conditions: Conditions
    specificity: Specificity
    order: tuple[int, int, int, int, str, int]  # ascending: the first wins
    # Leads the rule can route: its conditions met with one rule of each ancestor, as
    # alternatives; `exact` is False where ancestors were too many to enumerate (a superset).
    reach: tuple[Conditions, ...]
    exact: bool


@contextmanager
def collector_paused() -> Iterator[None]:
    """Building allocates some hundred thousand small objects and no garbage cycles; the
    cyclic collector would rescan them over and over (almost half the build time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def chain_of(territory_id: str, territories: Mapping[str, Territory]) -> tuple[str, ...]:
    """The territory and its ancestors; stops at an unknown parent or a cycle (both refused
    by validation, but the index must not loop on them)."""
    chain = [territory_id]
    parent = territories[territory_id].parent
    while parent is not None and parent in territories and parent not in chain:
        chain.append(parent)
        parent = territories[parent].parent
    return tuple(chain)


class _Context:
    """What the rules of a territory's children are met with: the alternatives of its reach
    (None: no constraint, a root), blocked by the dimension most of them constrain so that a
    child rule is intersected only with the alternatives it can share values with."""

    def __init__(self, alternatives: tuple[Conditions, ...] | None, exact: bool) -> None:
        self.alternatives = alternatives
        self.exact = exact
        self._dim: str | None = None  # None: not prepared yet; "": not blocked
        self._blocks: dict[str, list[Conditions]] = {}
        self._open: list[Conditions] = []

    def _block(self, alternatives: tuple[Conditions, ...]) -> None:
        sample = alternatives[:16]

        def constrained(dim: str) -> int:
            return sum(getattr(alt, dim) is not None for alt in sample)

        self._dim = max(EQ_DIMS, key=constrained)
        for alt in alternatives:
            values = getattr(alt, self._dim)
            if values is None:
                self._open.append(alt)
            for value in values or ():
                self._blocks.setdefault(value, []).append(alt)

    def reach(self, conditions: Conditions) -> tuple[tuple[Conditions, ...], bool]:
        if conditions.empty_dimension() is not None:
            return (), True
        if self.alternatives is None:
            return (conditions,), self.exact
        met = (conditions.intersect(alt) for alt in self._candidates(conditions))
        reach = _distinct(alt for alt in met if alt is not None)
        if len(reach) > _MAX_REACH:
            return (conditions,), False
        return reach, self.exact

    def _candidates(self, conditions: Conditions) -> Sequence[Conditions]:
        if self._dim is None:  # first use: most territories have no children
            assert self.alternatives is not None
            self.alternatives = _merged(self.alternatives)
            self._dim = ""
            if len(self.alternatives) > _BLOCK_ABOVE:
                self._block(self.alternatives)
        alternatives = self.alternatives
        assert alternatives is not None
        if not self._dim:
            return alternatives
        values = getattr(conditions, self._dim or "")
        if values is None:
            return alternatives
        found = [alt for value in values for alt in self._blocks.get(value, ())] + self._open
        return _distinct(found) if len(values) > 1 else found


def _merged(alternatives: tuple[Conditions, ...]) -> tuple[Conditions, ...]:
    """Alternatives alike but for one dimension's values become one, with the values of
    both: "(DE and postal 10) or (DE and postal 11)" is "DE and postal 10 or 11", exactly. A
    territory's rules often differ only so, and its children then meet one alternative, not
    one per parent rule."""
    for position in (_POSTAL, 1, 2, 3, 4, 0):  # postal, country, region, industry, source, domain
        if len(alternatives) < 2:
            break
        groups: dict[tuple[object, ...], list[Conditions]] = {}
        for alt in alternatives:
            rest = (*alt[:position], *alt[position + 1 :], alt[position] is None)
            groups.setdefault(rest, []).append(alt)
        if len(groups) < len(alternatives):
            alternatives = tuple(_union(alike, position) for alike in groups.values())
    return alternatives


def _union(alike: list[Conditions], position: int) -> Conditions:
    first = alike[0]
    if len(alike) == 1 or first[position] is None:
        return first  # copies of one alternative
    fields: list[Any] = list(first)
    if position == _POSTAL:
        fields[position] = tuple(dict.fromkeys(p for alt in alike for p in alt.postal or ()))
    else:
        lists: list[frozenset[str]] = [alt[position] for alt in alike]  # type: ignore[misc]
        fields[position] = frozenset().union(*lists)
    return Conditions._make(fields)


def _distinct(alternatives: Iterable[Conditions]) -> tuple[Conditions, ...]:
    """Without repeats of the same object: hashing conditions by value costs more than the
    rare equal copies (which are harmless) would."""
    return tuple({id(alt): alt for alt in alternatives}.values())


_ROOT = _Context(None, exact=True)


def compile_rules(
    territories: Mapping[str, Territory], chains: Mapping[str, tuple[str, ...]]
) -> list[CompiledRule]:
    compiled: list[CompiledRule] = []
    contexts: dict[str, _Context] = {}
    for tid in sorted(territories, key=lambda t: len(chains[t])):  # parents first
        territory, chain = territories[tid], chains[tid]
        inherited = _ROOT
        if len(chain) > 1:
            # In a parent cycle (refused by validation) the parent may come later: unknown.
            inherited = contexts.get(chain[1]) or _Context(None, exact=False)
        own: list[Conditions] = []
        exact = inherited.exact
        for index, rule in enumerate(territory.rules, start=1):
            conditions = Conditions.of(rule)
            reach, rule_exact = inherited.reach(conditions)
            own += reach
            exact = exact and rule_exact
            named = int(rule.domains is not None)
            # Rule.conditions(), cheaper: a constrained attribute is a field that is not None.
            depth, count = len(chain) - 1, len(conditions) - conditions.count(None)
            compiled.append(
                CompiledRule(
                    number=len(compiled),
                    territory_id=tid,
                    rule_id=rule.id or f"{tid}#{index}",
                    conditions=conditions,
                    specificity=(named, depth, count, territory.priority),
                    order=(-named, -depth, -count, -territory.priority, tid, index),
                    reach=reach,
                    exact=rule_exact,
                )
            )
        if not territory.rules:
            contexts[tid] = inherited
        elif len(own) <= _MAX_REACH:
            contexts[tid] = _Context(_distinct(own), exact)
        else:  # too many to enumerate: its children keep only the ancestors' constraint
            contexts[tid] = _Context(inherited.alternatives, exact=False)
    return compiled
