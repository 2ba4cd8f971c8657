"""What an admin is told about a ruleset before it becomes the routing model."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from salesops_routing.domain.ruleset import (
    Band,
    Member,
    PostalCodes,
    Rule,
    Ruleset,
    Territory,
)
from salesops_routing.domain.validation import Finding, RosterRep, validate

pytestmark = pytest.mark.unit

ANN = RosterRep(uuid.uuid4(), "ann@example.com", active=True)
BO = RosterRep(uuid.uuid4(), "Bo@Example.com", active=True)
GONE = RosterRep(uuid.uuid4(), "gone@example.com", active=False)
ROSTER = [ANN, BO, GONE]


def territory(
    tid: str,
    *rules: Rule,
    parent: str | None = None,
    priority: int = 0,
    members: list[Member] | None = None,
) -> Territory:
    staffed = [Member(rep_id=ANN.id), Member(email="bo@example.com")]
    return Territory(
        id=tid,
        parent=parent,
        priority=priority,
        rules=list(rules),
        members=staffed if members is None else members,
    )


def findings(*territories: Territory, fallback: str | None = None) -> list[Finding]:
    ruleset = Ruleset(territories=list(territories), fallback_territory=fallback)
    return validate(ruleset, ROSTER)


def codes(found: list[Finding]) -> list[str]:
    return [f.code for f in found]


EMEA = territory("EMEA", Rule(country=["DE", "AT", "CH", "FR"]))
DACH = territory("DACH", Rule(country=["DE", "AT", "CH"]), parent="EMEA")
FRANCE = territory("FR", Rule(country=["FR"]), parent="EMEA")


def test_a_sound_model_has_nothing_to_report() -> None:
    munich = territory(
        "munich", Rule(country=["DE"], postal_code=PostalCodes(prefixes=["80"])), parent="DACH"
    )
    assert findings(EMEA, DACH, FRANCE, munich) == []


def test_broken_structure_is_refused() -> None:
    found = findings(
        territory("a", Rule(id="r", country=["DE"])),
        territory("a", Rule(country=["FR"])),
        territory("b", Rule(id="r", country=["AT"]), parent="nowhere"),
        territory("c", Rule(country=["CH"]), parent="d"),
        territory("d", Rule(country=["CH"], industry=["x"]), parent="c"),
        fallback="missing",
    )
    errors = [f for f in found if f.severity == "error"]
    assert codes(errors) == [
        "duplicate_territory",
        "duplicate_rule",
        "unknown_parent",
        "parent_cycle",
        "unknown_fallback",
    ]
    assert "c -> d -> c" in errors[3].message


def test_an_inverted_band_and_a_broken_postal_range_are_refused() -> None:
    found = findings(
        territory("big", Rule(employees=Band(min=Decimal(500), max=Decimal(10)))),
        territory(
            "paris", Rule(postal_code=PostalCodes(ranges=[("75020", "75001"), ("750", "75099")]))
        ),
    )
    assert codes(found) == ["invalid_band", "invalid_range", "invalid_range"]
    assert all(f.severity == "error" for f in found)
    assert "minimum is above the maximum" in found[0].message


def test_a_member_listed_twice_is_refused_even_once_by_id_and_once_by_email() -> None:
    twice = [Member(rep_id=ANN.id), Member(email="ANN@example.com")]
    found = findings(territory("de", Rule(country=["DE"]), members=twice))
    assert codes(found) == ["duplicate_member", "rep_in_no_territory"]  # Bo is in none now


def test_equal_priority_overlap_is_refused() -> None:
    software = territory("software", Rule(industry=["Software"]))
    small = territory("small", Rule(employees=Band(max=Decimal(100))))
    found = findings(software, small)
    assert codes(found) == ["overlapping_territories"]
    assert found[0].severity == "error"
    assert "'small' and 'software'" in found[0].message
    assert "industry software, employees -100" in found[0].message
    # A higher priority settles it; so do exclusive rules.
    favoured = territory("small", Rule(employees=Band(max=Decimal(100))), priority=1)
    assert findings(software, favoured) == []
    german = territory("german", Rule(country=["DE"]))
    french = territory("french", Rule(country=["FR"]))
    assert findings(german, french) == []


def test_children_of_disjoint_parents_do_not_overlap() -> None:
    dach_software = territory("dach-sw", Rule(industry=["software"]), parent="DACH")
    france_software = territory("fr-sw", Rule(industry=["software"]), parent="FR")
    assert findings(EMEA, DACH, FRANCE, dach_software, france_software) == []
    # Under the same parent they do.
    twin = territory("dach-sw-2", Rule(industry=["software"]), parent="DACH")
    assert codes(findings(EMEA, DACH, dach_software, twin)) == ["overlapping_territories"]


def test_overlapping_postal_codes_are_found() -> None:
    north = territory("north", Rule(postal_code=PostalCodes(prefixes=["10"])))
    block = territory("block", Rule(postal_code=PostalCodes(ranges=[("10500", "10599")])))
    south = territory("south", Rule(postal_code=PostalCodes(prefixes=["2"])))
    assert codes(findings(north, block, south)) == ["overlapping_territories"]


def test_the_same_named_account_in_two_territories_is_refused() -> None:
    one = territory("acme-east", Rule(domains=["acme.com"]))
    two = territory("acme-west", Rule(domains=["www.ACME.com", "other.com"]))
    assert codes(findings(one, two)) == ["overlapping_territories"]


def test_unreachable_rules_are_reported() -> None:
    empty = territory("empty", Rule(country=[]))
    stray = territory("stray", Rule(country=["US"]), parent="DACH")
    # Every software lead goes to the wider, higher-priority rule instead.
    narrow = territory("narrow", Rule(country=["US"], industry=["software"]))
    wide = territory("wide", Rule(country=["US", "CA"], industry=["software", "saas"]), priority=3)
    found = findings(EMEA, DACH, empty, stray, narrow, wide)
    assert [(f.code, f.rule_id) for f in found] == [
        ("unreachable_rule", "empty#1"),
        ("unreachable_rule", "stray#1"),
        ("unreachable_rule", "narrow#1"),
    ]
    assert all(f.severity == "warning" for f in found)
    assert "country list is empty" in found[0].message
    assert "'DACH', 'EMEA'" in found[1].message
    assert "goes to territory 'wide'" in found[2].message


def test_a_territory_nobody_can_work_is_reported() -> None:
    idle = territory("idle", Rule(country=["DE"]), members=[Member(rep_id=GONE.id)])
    ghost = territory("ghost", Rule(country=["FR"]), members=[Member(email="new@example.com")])
    found = findings(idle, ghost, territory("rest", Rule(country=["AT"])))
    assert [(f.code, f.territory_id) for f in found] == [
        ("no_active_members", "idle"),
        ("unknown_member", "ghost"),
        ("no_active_members", "ghost"),
    ]


def test_a_container_territory_may_have_no_members() -> None:
    group = territory("group", Rule(country=["DE", "FR"]), members=[])
    child = territory("child", Rule(country=["DE"]), parent="group")
    assert findings(group, child) == []


def test_active_reps_in_no_territory_are_listed_up_to_fifty() -> None:
    idle = [RosterRep(uuid.uuid4(), f"rep{n:03d}@example.com", active=True) for n in range(60)]
    ruleset = Ruleset(territories=[territory("de", Rule(country=["DE"]))])
    found = validate(ruleset, [ANN, BO, GONE, *idle])
    assert codes(found) == ["rep_in_no_territory"] * 51
    assert "rep000@example.com" in found[0].message
    assert "10 more active reps" in found[-1].message


def test_errors_come_first_and_findings_are_json() -> None:
    found = findings(
        territory("empty", Rule(region=[])), territory("x", Rule(country=["DE"]), parent="nope")
    )
    assert [f.severity for f in found] == ["error", "warning"]
    assert json.loads(json.dumps(found[0].as_json())) == {
        "severity": "error",
        "code": "unknown_parent",
        "message": "Territory 'x' names the parent 'nope', which is not a territory of this model.",
        "territory_id": "x",
        "rule_id": None,
    }


def test_a_large_model_is_validated_by_blocks_not_pairs() -> None:
    # 40 countries x 25 postal areas, each with 4 prefix rules and a segment child: 2,000
    # territories whose rules share precedence; only the planted twin overlaps.
    countries = [f"C{n:02d}" for n in range(40)]
    model = [territory("root", Rule(country=countries), members=[])]
    for country in countries:
        model.append(territory(country, Rule(country=[country]), parent="root", members=[]))
        for area in range(25):
            tid = f"{country}-{area}"
            prefixes = [
                Rule(postal_code=PostalCodes(prefixes=[f"{area:02d}{n}"])) for n in range(4)
            ]
            model.append(territory(tid, *prefixes, parent=country))
            model.append(territory(f"{tid}-sw", Rule(industry=["software"]), parent=tid))
    model.append(territory("C07-3-sw-twin", Rule(industry=["software"]), parent="C07-3"))
    found = validate(Ruleset(territories=model), ROSTER)
    assert [(f.code, f.territory_id) for f in found] == [("overlapping_territories", "C07-3-sw")]
