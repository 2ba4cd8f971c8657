"""Which territory a lead belongs to: the most specific match wins, children narrow parents."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesops_routing.domain import reach
from salesops_routing.domain.ruleset import (
    Band,
    PostalCodes,
    Rule,
    Ruleset,
    Territory,
    implicit_ruleset,
)
from salesops_routing.domain.territories import LeadAttributes, TerritoryIndex, TerritoryMatch

pytestmark = pytest.mark.unit


def index(*territories: Territory, fallback: str | None = None) -> TerritoryIndex:
    return TerritoryIndex.build(Ruleset(territories=list(territories), fallback_territory=fallback))


def territory(tid: str, *rules: Rule, parent: str | None = None, priority: int = 0) -> Territory:
    return Territory(id=tid, parent=parent, priority=priority, rules=list(rules))


def where(idx: TerritoryIndex, **values: Any) -> str | None:
    found = idx.match(LeadAttributes(**values))
    return None if found is None else found.territory_id


EMEA = territory("EMEA", Rule(country=["DE", "AT", "CH", "FR", "GB"]))
DACH = territory("DACH", Rule(country=["DE", "AT", "CH"]), parent="EMEA")


def test_a_lead_from_munich_goes_to_dach_not_emea() -> None:
    found = index(EMEA, DACH).match(LeadAttributes(country="DE", postal_code="80331"))
    assert found is not None
    assert found.territory_id == "DACH"
    assert found.chain == ("DACH", "EMEA")  # routing escalates along it
    assert found.also_matched == ("EMEA",)
    assert where(index(EMEA, DACH), country="FR") == "EMEA"
    assert where(index(EMEA, DACH), country="US") is None


def test_a_named_account_beats_a_deeper_country_rule() -> None:
    acme = territory("acme", Rule(domains=["www.ACME.com"]))
    found = index(EMEA, DACH, acme).match(LeadAttributes(country="DE", domain="acme.com"))
    assert found is not None
    assert (found.territory_id, found.named_account) == ("acme", True)
    assert found.also_matched == ("DACH", "EMEA")
    assert where(index(EMEA, DACH, acme), country="DE", domain="other.com") == "DACH"


def test_a_child_narrows_its_parent() -> None:
    software = territory("dach-software", Rule(industry=["Software"]), parent="DACH")
    idx = index(EMEA, DACH, software)
    assert where(idx, country="AT", industry="software") == "dach-software"
    # The child's own rule holds, but the lead is not in DACH: neither territory takes it.
    assert where(idx, country="US", industry="software") is None
    assert where(idx, country="FR", industry="software") == "EMEA"


def test_a_territory_without_rules_matches_nothing_but_its_children_still_do() -> None:
    group = territory("group")
    child = territory("child", Rule(country=["DE"]), parent="group")
    idx = index(group, child)
    assert where(idx, country="DE") == "child"
    assert where(idx, country="FR") is None
    assert idx.ancestors("child") == ("group",)


def test_a_postal_range_takes_codes_of_its_length_between_its_ends() -> None:
    arrondissements = PostalCodes(ranges=[("75001", "75020")])
    paris = territory("paris", Rule(country=["FR"], postal_code=arrondissements))
    idx = index(paris)
    assert where(idx, country="FR", postal_code="75015") == "paris"
    assert where(idx, country="FR", postal_code="75001") == "paris"
    assert where(idx, country="FR", postal_code="75020") == "paris"
    assert where(idx, country="FR", postal_code="75021") is None
    assert where(idx, country="FR", postal_code="7501") is None  # too short
    assert where(idx, country="FR", postal_code="750150") is None  # too long


def test_postal_prefixes_compare_without_spaces_and_case_blind() -> None:
    london = territory("london", Rule(country=["gb"], postal_code=PostalCodes(prefixes=["sw1 a"])))
    idx = index(london)
    assert where(idx, country="GB", postal_code="SW1A 1AA") == "london"
    assert where(idx, country="gb", postal_code="sw1a1aa") == "london"
    assert where(idx, country="GB", postal_code="SW2 1AA") is None
    assert where(idx, country="GB") is None  # a missing value never matches


def test_employee_bands_are_inclusive_and_need_a_value() -> None:
    smb = territory("smb", Rule(employees=Band(min=Decimal(1), max=Decimal(50))))
    mid = territory("mid", Rule(employees=Band(min=Decimal(51), max=Decimal(1000))))
    ent = territory("ent", Rule(employees=Band(min=Decimal(1001))))
    idx = index(smb, mid, ent)
    assert [where(idx, employees=n) for n in (1, 50, 51, 1000, 1001, 10**6)] == [
        "smb", "smb", "mid", "mid", "ent", "ent",
    ]  # fmt: skip
    assert where(idx) is None


def test_region_industry_and_lead_source_compare_case_blind() -> None:
    bavaria = territory(
        "bavaria", Rule(region=["Bayern"], industry=["Financial Services"], lead_source=["Web"])
    )
    idx = index(bavaria)
    assert where(idx, region=" BAYERN", industry="financial services", lead_source="WEB")
    assert where(idx, region="bayern", industry="financial services") is None


def test_more_conditions_then_priority_then_territory_id_break_ties() -> None:
    broad = territory("a-broad", Rule(country=["DE"]))
    narrow = territory("z-narrow", Rule(country=["DE"], industry=["software"]))
    assert where(index(broad, narrow), country="DE", industry="software") == "z-narrow"
    favoured = territory("z-favoured", Rule(industry=["software"]), priority=5)
    plain = territory("a-plain", Rule(country=["DE"]))
    assert where(index(plain, favoured), country="DE", industry="software") == "z-favoured"
    twin = territory("b-twin", Rule(industry=["software"]))
    found = index(twin, plain).match(LeadAttributes(country="DE", industry="software"))
    assert found is not None
    assert (found.territory_id, found.also_matched) == ("a-plain", ("b-twin",))


def test_rules_without_an_id_are_named_after_their_territory() -> None:
    de = territory("de", Rule(country=["FR"]), Rule(country=["DE"]), Rule(id="x", country=["AT"]))
    idx = index(de)
    assert idx.match(LeadAttributes(country="DE")).rule_id == "de#2"  # type: ignore[union-attr]
    assert idx.match(LeadAttributes(country="AT")).rule_id == "x"  # type: ignore[union-attr]


def test_the_implicit_model_and_a_fallback_territory_match_nothing() -> None:
    assert TerritoryIndex.build(implicit_ruleset()).match(LeadAttributes(country="US")) is None
    idx = index(territory("default"), EMEA, fallback="default")
    assert where(idx, country="US") is None  # falling back is the service's decision


def test_an_account_has_no_lead_source_so_source_rules_skip_it() -> None:
    inbound = territory("inbound", Rule(country=["DE"], lead_source=["web"]))
    account = LeadAttributes.from_mapping({"country": "de", "industry": "Software"})
    assert index(inbound, DACH, EMEA).match(account).territory_id == "DACH"  # type: ignore[union-attr]


def test_the_explanation_is_json() -> None:
    found = index(EMEA, DACH).match(LeadAttributes(country="DE"))
    assert isinstance(found, TerritoryMatch)
    assert json.loads(json.dumps(found.explanation())) == {
        "territory": "DACH",
        "rule": "DACH#1",
        "chain": ["DACH", "EMEA"],
        "named_account": False,
        "also_matched": ["EMEA"],
    }


def test_at_most_ten_runners_up_are_listed() -> None:
    many = [territory(f"t{n:02d}", Rule(country=["DE"])) for n in range(15)]
    found = index(*many).match(LeadAttributes(country="DE"))
    assert found is not None
    assert found.territory_id == "t00"
    assert found.also_matched == tuple(f"t{n:02d}" for n in range(1, 11))


def test_lead_values_are_normalized_from_a_record() -> None:
    attrs = LeadAttributes.from_mapping(
        {
            "country": " de ",
            "region": "  Bayern ",
            "postal_code": "",
            "industry": None,
            "employees": "120",
            "annual_revenue": "1e6",
            "lead_source": 7,
            "domain": " WWW.Acme.COM ",
        }
    )
    assert attrs == LeadAttributes(
        country="DE",
        region="Bayern",
        employees=120,
        annual_revenue=Decimal("1e6"),
        domain="acme.com",
    )
    unreadable = LeadAttributes.from_mapping({"employees": "many", "annual_revenue": "NaN"})
    assert (unreadable.employees, unreadable.annual_revenue) == (None, None)


def test_a_parent_cycle_does_not_hang_the_index() -> None:
    a = territory("a", Rule(country=["DE"]), parent="b")
    b = territory("b", Rule(country=["DE"]), parent="a")
    assert where(index(a, b), country="DE") in {"a", "b"}


# --------------------------------------------------------------------------------------------
# The index is exact: the same answer as a scan of every rule with the documented precedence.

COUNTRIES = ["DE", "AT", "FR"]
POSTAL = ["1", "10", "105", "2", "7"]
RANGES = [("10000", "10999"), ("10500", "20000"), ("100", "199"), ("20000", "10000")]


def oracle_rule_matches(rule: Rule, lead: LeadAttributes) -> bool:
    """Written from the rules' documentation, independently of the index."""

    def one_of(allowed: list[str] | None, value: str | None) -> bool:
        if allowed is None:
            return True
        return value is not None and value.strip().casefold() in {
            a.strip().casefold() for a in allowed
        }

    def within(band: Band | None, value: Decimal | int | None) -> bool:
        return band is None or band.contains(value)

    def postal(codes: PostalCodes | None, raw: str | None) -> bool:
        if codes is None:
            return True
        if raw is None or not "".join(raw.split()):
            return False
        code = "".join(raw.split()).upper()
        by_prefix = any(code.startswith("".join(p.split()).upper()) for p in codes.prefixes)
        by_range = any(len(code) == len(lo) and lo <= code <= hi for lo, hi in codes.ranges)
        return by_prefix or by_range

    return (
        one_of(rule.country, lead.country)
        and one_of(rule.region, lead.region)
        and one_of(rule.industry, lead.industry)
        and one_of(rule.lead_source, lead.lead_source)
        and one_of(rule.domains, None if lead.domain is None else lead.domain.lower())
        and postal(rule.postal_code, lead.postal_code)
        and within(rule.employees, lead.employees)
        and within(rule.annual_revenue, lead.annual_revenue)
    )


def oracle(ruleset: Ruleset, lead: LeadAttributes) -> tuple[str, str, tuple[str, ...]] | None:
    territories: dict[str, Territory] = {}
    for t in ruleset.territories:
        territories.setdefault(t.id, t)

    def ancestors(tid: str) -> list[str]:
        found, parent = [], territories[tid].parent
        while parent in territories and parent not in found and parent != tid:
            found.append(parent)
            parent = territories[parent].parent
        return found

    def best_rule(tid: str) -> tuple[tuple[Any, ...], str] | None:
        t = territories[tid]
        depth = len(ancestors(tid))
        keys = [
            ((-(r.domains is not None), -depth, -r.conditions(), -t.priority, tid, n), r.id or f"{tid}#{n}")  # noqa: E501
            for n, r in enumerate(t.rules, start=1)
            if oracle_rule_matches(r, lead)
        ]  # fmt: skip
        return min(keys) if keys else None

    matched = {tid: best for tid in territories if (best := best_rule(tid)) is not None}
    qualified = sorted(
        best
        for tid, best in matched.items()
        if all(a in matched for a in ancestors(tid) if territories[a].rules)
    )
    if not qualified:
        return None
    winner = qualified[0]
    return winner[0][4], winner[1], tuple(k[4] for k, _ in qualified[1:11])


BANDS = st.builds(
    Band,
    min=st.none() | st.integers(0, 60).map(Decimal),
    max=st.none() | st.integers(0, 60).map(Decimal),
)
CONDITIONS: dict[str, st.SearchStrategy[Any]] = {
    "country": st.lists(st.sampled_from(COUNTRIES), max_size=2),
    "region": st.lists(st.sampled_from(["by", "BE", "Nord"]), min_size=1, max_size=2),
    "postal_code": st.builds(
        PostalCodes,
        prefixes=st.lists(st.sampled_from(POSTAL), max_size=2),
        ranges=st.lists(st.sampled_from(RANGES), max_size=1),
    ),
    "industry": st.lists(st.sampled_from(["Software", "retail"]), min_size=1),
    "employees": BANDS,
    "annual_revenue": BANDS,
    "lead_source": st.lists(st.sampled_from(["web", "Event"]), min_size=1),
    "domains": st.lists(st.sampled_from(["a.com", "www.B.com"]), max_size=2),
}


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    """A rule of up to three conditions (more would rarely match a random lead)."""
    names = draw(st.lists(st.sampled_from(sorted(CONDITIONS)), max_size=3, unique=True))
    return Rule(**{name: draw(CONDITIONS[name]) for name in names})


@st.composite
def rulesets(draw: st.DrawFn) -> Ruleset:
    count = draw(st.integers(1, 7))
    territories = []
    for n in range(count):
        parent = draw(st.none() | st.integers(0, n - 1).map(str)) if n else None
        territories.append(
            Territory(
                id=str(n),
                parent=parent,
                priority=draw(st.integers(0, 1)),
                # The first territory may have many rules: its children meet them by blocks.
                rules=draw(st.lists(rules(), max_size=12 if n == 0 else 3)),
            )
        )
    return Ruleset(territories=draw(st.permutations(territories)))


leads = st.builds(
    LeadAttributes,
    country=st.sampled_from(["DE", "at", "FR", "US", None]),
    region=st.sampled_from(["BY", "be", "nord", "Süd", None]),
    postal_code=st.sampled_from(["10500", "105 99", "1", "150", "2", "70000", "99", None]),
    industry=st.sampled_from(["software", "RETAIL", "mining", None]),
    employees=st.none() | st.integers(0, 70),
    annual_revenue=st.none() | st.integers(0, 70).map(Decimal),
    lead_source=st.sampled_from(["Web", "event", "partner", None]),
    domain=st.sampled_from(["a.com", "b.com", "c.com", None]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rulesets(), st.lists(leads, min_size=1, max_size=12), st.booleans())
def test_the_index_agrees_with_a_scan_of_every_rule(
    ruleset: Ruleset, sample: list[Any], squeezed: bool
) -> None:
    # Squeezed, the build takes the paths big models take: parents' rules looked up by blocks,
    # reaches too large to enumerate approximated.
    limits = (0, 1) if squeezed else (reach._BLOCK_ABOVE, reach._MAX_REACH)
    with patch.multiple(reach, _BLOCK_ABOVE=limits[0], _MAX_REACH=limits[1]):
        idx = TerritoryIndex.build(ruleset)
    for lead in sample:
        found = idx.match(lead)
        got = None if found is None else (found.territory_id, found.rule_id, found.also_matched)
        assert got == oracle(ruleset, lead)
