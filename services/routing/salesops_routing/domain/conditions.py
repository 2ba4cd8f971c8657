"""A rule's conditions as normalized sets: match a lead, intersect, cover, describe.

Territory matching (:mod:`.territories`) and ruleset validation (:mod:`.validation`) share this
small algebra, so that "could these two rules both match a lead?" is answered by exactly the
comparisons that matching makes. A :class:`Conditions` is a conjunction over the dimensions; a
dimension left out (``None``) is not checked, and every constrained dimension rejects a lead
that has no value for it. Intersections stay exact: postal codes are kept as alternatives
(prefix and/or range), bands as closed intervals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from salesops_routing.domain.ruleset import Band, Rule

# Dimensions compared by equality (a value "in" the rule's list); the order is the index's.
EQ_DIMS = ("domain", "country", "region", "industry", "lead_source")
# Padding for the smallest/greatest code of a given length under a prefix: postal codes are
# compared as text, so these bound every real character.
_LOWEST, _HIGHEST = "\x00", "\U0010ffff"

Interval = tuple[Decimal | None, Decimal | None]


def postal_key(code: str) -> str:
    """Postal codes compare without spaces and upper-case: ``"sw1a 1aa"`` -> ``"SW1A1AA"``."""
    return "".join(code.split()).upper()


def fold(text: str) -> str:
    return text.strip().casefold()


def domain_key(domain: str) -> str:
    return domain.strip().lower().removeprefix("www.")


@dataclass(frozen=True, slots=True)
class Probe:
    """A lead's values as the rules compare them (see :meth:`LeadAttributes.probe`)."""

    domain: str | None = None
    country: str | None = None
    region: str | None = None
    industry: str | None = None
    lead_source: str | None = None
    postal: str | None = None
    employees: Decimal | int | None = None
    revenue: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PostalAlt:
    """Codes starting with ``prefix`` and, with ``span``, of ``len(lo)`` characters within
    ``[lo, hi]`` as text. A rule's prefix is ``PostalAlt(p)``, its range ``PostalAlt("", r)``;
    intersections may have both."""

    prefix: str = ""
    span: tuple[str, str] | None = None
    # The longest prefix every matching code has: codes between lo and hi share their common
    # prefix, which is what lets the index file ranges like prefixes.
    anchor: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        anchor = self.prefix
        if self.span is not None:
            common = _common_prefix(*self.span)
            anchor = common if len(common) > len(anchor) else anchor
        object.__setattr__(self, "anchor", anchor)

    def matches(self, code: str) -> bool:
        if not code.startswith(self.prefix):
            return False
        if self.span is None:
            return True
        lo, hi = self.span
        return len(code) == len(lo) and lo <= code <= hi

    def intersect(self, other: PostalAlt) -> PostalAlt | None:
        if self.prefix.startswith(other.prefix):
            prefix = self.prefix
        elif other.prefix.startswith(self.prefix):
            prefix = other.prefix
        else:
            return None
        span = self.span or other.span
        if self.span is not None and other.span is not None:
            (lo1, hi1), (lo2, hi2) = self.span, other.span
            if len(lo1) != len(lo2):
                return None
            span = (max(lo1, lo2), min(hi1, hi2))
        alt = PostalAlt(prefix, span)
        return alt if alt._satisfiable() else None

    def _satisfiable(self) -> bool:
        if self.span is None:
            return True
        lo, hi = self.span
        size = len(lo)
        if len(self.prefix) > size:
            return False
        # The codes of this length under the prefix form one interval of text.
        least = self.prefix + _LOWEST * (size - len(self.prefix))
        most = self.prefix + _HIGHEST * (size - len(self.prefix))
        return max(lo, least) <= min(hi, most)

    def covers(self, other: PostalAlt) -> bool:
        """Every code ``other`` matches, this matches too (sound; exotic covers may be missed)."""
        if not other.anchor.startswith(self.prefix):
            return False
        if self.span is None:
            return True
        if other.span is None:
            return False  # a bare prefix takes codes of every length; a range only one
        (lo, hi), (olo, ohi) = self.span, other.span
        return len(lo) == len(olo) and lo <= olo and ohi <= hi

    def describe(self) -> str:
        parts = [f"starting {self.prefix}"] if self.prefix else []
        if self.span is not None:
            parts.append(f"{self.span[0]}-{self.span[1]}")
        return " ".join(parts) or "any"


def _common_prefix(first: str, second: str) -> str:
    size = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        size += 1
    return first[:size]


def _interval(band: Band | None) -> Interval | None:
    return None if band is None else (band.min, band.max)


def _in_interval(value: Decimal | int | None, interval: Interval) -> bool:
    if value is None:
        return False
    lo, hi = interval
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _meet(a: Interval, b: Interval) -> Interval | None:
    lo = a[0] if b[0] is None else b[0] if a[0] is None else max(a[0], b[0])
    hi = a[1] if b[1] is None else b[1] if a[1] is None else min(a[1], b[1])
    return None if lo is not None and hi is not None and lo > hi else (lo, hi)


def _interval_covers(a: Interval | None, b: Interval | None) -> bool:
    if a is None:
        return True
    if b is None:
        return False
    low_ok = a[0] is None or (b[0] is not None and b[0] >= a[0])
    return low_ok and (a[1] is None or (b[1] is not None and b[1] <= a[1]))


def _folded(values: Iterable[str] | None) -> frozenset[str] | None:
    if values is None:
        return None
    return frozenset(fold(v) for v in values)


class Conditions(NamedTuple):
    """One conjunction of conditions. A named tuple rather than a frozen dataclass: the index
    builds and compares a hundred thousand of these, and tuples are several times cheaper."""

    domain: frozenset[str] | None = None
    country: frozenset[str] | None = None
    region: frozenset[str] | None = None
    industry: frozenset[str] | None = None
    lead_source: frozenset[str] | None = None
    postal: tuple[PostalAlt, ...] | None = None
    employees: Interval | None = None
    revenue: Interval | None = None

    @classmethod
    def of(cls, rule: Rule) -> Conditions:
        postal = None
        if rule.postal_code is not None:
            alts = [PostalAlt(postal_key(p)) for p in rule.postal_code.prefixes]
            ranges = rule.postal_code.ranges
            alts += [PostalAlt("", (postal_key(lo), postal_key(hi))) for lo, hi in ranges]
            postal = tuple(alts)
        return cls(
            domain=None if rule.domains is None else frozenset(map(domain_key, rule.domains)),
            country=None if rule.country is None else frozenset(rule.country),
            region=_folded(rule.region),
            industry=_folded(rule.industry),
            lead_source=_folded(rule.lead_source),
            postal=postal,
            employees=_interval(rule.employees),
            revenue=_interval(rule.annual_revenue),
        )

    def matches(self, lead: Probe) -> bool:
        # None is never in a set of strings: a missing value fails a constrained dimension.
        if self.country is not None and lead.country not in self.country:
            return False
        if self.region is not None and lead.region not in self.region:
            return False
        if self.industry is not None and lead.industry not in self.industry:
            return False
        if self.lead_source is not None and lead.lead_source not in self.lead_source:
            return False
        if self.domain is not None and lead.domain not in self.domain:
            return False
        if self.postal is not None:
            code = lead.postal
            if code is None or not any(alt.matches(code) for alt in self.postal):
                return False
        if self.employees is not None and not _in_interval(lead.employees, self.employees):
            return False
        return self.revenue is None or _in_interval(lead.revenue, self.revenue)

    def empty_dimension(self) -> str | None:
        """The dimension no value can satisfy (an empty list, an inverted band), if any."""
        lists = self[: len(EQ_DIMS)]
        if _EMPTY in lists:
            return EQ_DIMS[lists.index(_EMPTY)]
        if self.postal is not None and not any(a._satisfiable() for a in self.postal):
            return "postal_code"
        for dim, interval in (("employees", self.employees), ("annual_revenue", self.revenue)):
            if interval is not None and _meet(interval, interval) is None:
                return dim
        return None

    def intersect(self, other: Conditions) -> Conditions | None:
        """The conditions of leads matching both, or None when no lead can. Returns ``self``
        itself when ``other`` adds nothing (callers rely on identity to skip duplicates)."""
        if self is other:
            return self
        lists: list[frozenset[str] | None] = []
        for mine, theirs in (
            (self.domain, other.domain),
            (self.country, other.country),
            (self.region, other.region),
            (self.industry, other.industry),
            (self.lead_source, other.lead_source),
        ):
            both = _meet_values(mine, theirs)
            if both is not None and not both:
                return None  # checked dimension by dimension: most pairs part early
            lists.append(both)
        employees = _meet_optional(self.employees, other.employees)
        revenue = _meet_optional(self.revenue, other.revenue)
        if employees is _NOTHING or revenue is _NOTHING:
            return None
        postal = _meet_postal(self.postal, other.postal)
        if postal == ():
            return None
        domain, country, region, industry, lead_source = lists
        met = Conditions(domain, country, region, industry, lead_source, postal, employees, revenue)
        return self if met == self else met

    def covers(self, other: Conditions) -> bool:
        """Every lead ``other`` matches, this matches too."""
        for dim in EQ_DIMS:
            mine, theirs = getattr(self, dim), getattr(other, dim)
            if mine is not None and (theirs is None or not theirs <= mine):
                return False
        if self.postal is not None:
            if other.postal is None:
                return False
            if not all(any(a.covers(b) for a in self.postal) for b in other.postal):
                return False
        return _interval_covers(self.employees, other.employees) and _interval_covers(
            self.revenue, other.revenue
        )

    def postal_anchors(self) -> frozenset[str] | None:
        """The prefixes one of which every matching code starts with; None when some code may
        start with anything (a range like 10000-99999)."""
        if self.postal is None:
            return None
        prefixes = frozenset(alt.anchor for alt in self.postal)
        return None if "" in prefixes else prefixes

    def anchors(self) -> dict[str, frozenset[str]]:
        """The equality keys a lead matching these conditions must have, by dimension (postal:
        one of these prefixes); what the index files the conditions under."""
        keys = {}
        if self.domain is not None:
            keys["domain"] = self.domain
        if self.country is not None:
            keys["country"] = self.country
        if self.region is not None:
            keys["region"] = self.region
        if self.industry is not None:
            keys["industry"] = self.industry
        if self.lead_source is not None:
            keys["lead_source"] = self.lead_source
        prefixes = self.postal_anchors()
        if prefixes is not None:
            keys["postal"] = prefixes
        return keys

    def describe(self) -> str:
        """Plain words for an admin: ``country DE, industry software, employees 1-50``."""
        parts = [
            f"{dim.replace('_', ' ')} {' or '.join(sorted(values))}"
            for dim in EQ_DIMS
            if (values := getattr(self, dim)) is not None
        ]
        if self.postal is not None:
            parts.append("postal code " + " or ".join(a.describe() for a in self.postal))
        for name, interval in (("employees", self.employees), ("revenue", self.revenue)):
            if interval is not None:
                lo, hi = interval
                parts.append(f"{name} {'' if lo is None else lo}-{'' if hi is None else hi}")
        return ", ".join(parts) or "any lead"


_EMPTY: frozenset[str] = frozenset()
_NOTHING: Interval = (Decimal(1), Decimal(0))  # what two disjoint bands meet in


# The equality dimensions are the first fields, in EQ_DIMS order: code slices them.
assert Conditions._fields[: len(EQ_DIMS)] == EQ_DIMS


def _meet_values(
    mine: frozenset[str] | None, theirs: frozenset[str] | None
) -> frozenset[str] | None:
    # Most intersections are of a set with itself or a subset: keep the existing object.
    if mine is None:
        return theirs
    if theirs is None or mine is theirs:
        return mine
    if len(mine) <= len(theirs) and mine <= theirs:
        return mine
    if theirs <= mine:
        return theirs
    return mine & theirs


def _meet_optional(mine: Interval | None, theirs: Interval | None) -> Interval | None:
    if mine is None or mine is theirs:
        return theirs
    if theirs is None:
        return mine
    return _meet(mine, theirs) or _NOTHING


def _meet_postal(
    mine: tuple[PostalAlt, ...] | None, theirs: tuple[PostalAlt, ...] | None
) -> tuple[PostalAlt, ...] | None:
    if mine is None or mine is theirs:
        return theirs
    if theirs is None:
        return mine
    met = (a.intersect(b) for a in mine for b in theirs)
    return tuple(dict.fromkeys(alt for alt in met if alt is not None))
