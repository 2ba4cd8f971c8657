"""Which territories could claim the same lead with equal precedence, without comparing all
pairs of a 50,000-rule model.

Rules of equal precedence (named-account flag, depth, condition count, priority) are compared
through their *reach* (their conditions met with their ancestors', see
:class:`~salesops_routing.domain.reach.CompiledRule`): two siblings' "industry: software"
rules under disjoint postal areas do not overlap. The search blocks recursively: split the rules
by the values of the dimension most of them constrain (a rule without that condition goes to
every block), and compare pairs only inside small blocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from salesops_routing.domain.conditions import EQ_DIMS, Conditions
from salesops_routing.domain.reach import CompiledRule

_Item = tuple[CompiledRule, Conditions]
# Postal prefixes block at growing lengths: two prefixes intersect only if one starts the
# other, so codes constrained to at least k characters must agree on their first k.
_DIMS = (*EQ_DIMS, "postal1", "postal2", "postal3", "postal4")
_SMALL = 16  # blocks this small are compared pair by pair
_SAMPLE = 24  # items looked at to choose the next dimension to block by

Overlap = tuple[CompiledRule, CompiledRule, Conditions]


def overlapping_pairs(rules: Sequence[CompiledRule]) -> list[Overlap]:
    """One overlap per pair of territories (the first pair of rules found), sorted by the
    territory ids."""
    groups: dict[tuple[int, int, int, int], list[_Item]] = {}
    for rule in rules:
        for alternative in rule.reach:
            groups.setdefault(rule.specificity, []).append((rule, alternative))
    found: dict[tuple[str, str], Overlap] = {}
    for items in groups.values():
        _within(items, _DIMS, found)
    return [found[pair] for pair in sorted(found)]


def _values(alternative: Conditions, dim: str) -> frozenset[str] | None:
    """The block keys of an alternative on a dimension; None: it goes to every block."""
    if not dim.startswith("postal"):
        values: frozenset[str] | None = getattr(alternative, dim)
        return values
    anchors = alternative.postal_anchors()
    if anchors is None:
        return None
    length = int(dim[-1])
    if len(anchors) == 1:
        (anchor,) = anchors
        return frozenset((anchor[:length],)) if len(anchor) >= length else None
    if min(map(len, anchors)) < length:
        return None
    return frozenset(anchor[:length] for anchor in anchors)


def _choose(items: Sequence[_Item], dims: tuple[str, ...]) -> str | None:
    """The dimension that leaves the least comparing to do in a sample: the sum of squared
    block sizes, a loose item counting against the whole sample (it joins every block). A
    rule listing five regions sits in five blocks, so many values are not better per se."""
    # Choosing costs a sample's worth of lookups per dimension: keep it small for small lists.
    size = _SAMPLE if len(items) > 4 * _SAMPLE else 8
    sample = items[:: max(1, len(items) // size)]

    def work(dim: str) -> float:
        counts: dict[str, int] = {}
        loose = 0
        for _, alt in sample:
            values = _values(alt, dim)
            if values is None:
                loose += 1
            for value in values or ():
                counts[value] = counts.get(value, 0) + 1
        if loose == len(sample):
            return math.inf
        return sum(n * n for n in counts.values()) + loose * len(sample)

    costs = {dim: work(dim) for dim in dims}
    best = min(dims, key=costs.__getitem__, default=None)
    return None if best is None or costs[best] == math.inf else best


def _split(
    items: Sequence[_Item], dim: str
) -> tuple[dict[str, list[_Item]], list[_Item], list[_Item]]:
    """Blocks by value, the items without the condition, the items with it."""
    blocks: dict[str, list[_Item]] = {}
    loose: list[_Item] = []
    keyed: list[_Item] = []
    for item in items:
        values = _values(item[1], dim)
        if values is None:
            loose.append(item)
            continue
        keyed.append(item)
        for value in values:
            blocks.setdefault(value, []).append(item)
    return blocks, loose, keyed


def _within(
    items: Sequence[_Item], dims: tuple[str, ...], found: dict[tuple[str, str], Overlap]
) -> None:
    if len(items) < 2:
        return
    dim = _choose(items, dims) if len(items) > _SMALL else None
    if dim is None:
        for i, first in enumerate(items):
            for second in items[i + 1 :]:
                _compare(first, second, found)
        return
    blocks, loose, _ = _split(items, dim)
    rest = tuple(d for d in dims if d != dim)
    for block in blocks.values():
        _within(block, rest, found)
        _across(block, loose, rest, found)
    _within(loose, rest, found)


def _across(
    left: Sequence[_Item],
    right: Sequence[_Item],
    dims: tuple[str, ...],
    found: dict[tuple[str, str], Overlap],
) -> None:
    if not left or not right:
        return
    dim = (
        _choose([*left[:_SAMPLE], *right[:_SAMPLE]], dims) if len(left) * len(right) > 256 else None
    )
    if dim is None:
        for first in left:
            for second in right:
                _compare(first, second, found)
        return
    left_blocks, left_loose, left_keyed = _split(left, dim)
    right_blocks, right_loose, _ = _split(right, dim)
    rest = tuple(d for d in dims if d != dim)
    for value, block in left_blocks.items():
        if value in right_blocks:
            _across(block, right_blocks[value], rest, found)
    _across(left_loose, right, rest, found)
    _across(left_keyed, right_loose, rest, found)


def _compare(first: _Item, second: _Item, found: dict[tuple[str, str], Overlap]) -> None:
    a, b = first[0], second[0]
    if a.territory_id == b.territory_id:
        return
    if a.order > b.order:
        first, second = second, first
    pair = (first[0].territory_id, second[0].territory_id)
    if pair in found:
        return
    shared = first[1].intersect(second[1])
    if shared is not None:
        found[pair] = (first[0], second[0], shared)
