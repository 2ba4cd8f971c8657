"""The example territory model in docs/ reads, validates and round-trips as YAML."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from salesops_routing.domain.ruleset import Ruleset
from salesops_routing.domain.territories import LeadAttributes, TerritoryIndex
from salesops_routing.domain.validation import RosterRep, validate
from salesops_routing.entrypoints.ruleset_api import load_yaml, parse_ruleset

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).parents[3] / "docs" / "examples" / "ruleset.yaml"


def example() -> Ruleset:
    return parse_ruleset(EXAMPLE.read_bytes(), "application/yaml")


def test_the_example_model_has_no_errors_once_its_reps_are_known() -> None:
    ruleset = example()
    emails = {m.email for t in ruleset.territories for m in t.members if m.email}
    roster = [RosterRep(uuid.uuid4(), email, True) for email in sorted(emails)]
    assert validate(ruleset, roster) == []


def test_norway_stays_a_country_code_in_yaml() -> None:
    assert load_yaml("country: [NO, SE]\nflag: true\nother: no") == {
        "country": ["NO", "SE"],
        "flag": True,
        "other": "no",
    }
    norwegian = LeadAttributes.from_mapping({"country": "NO"})
    match = TerritoryIndex.build(example()).match(norwegian)
    assert match is not None
    assert match.territory_id == "emea"


def test_an_export_reads_back_as_the_same_model() -> None:
    ruleset = example()
    exported = yaml.safe_dump(ruleset.model_dump(mode="json", exclude_defaults=True))
    assert parse_ruleset(exported.encode(), "application/yaml") == ruleset


def test_a_munich_enterprise_lead_goes_to_the_deepest_matching_territory() -> None:
    index = TerritoryIndex.build(example())
    big = LeadAttributes.from_mapping({"country": "DE", "employees": 5000})
    small = LeadAttributes.from_mapping({"country": "de", "employees": 50})
    assert index.match(big).territory_id == "dach-enterprise"  # type: ignore[union-attr]
    assert index.match(small).territory_id == "dach"  # type: ignore[union-attr]
